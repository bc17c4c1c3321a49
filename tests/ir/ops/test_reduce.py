"""Reductions (Reduce*, ArgMax/ArgMin, TopK) against onnxruntime, over the attribute and input forms of axes/k."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

import accelgen
from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.reduce import ReduceSum, TopK
from accelgen.ir.types import F32, TensorType
from tests.onnxmodels import typed_model, value_info
from tests.ortcheck import check_against_ort, rand

REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


def axes_as_input_from(op: str) -> int:
    """The first opset where the op takes axes as input 1 rather than an attribute."""
    return 13 if op == "ReduceSum" else 18


def model(op: str, x: np.ndarray, opset: int, attrs=None, consts=None, n_out: int = 1, out_dtypes=None,
          extra_inputs=()):
    """One-node model: input `x`, then the constants (as initializers) in order, then `n_out` outputs."""
    consts = consts or {}
    inputs = [value_info("x", x), *(value_info(n, a) for n, a in extra_inputs)]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items() if v is not None]
    names = ["x", *(n for n, _ in extra_inputs), *(k if v is not None else "" for k, v in consts.items())]
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, **(attrs or {}))
    return typed_model([node], inputs, outs, inits, opset, out_dtypes or [x.dtype] * n_out)


def reduce_model(op: str, x: np.ndarray, opset: int, axes=None, **attrs):
    """A Reduce* model with axes in whichever form `opset` uses."""
    if axes is not None and opset >= axes_as_input_from(op):
        return model(op, x, opset, attrs, {"axes": np.array(axes, np.int64)})
    if axes is not None:
        attrs["axes"] = list(axes)
    return model(op, x, opset, attrs)


def positive(op: str, x: np.ndarray) -> np.ndarray:
    """Inputs that keep ReduceLogSum's log finite and ReduceProd away from overflow."""
    return np.abs(x) + 0.5 if op in ("ReduceLogSum", "ReduceProd") else x


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize("axes,keepdims", [((1,), 1), ((1,), 0), ((0, 2), 1), ((-1,), 0), (None, 1), (None, 0)])
def test_reduce_matches_ort(op, opset, axes, keepdims):
    x = positive(op, rand(3, 4, 5))
    check_against_ort(reduce_model(op, x, opset, axes, keepdims=keepdims), {"x": x})


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_noop_with_empty_axes_applies_only_the_elementwise_part(op):
    x = positive(op, rand(2, 3))
    graph = check_against_ort(model(op, x, 18, {"noop_with_empty_axes": 1}), {"x": x})
    assert graph.outputs[0].shape == (2, 3)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax"])
def test_empty_axes_input_reduces_everything(op):
    x = rand(2, 3, 4)
    m = model(op, x, 18, {"keepdims": 0}, {"axes": np.zeros(0, np.int64)})
    assert check_against_ort(m, {"x": x}).outputs[0].shape == ()


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean"])
def test_long_float32_rows_stay_accurate(op):
    # BERT-sized rows: pairwise summation keeps float32 within rtol 1e-4 of onnxruntime.
    x = rand(4, 768, seed=3, low=-1.0, high=3.0)
    check_against_ort(reduce_model(op, x, 18, (-1,)), {"x": x})
    check_against_ort(reduce_model(op, x, 18, (0,)), {"x": x})


@pytest.mark.parametrize("op,dtype", [("ReduceSum", np.int64), ("ReduceSum", np.int32), ("ReduceMax", np.int8),
                                      ("ReduceMin", np.uint8), ("ReduceProd", np.int64), ("ReduceMean", np.int32),
                                      ("ReduceSumSquare", np.int64), ("ReduceL1", np.int32)])
def test_integer_reductions(op, dtype):
    rng = np.random.default_rng(1)
    low = 0 if np.dtype(dtype).kind == "u" else -7
    x = rng.integers(low, 8, (3, 4, 5)).astype(dtype)
    check_against_ort(reduce_model(op, x, 18, (1,)), {"x": x})


def test_integer_mean_truncates_toward_zero():
    x = np.array([[-3, -4], [3, 4], [-1, 0]], np.int32)
    check_against_ort(reduce_model("ReduceMean", x, 18, (1,)), {"x": x})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax"])
