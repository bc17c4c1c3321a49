"""Gather, GatherElements, Pad, Trilu and OneHot against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

import accelgen
from accelgen.errors import InputError, InvalidModelError, ShapeError
from tests.ir.ops.test_shape import check, i64, model
from tests.ortcheck import rand

# -- Gather, GatherElements -------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("indices", [i64(0, 2, -1), i64(1), np.array([[0, -2], [1, 1]], np.int32)])
def test_gather_runtime_indices(axis, indices):
    data = rand(3, 4, 5)
    g = check("Gather", {"data": data, "idx": indices}, attrs={"axis": axis})
    assert [n.op_type for n in g.nodes] == ["Gather"]


def test_gather_scalar_index_and_constant_indices():
    check("Gather", {"data": rand(3, 4)}, {"idx": np.array(-1, np.int64)}, {"axis": 1})


def test_gather_index_out_of_range():
    g = accelgen.load(model("Gather", {"data": rand(3), "idx": i64(0)}))
    with pytest.raises(InputError, match="out of range"):
        accelgen.run(g, {"data": rand(3), "idx": i64(3)})


def test_gather_needs_integer_indices():
    with pytest.raises(ShapeError, match="int32 or int64"):
        accelgen.load(model("Gather", {"data": rand(3), "idx": rand(2)}))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis):
    data = rand(3, 4)
    idx = np.array([[0, -1, 2], [1, 0, -3]], np.int64)
    check("GatherElements", {"data": data, "idx": idx}, attrs={"axis": axis}, opset=13)


def test_gather_elements_rank_mismatch():
    with pytest.raises(ShapeError, match="same rank"):
        accelgen.load(model("GatherElements", {"data": rand(3, 4), "idx": i64(0, 1)}, opset=13))


# -- Pad --------------------------------------------------------------------------------------------------------

PADS = [(0, 1, 2, 0, 1, 2), (1, 0, 0, 0, 3, 1), (0, -1, 1, 2, 1, -2)]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("pads", PADS)
def test_pad_inputs(mode, pads):
    consts = {"pads": i64(*pads), "value": np.array(1.5, np.float32) if mode == "constant" else None}
    check("Pad", {"x": rand(3, 4, 5)}, consts, {"mode": mode}, opset=13)


@pytest.mark.parametrize("pads", PADS)
def test_pad_wrap(pads):
    check("Pad", {"x": rand(3, 4, 5)}, {"pads": i64(*pads)}, {"mode": "wrap"}, opset=19)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_attributes(mode):
    attrs = {"mode": mode, "pads": [0, 2, 1, 1], **({"value": -3.0} if mode == "constant" else {})}
    check("Pad", {"x": rand(3, 4)}, attrs=attrs, opset=2)


@pytest.mark.parametrize("axes", [(1,), (-1, 0)])
def test_pad_axes(axes):
    pads = i64(*([1] * len(axes) + [2] * len(axes)))
    check("Pad", {"x": rand(3, 4)}, {"pads": pads, "value": None, "axes": i64(*axes)}, opset=18)


def test_pad_integer_data_and_value():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    check("Pad", {"x": x}, {"pads": i64(1, 0, 0, 2), "value": np.array(-7, np.int32)}, opset=13)


def test_pad_errors():
    with pytest.raises(InvalidModelError, match="mode"):
        accelgen.load(model("Pad", {"x": rand(3)}, {"pads": i64(1, 1)}, {"mode": "mirror"}, opset=13))
    with pytest.raises(ShapeError, match="2 values"):
        accelgen.load(model("Pad", {"x": rand(3, 3)}, {"pads": i64(1, 1)}, opset=13))
    with pytest.raises(ShapeError, match="below zero"):
        accelgen.load(model("Pad", {"x": rand(3)}, {"pads": i64(-2, -2)}, opset=13))


# -- Trilu, OneHot ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 2, -1, -5])
def test_trilu(upper, k):
    consts = {} if k is None else {"k": np.array(k, np.int64)}
    check("Trilu", {"x": rand(2, 4, 5)}, consts, {"upper": upper}, opset=14)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_onehot(axis):
    idx = np.array([[0, 2, -1], [5, 1, -4]], np.int64)  # 5 and -4 are out of range: all-off rows
    values = np.array([0.5, 2.0], np.float32)
    check("OneHot", {"idx": idx, "values": values}, {"depth": np.array(4, np.int64)}, {"axis": axis}, opset=11,
          order=["idx", "depth", "values"], out_dtypes=[np.float32])


def test_onehot_float_depth_and_int_values():
    idx = np.array([1, 0, 2], np.int64)
    values = np.array([0, 7], np.int32)
    check("OneHot", {"idx": idx, "values": values}, {"depth": np.array([3.0], np.float32)}, opset=11,
          order=["idx", "depth", "values"], out_dtypes=[np.int32])
