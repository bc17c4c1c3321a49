"""Normalization (BatchNormalization, LayerNormalization, InstanceNormalization) and the softmax family against
onnxruntime, over opset variants."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import accelgen
from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.normalization import BatchNormalization, LayerNormalization, Softmax
from accelgen.ir.types import F32, TensorType
from tests.onnxmodels import typed_model, value_info
from tests.ortcheck import check_against_ort, rand


def model(op: str, x: np.ndarray, opset: int, attrs=None, params=(), n_out: int = 1, runtime_params=()):
    """One-node model: input `x`, then `params` (name, array or None for an empty optional input) as
    initializers, or as graph inputs for the names in `runtime_params`."""
    inputs = [value_info("x", x)]
    inits = []
    for name, a in params:
        if a is None:
            continue
        if name in runtime_params:
            inputs.append(value_info(name, a))
        else:
            inits.append(numpy_helper.from_array(a, name))
    names = ["x", *(name if a is not None else "" for name, a in params)]
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, **(attrs or {}))
    return typed_model([node], inputs, outs, inits, opset, [x.dtype] * n_out)


# -- BatchNormalization ------------------------------------------------------------------------------------------

def bn_params(c, seed=1, dtype=np.float32, shape=None):
    shape = shape or (c,)
    return [("scale", rand(*shape, seed=seed, dtype=dtype)), ("B", rand(*shape, seed=seed + 1, dtype=dtype)),
            ("mean", rand(*shape, seed=seed + 2, dtype=dtype)),
            ("var", rand(*shape, seed=seed + 3, low=0.1, high=2.0, dtype=dtype))]


@pytest.mark.parametrize("opset", [7, 9, 14, 15])
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 7), (2, 3, 4, 5), (1, 4, 2, 3, 2)])
def test_batchnorm(opset, shape):
    x = rand(*shape)
    check_against_ort(model("BatchNormalization", x, opset, {"epsilon": 1e-3}, bn_params(shape[1])), {"x": x})


def test_batchnorm_old_attributes_are_accepted():
    x = rand(2, 3, 4, 4)
    m = model("BatchNormalization", x, 7, {"spatial": 1, "momentum": 0.8}, bn_params(3))
    check_against_ort(m, {"x": x})


def test_batchnorm_per_activation():
    # spatial=0 (opsets 7-8): statistics and affine parameters per activation, shape C x D1 x ...
    x = rand(2, 3, 4)
    check_against_ort(model("BatchNormalization", x, 7, {"spatial": 0}, bn_params(3, shape=(3, 4))), {"x": x})
    with pytest.raises(ShapeError, match=r"expected \(3, 4\)"):
        accelgen.load(model("BatchNormalization", x, 7, {"spatial": 0}, bn_params(3)))
    with pytest.raises(InvalidModelError, match="spatial"):
        BatchNormalization.from_onnx({"spatial": 0}, 9, 1)


def test_batchnorm_runtime_parameters():
    x = rand(2, 3, 4)
    params = bn_params(3)
    feeds = {"x": x, **{n: a for n, a in params}}
    check_against_ort(model("BatchNormalization", x, 15, {}, params, runtime_params={n for n, _ in params}), feeds)


def test_batchnorm_float16():
    x = rand(2, 3, 4, 4, dtype=np.float16)
    # float16 output: its spacing is ~1e-3 relative.
    check_against_ort(model("BatchNormalization", x, 15, {}, bn_params(3, dtype=np.float16)), {"x": x},
                      rtol=2e-3, atol=2e-3)


def test_batchnorm_errors():
    x = rand(2, 3, 4)
    with pytest.raises(InvalidModelError, match="training_mode"):
        accelgen.load(model("BatchNormalization", x, 15, {"training_mode": 1}, bn_params(3), n_out=3))
    with pytest.raises(InvalidModelError, match="5 outputs"):
        accelgen.load(model("BatchNormalization", x, 9, {}, bn_params(3), n_out=5))
    with pytest.raises(InvalidModelError, match="3 outputs"):
        accelgen.load(model("BatchNormalization", x, 14, {}, bn_params(3), n_out=3))
    with pytest.raises(ShapeError, match="scale has shape"):
        accelgen.load(model("BatchNormalization", x, 15, {}, bn_params(4)))
    with pytest.raises(ShapeError, match="rank >= 2"):
        accelgen.load(model("BatchNormalization", rand(3), 15, {}, bn_params(3)))


# -- InstanceNormalization ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("opset", [7, 22])
@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 2, 4)])
def test_instancenorm(opset, shape):
    x = rand(*shape, low=-1.0, high=5.0)
    params = [("scale", rand(shape[1], seed=1)), ("B", rand(shape[1], seed=2))]
    check_against_ort(model("InstanceNormalization", x, opset, {"epsilon": 1e-4}, params), {"x": x})


def test_instancenorm_errors():
    x = rand(2, 3, 4)
    with pytest.raises(ShapeError, match="B has shape"):
        accelgen.load(model("InstanceNormalization", x, 7, {}, [("scale", rand(3)), ("B", rand(4))]))
    with pytest.raises(ShapeError, match="rank >= 3"):
        accelgen.load(model("InstanceNormalization", rand(2, 3), 7, {}, [("scale", rand(3)), ("B", rand(3))]))


# -- LayerNormalization ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [-1, -2, 1, 0])
@pytest.mark.parametrize("n_out", [1, 2, 3])
def test_layernorm(axis, n_out):
    x = rand(2, 3, 8, low=-1.0, high=4.0)
    norm = x.shape[axis % 3:]
    params = [("scale", rand(*norm, seed=1)), ("B", rand(*norm, seed=2))]
    check_against_ort(model("LayerNormalization", x, 17, {"axis": axis, "epsilon": 1e-3}, params, n_out), {"x": x})


def test_layernorm_bert_sized_rows():
    # 768 channels with a large common offset: two-pass statistics in float32 stay within rtol 1e-4.
    x = rand(1, 16, 768, seed=4, low=5.0, high=9.0)
    params = [("scale", rand(768, seed=5)), ("B", rand(768, seed=6))]
    check_against_ort(model("LayerNormalization", x, 17, {}, params, 3), {"x": x})


def test_layernorm_without_bias_and_broadcast_scale():
    x = rand(2, 4, 6)
    check_against_ort(model("LayerNormalization", x, 17, {"axis": 1}, [("scale", rand(1, 6))]), {"x": x})


def test_layernorm_skipped_mean_output():
    x = rand(3, 10)
    m = model("LayerNormalization", x, 17, {}, [("scale", rand(10)), ("B", rand(10))], n_out=3)
    m.graph.node[0].output[1] = ""  # Y and InvStdDev only
    del m.graph.output[1]
    check_against_ort(m, {"x": x})


def test_layernorm_float16_keeps_float32_statistics():
    x = rand(2, 32, dtype=np.float16)
    params = [("scale", rand(32, dtype=np.float16)), ("B", rand(32, dtype=np.float16))]
    graph = check_against_ort(model("LayerNormalization", x, 17, {}, params, 3), {"x": x}, rtol=2e-3, atol=2e-3)
    assert [str(v.type) for v in graph.outputs] == ["f16[2,32]", "f32[2,1]", "f32[2,1]"]


def test_layernorm_errors():
    x = rand(2, 3, 4)
    with pytest.raises(ShapeError, match="out of range"):
        accelgen.load(model("LayerNormalization", x, 17, {"axis": 3}, [("scale", rand(4))]))
    with pytest.raises(ShapeError, match="does not broadcast"):
        accelgen.load(model("LayerNormalization", x, 17, {}, [("scale", rand(5))]))
    with pytest.raises(InvalidModelError, match="stash_type"):
        LayerNormalization(stash_type=TensorProto.INT32)
    with pytest.raises(InvalidModelError, match="outputs"):
        LayerNormalization.from_onnx({}, 17, 4)


def test_layernorm_infer():
    types = LayerNormalization(axis=1, outputs=3).infer([TensorType((2, 3, 4), F32), TensorType((3, 4), F32)])
    assert [t.shape for t in types] == [(2, 3, 4), (2, 1, 1), (2, 1, 1)]


# -- Softmax family ----------------------------------------------------------------------------------------------

SOFTMAX_OPS = ["Softmax", "LogSoftmax", "Hardmax"]


@pytest.mark.parametrize("op", SOFTMAX_OPS)
@pytest.mark.parametrize("opset,axis", [
    (opset, axis) for opset in (7, 11, 13) for axis in (None, 0, 1, 2, -1, -2)
    if opset >= 11 or axis is None or axis >= 0  # negative axes exist from opset 11
])
def test_softmax_family(op, opset, axis):
    x = rand(3, 4, 5, low=-4.0, high=4.0)
    attrs = {} if axis is None else {"axis": axis}
    check_against_ort(model(op, x, opset, attrs), {"x": x})


@pytest.mark.parametrize("op", SOFTMAX_OPS)
def test_legacy_softmax_coerces_to_2d(op):
    # Before opset 13, axis=1 on a 3-D input means one softmax over the flattened trailing axes (20 values).
    x = rand(2, 4, 5)
    graph = check_against_ort(model(op, x, 11, {"axis": 1}), {"x": x})
    assert graph.nodes[0].op.coerce_2d
    if op == "Softmax":
        out = accelgen.run(graph, {"x": x})["y0"]
        np.testing.assert_allclose(out.sum(axis=(1, 2)), 1.0, rtol=1e-5)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_large_and_infinite_inputs(op, opset):
    x = np.array([[1000.0, 1001.0, 1002.0, -np.inf], [-1e30, 0.0, 1e30, 3.0]], np.float32)
    check_against_ort(model(op, x, opset), {"x": x})


def test_softmax_ties_and_long_rows():
    x = rand(2, 768, seed=7, low=-8.0, high=8.0)
    check_against_ort(model("Softmax", x, 13), {"x": x})
    check_against_ort(model("LogSoftmax", x, 13), {"x": x})
    ties = np.array([[1.0, 3.0, 3.0, 2.0]], np.float32)
    check_against_ort(model("Hardmax", ties, 13), {"x": ties})


def test_softmax_float16():
    x = rand(3, 16, dtype=np.float16)
    check_against_ort(model("Softmax", x, 13), {"x": x}, rtol=2e-3, atol=2e-3)


def test_softmax_errors():
    with pytest.raises(ShapeError, match="out of range"):
        accelgen.load(model("Softmax", rand(2, 3), 13, {"axis": 2}))
    with pytest.raises(InvalidModelError, match="coerce_2d"):
        Softmax.from_onnx({"coerce_2d": 1}, 13, 1)
    assert Softmax.from_onnx({}, 12, 1) == Softmax(axis=1, coerce_2d=True)
    assert Softmax.from_onnx({}, 13, 1) == Softmax(axis=-1)