def test_float16_reductions(op):
    x = rand(4, 64, dtype=np.float16)
    # float16 output: one rounding to half precision (relative spacing ~1e-3).
    check_against_ort(reduce_model(op, x, 18, (1,)), {"x": x}, rtol=2e-3, atol=2e-3)


def test_double_reduction():
    x = rand(3, 4, dtype=np.float64)
    check_against_ort(reduce_model("ReduceL2", x, 18, (0,)), {"x": x}, rtol=1e-10, atol=0)


def test_log_sum_exp_is_stable_for_large_inputs():
    x = np.array([[1000.0, 1000.5, -np.inf], [-np.inf, -np.inf, -np.inf]], np.float32)
    out = accelgen.run(accelgen.load(reduce_model("ReduceLogSumExp", x, 18, (1,))), {"x": x})["y0"]
    np.testing.assert_allclose(out[0, 0], 1000.5 + np.log1p(np.exp(-0.5)), rtol=1e-6)
    assert out[1, 0] == -np.inf


def test_reductions_over_an_empty_axis():
    x = np.zeros((2, 0, 4), np.float32)
    got = {op: accelgen.run(accelgen.load(reduce_model(op, x, 18, (1,))), {"x": x})["y0"] for op in REDUCE_OPS}
    assert all(a.shape == (2, 1, 4) for a in got.values())
    assert (got["ReduceSum"] == 0).all() and (got["ReduceProd"] == 1).all()
    assert (got["ReduceMax"] == -np.inf).all() and (got["ReduceMin"] == np.inf).all()
    assert (got["ReduceLogSum"] == -np.inf).all() and (got["ReduceLogSumExp"] == -np.inf).all()


def test_bool_max_min():
    x = np.array([[True, False], [False, False]])
    check_against_ort(reduce_model("ReduceMax", x, 20, (1,)), {"x": x})
    check_against_ort(reduce_model("ReduceMin", x, 20, (1,)), {"x": x})


def test_reduce_errors():
    x = rand(2, 3)
    with pytest.raises(ShapeError, match="out of range"):
        accelgen.load(reduce_model("ReduceSum", x, 18, (2,)))
    with pytest.raises(ShapeError, match="twice"):
        accelgen.load(reduce_model("ReduceMean", x, 18, (1, -1)))
    with pytest.raises(InvalidModelError, match="keepdims"):
        ReduceSum(keepdims=2)
    dynamic_axes = model("ReduceSum", x, 13, extra_inputs=[("axes", np.array([1], np.int64))])
    with pytest.raises(ShapeError, match="compile time"):
        accelgen.load(dynamic_axes)


def test_constant_input_is_folded():
    x = rand(2, 3)
    m = reduce_model("ReduceSum", x, 13, (1,))
    m.graph.initializer.append(numpy_helper.from_array(x, "c"))
    m.graph.node[0].input[0] = "c"
    del m.graph.input[0]
    g = accelgen.load(m)
    assert not g.nodes
    np.testing.assert_allclose(accelgen.run(g, {})["y0"], x.sum(1, keepdims=True), rtol=1e-6)


# -- ArgMax / ArgMin ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("opset,axis,keepdims,last", [
    (opset, *case) for opset in (11, 12, 13) for case in ((0, 1, 0), (1, 0, 0), (-1, 1, 1), (2, 0, 1))
    if opset >= 12 or not case[2]  # select_last_index exists from opset 12
])
def test_arg_reduce(op, opset, axis, keepdims, last):
    # Few distinct values, so ties occur and first/last index selection matters.
    x = np.random.default_rng(2).integers(0, 3, (3, 4, 5)).astype(np.float32)
    attrs = {"axis": axis, "keepdims": keepdims, **({"select_last_index": 1} if last else {})}
    check_against_ort(model(op, x, opset, attrs, out_dtypes=[np.int64]), {"x": x})


def test_arg_default_axis_and_int_input():
    x = np.array([[5, 9, 9], [7, 1, 7]], np.int32)
    check_against_ort(model("ArgMax", x, 13, out_dtypes=[np.int64]), {"x": x})
    check_against_ort(model("ArgMin", x, 13, {"select_last_index": 1}, out_dtypes=[np.int64]), {"x": x})


def test_arg_errors():
    with pytest.raises(ShapeError, match="out of range"):
        accelgen.load(model("ArgMax", rand(2, 3), 13, {"axis": 2}, out_dtypes=[np.int64]))
    with pytest.raises(ShapeError, match="empty"):
        accelgen.load(model("ArgMax", np.zeros((2, 0), np.float32), 13, {"axis": 1}, out_dtypes=[np.int64]))


# -- TopK --------------------------------------------------------------------------------------------------------

def topk_model(x: np.ndarray, k: int, opset: int, **attrs):
    if opset < 10:
        return model("TopK", x, opset, {"k": k, **attrs}, n_out=2, out_dtypes=[x.dtype, np.int64])
    return model("TopK", x, opset, attrs, {"k": np.array([k], np.int64)}, n_out=2, out_dtypes=[x.dtype, np.int64])


@pytest.mark.parametrize("opset", [9, 10, 11, 24])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_topk_largest(opset, axis):
    x = rand(4, 6, 5)
    check_against_ort(topk_model(x, 3, opset, axis=axis), {"x": x})


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_topk_ties_take_the_lower_index_first(largest, dtype):
    x = np.array([[3, 1, 3, 2, 1, 3], [0, 0, 0, 0, 0, 0], [5, 4, 5, 4, 5, 4]], dtype)
    for k in (1, 3, 6):
        check_against_ort(topk_model(x, k, 11, axis=1, largest=largest), {"x": x})


def test_topk_uint64_without_negation():
    # onnxruntime has no unsigned TopK kernel (ONNX allows it from opset 24), so check by hand: values near 2**64
    # would break a sort-by-negation.
    big = np.iinfo(np.uint64).max
    x = np.array([[1, big, 0, big - 1, big]], np.uint64)
    values, indices = accelgen.run(accelgen.load(topk_model(x, 3, 24, axis=1)), {"x": x}).values()
    np.testing.assert_array_equal(values, [[big, big, big - 1]])
    np.testing.assert_array_equal(indices, [[1, 4, 3]])
    values, indices = accelgen.run(accelgen.load(topk_model(x, 2, 24, axis=1, largest=0)), {"x": x}).values()
    np.testing.assert_array_equal(indices, [[2, 0]])


def test_topk_extreme_integers():
    x = np.array([np.iinfo(np.int64).min, 0, np.iinfo(np.int64).max, np.iinfo(np.int64).min], np.int64)
    check_against_ort(topk_model(x, 4, 11), {"x": x})
    check_against_ort(topk_model(x, 4, 11, largest=0), {"x": x})


def test_topk_unsorted_gives_the_same_set():
    x = rand(3, 8, seed=5)
    values, indices = accelgen.run(accelgen.load(topk_model(x, 3, 11, sorted=0)), {"x": x}).values()
    want = np.sort(x, axis=1)[:, ::-1][:, :3]
    np.testing.assert_array_equal(np.sort(values, axis=1)[:, ::-1], want)
    np.testing.assert_array_equal(np.take_along_axis(x, indices, 1), values)


def test_topk_k_zero_and_full():
    x = rand(2, 5)
    out = accelgen.run(accelgen.load(topk_model(x, 0, 11)), {"x": x})
    assert [a.shape for a in out.values()] == [(2, 0), (2, 0)]
    check_against_ort(topk_model(x, 5, 11), {"x": x})


def test_topk_errors():
    x = rand(2, 5)
    with pytest.raises(ShapeError, match="k=6"):
        accelgen.load(topk_model(x, 6, 11))
    with pytest.raises(ShapeError, match="out of range"):
        accelgen.load(topk_model(x, 1, 11, axis=2))
    with pytest.raises(InvalidModelError, match="needs k"):
        TopK.from_onnx({}, 9, 2)
    with pytest.raises(InvalidModelError, match="largest"):
        TopK(k=1, largest=3)
    with pytest.raises(ShapeError, match="compile time"):
        accelgen.load(model("TopK", x, 11, extra_inputs=[("k", np.array([1], np.int64))], n_out=2,
                            out_dtypes=[x.dtype, np.int64]))


def test_topk_infer_types():
    values, indices = TopK(k=2, axis=0).infer([TensorType((4, 3), F32)])
    assert values == TensorType((2, 3), F32) and indices.shape == (2, 3) and indices.dtype.name == "i64"
