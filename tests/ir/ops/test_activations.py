"""Activation functions against onnxruntime: attribute defaults and variants, the opsets each op exists in, integer
Relu/Shrink/Clip, the two Clip forms (attributes before opset 11, optional constant inputs after), and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import accelgen
from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops import lookup
from accelgen.ir.ops.activations import Clip, Gelu, PRelu
from accelgen.ir.types import F32, TensorType
from tests.ir.ops.test_elementwise import SPECIAL, floats
from tests.onnxmodels import build, check, load
from tests.ortcheck import run_ort

WIDE = np.concatenate([np.linspace(-12, 12, 241, dtype=np.float32), SPECIAL[np.isfinite(SPECIAL)]])


def run(op, x, opset, attrs=None):
    return accelgen.run(load(op, [("x", x)], opset, attrs), {"x": x})["y0"]


# op -> (opsets to try, attribute variants)
ACTIVATIONS = {
    "Relu": ((7, 13, 14), [{}]),
    "LeakyRelu": ((7, 16), [{}, {"alpha": 0.2}, {"alpha": -1.5}]),
    "ThresholdedRelu": ((10, 22), [{}, {"alpha": 0.3}, {"alpha": -2.0}]),
    "Elu": ((7, 22), [{}, {"alpha": 0.5}]),
    "Selu": ((7, 22), [{}, {"alpha": 2.0, "gamma": 3.0}]),
    "Celu": ((12,), [{}, {"alpha": 2.0}, {"alpha": 0.5}]),
    "Sigmoid": ((7, 13), [{}]),
    "HardSigmoid": ((7, 22), [{}, {"alpha": 0.5, "beta": 0.1}]),
    "HardSwish": ((14, 22), [{}]),
    "Tanh": ((7, 13), [{}]),
    "Softplus": ((7, 22), [{}]),
    "Softsign": ((7, 22), [{}]),
    "Mish": ((18, 22), [{}]),
    "Shrink": ((9,), [{}, {"lambd": 1.5}, {"bias": 0.5, "lambd": 1.0}]),
    "Gelu": ((20,), [{}, {"approximate": "none"}, {"approximate": "tanh"}]),
}


def check_activation(op, x, opset, attrs, **tol):
    """Compare with onnxruntime. Opset 22 only added bfloat16 to these ops and ORT has no opset-22 kernels for
    most of them, so an opset-22 model is checked against ORT running the same node stamped opset 21."""
    if opset < 22:
        return check(op, [("x", x)], opset, attrs, **tol)
    ours = run(op, x, opset, attrs)
    theirs = run_ort(build(op, [("x", x)], 21, attrs), {"x": x})["y0"]
    assert ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, **{"rtol": 1e-4, "atol": 1e-5, **tol})


@pytest.mark.parametrize("op", list(ACTIVATIONS))
def test_activation_float32(op):
    opsets, variants = ACTIVATIONS[op]
    for opset in opsets:
        for attrs in variants:
            check_activation(op, WIDE.reshape(-1, 1) * np.ones(2, np.float32), opset, attrs)


def _gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _softplus(x):
    return np.log1p(np.exp(x))


F32_ATTR = float(np.float32(0.01)), float(np.float32(0.2)), float(np.float32(1 / 6))
SELU = 1.67326319217681884765625, 1.05070102214813232421875

# Plain float64 formulas from the ONNX spec (ORT has no float64 kernel for most of these ops). ONNX attributes
# are float32, so the defaults are float32 values.
REFERENCE = {
    "Relu": lambda x: np.maximum(x, 0),
    "LeakyRelu": lambda x, alpha=F32_ATTR[0]: np.where(x >= 0, x, alpha * x),
    "ThresholdedRelu": lambda x, alpha=1.0: np.where(x > alpha, x, 0),
    "Elu": lambda x, alpha=1.0: np.where(x < 0, alpha * (np.exp(x) - 1), x),
    "Selu": lambda x, alpha=SELU[0], gamma=SELU[1]: np.where(x > 0, gamma * x, gamma * (alpha * np.exp(x) - alpha)),
    "Celu": lambda x, alpha=1.0: np.maximum(x, 0) + np.minimum(0, alpha * (np.exp(x / alpha) - 1)),
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "HardSigmoid": lambda x, alpha=F32_ATTR[1], beta=0.5: np.maximum(0, np.minimum(1, alpha * x + beta)),
    "HardSwish": lambda x: x * np.maximum(0, np.minimum(1, F32_ATTR[2] * x + 0.5)),
    "Tanh": np.tanh,
    "Softplus": _softplus,
    "Softsign": lambda x: x / (1 + np.abs(x)),
    "Mish": lambda x: x * np.tanh(_softplus(x)),
    "Shrink": lambda x, bias=0.0, lambd=0.5: np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0)),
    "Gelu": _gelu,
}


@pytest.mark.parametrize("op", list(ACTIVATIONS))
def test_activation_float64(op):
    opsets, variants = ACTIVATIONS[op]
    x = floats(4, 5, seed=1, low=-6, high=6).astype(np.float64)
    for attrs in variants:
        y = run(op, x, opsets[-1], attrs)
        assert y.dtype == np.float64
        as_stored = {k: float(np.float32(v)) if isinstance(v, float) else v for k, v in attrs.items()}
        np.testing.assert_allclose(y, REFERENCE[op](x, **as_stored), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_ort_closely(approximate):
    # The brief: within 1e-6 absolute of ORT everywhere (ORT's erf is a float32 approximation; ours is float64).
    x = np.linspace(-10, 10, 4001, dtype=np.float32)
    check("Gelu", [("x", x)], 20, {"approximate": approximate}, rtol=0, atol=1e-6)


def test_gelu_negative_tail_is_relatively_accurate():
    x = np.array([-5.0, -7.0, -9.0], np.float64)
    want = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(run("Gelu", x, 20), want, rtol=1e-12)


def test_gelu_bad_approximate():
    with pytest.raises(InvalidModelError, match="approximate"):
        load("Gelu", [("x", floats(3))], 20, {"approximate": "fast"})
    with pytest.raises(InvalidModelError, match="approximate"):
        Gelu(approximate="erf")


def test_celu_zero_alpha_is_invalid():
    with pytest.raises(InvalidModelError, match="alpha"):
        load("Celu", [("x", floats(3))], 12, {"alpha": 0.0})


@pytest.mark.parametrize("op", ["Relu", "Sigmoid", "Gelu", "HardSwish", "Softplus", "LeakyRelu", "Elu"])
def test_half_precision_computed_in_float32(op):
    x = floats(64, seed=2, low=-5, high=5).astype(np.float16)
    opset = max(ACTIVATIONS[op][0])
    y = run(op, x, opset)
    assert y.dtype == np.float16
    want = run(op, x.astype(np.float32), opset).astype(np.float16)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_relu_integer(dtype):
    x = np.array([[-128 if dtype == np.int8 else -1000, -1, 0, 1, 127]], dtype)
    if dtype == np.int64:  # no int64 Relu kernel in ORT
        np.testing.assert_array_equal(run("Relu", x, 14), np.maximum(x, 0))
        return
    g = check("Relu", [("x", x)], 14)
    assert g.outputs[0].type.dtype.np_dtype == dtype


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_shrink_integer(dtype):
    x = np.array([0, 1, 2, 3, 5, 10, 100], dtype)
    check("Shrink", [("x", x)], 9, {"lambd": 2.0, "bias": 1.0})


def test_activations_reject_non_float():
    with pytest.raises(InvalidModelError, match="Sigmoid"):
        load("Sigmoid", [("x", np.ones(3, np.int32))], 13)
    with pytest.raises(InvalidModelError, match="Relu"):
        load("Relu", [("x", np.ones(3, np.uint8))], 14)


# -- PRelu ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("slope_shape", [(), (1,), (3, 1, 1), (5,), (1, 3, 4, 5), (4, 1)])
@pytest.mark.parametrize("opset", [7, 9, 16])
def test_prelu(slope_shape, opset):
    x = floats(2, 3, 4, 5, seed=3)
    slope = floats(*slope_shape, seed=4, low=-1, high=1)
    check("PRelu", [("x", x), ("slope", slope)], opset, consts={"slope"})
    check("PRelu", [("x", x), ("slope", slope)], opset)  # slope as a runtime input


def test_prelu_integer():
    x = np.array([[-5, -1, 0, 3]], np.int32)
    check("PRelu", [("x", x), ("slope", np.array([2, 3, 4, 5], np.int32))], 16)


def test_prelu_slope_must_broadcast_to_input():
    t = TensorType((2, 3, 4), F32)
    with pytest.raises(ShapeError, match="slope"):
        PRelu().infer([t, TensorType((3,), F32)])
    with pytest.raises(ShapeError, match="slope"):  # bidirectional would grow the output: not allowed
        PRelu().infer([t, TensorType((5, 1, 1, 1), F32)])
    with pytest.raises(ShapeError):
        load("PRelu", [("x", floats(2, 3, 4)), ("slope", floats(3))], 16, consts={"slope"})


# -- Clip -----------------------------------------------------------------------------------------------------------
X = np.concatenate([floats(30, seed=5, low=-4, high=4), np.array([np.inf, -np.inf, 0.0], np.float32)])


@pytest.mark.parametrize("attrs", [{}, {"min": -1.0}, {"max": 0.5}, {"min": -1.0, "max": 2.0}])
def test_clip_attribute_form(attrs):
    check("Clip", [("x", X)], 6, attrs)


def test_clip_min_above_max_gives_max():
    # ORT refuses min > max at opset 6; from opset 11 ONNX defines it: every value becomes max.
    np.testing.assert_array_equal(run("Clip", X, 6, {"min": 2.0, "max": 1.0}), np.ones_like(X))


def f32(v):
    return np.array(v, np.float32)


@pytest.mark.parametrize("opset", [11, 12, 13])
@pytest.mark.parametrize("bounds", [(None, None), (-1.0, None), (None, 0.5), (-1.0, 2.0), (2.0, 1.0)])
def test_clip_input_form(opset, bounds):
    lo, hi = bounds
    inputs = [("x", X), ("min" if lo is not None else "", None if lo is None else f32(lo))]
    if hi is not None:
        inputs.append(("max", f32(hi)))
    g = check("Clip", inputs, opset, consts={"min", "max"})
    op = g.nodes[0].op
    assert (op.min, op.max) == (lo, hi)


def test_clip_both_forms_give_one_op():
    a = load("Clip", [("x", X)], 6, {"min": -1.0, "max": 2.0}).nodes[0].op
    b = load("Clip", [("x", X), ("min", f32(-1.0)), ("max", f32(2.0))], 13, consts={"min", "max"}).nodes[0].op
    assert a == b == Clip(min=-1.0, max=2.0)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64])
def test_clip_integer(dtype):
    info = np.iinfo(dtype)
    x = np.array([info.min, info.min + 1, 0, 5, 9, info.max], dtype)
    lo, hi = np.array(info.min + 1 if info.min else 2, dtype), np.array(info.max - 1, dtype)
    check("Clip", [("x", x), ("min", lo), ("max", hi)], 13, consts={"min", "max"})
    check("Clip", [("x", x), ("", None), ("max", np.array(5, dtype))], 13, consts={"max"})


def test_clip_float16():
    x = X.astype(np.float16)
    y = accelgen.run(load("Clip", [("x", x), ("min", np.float16(-1)), ("max", np.float16(1))], 13,
                          consts={"min", "max"}), {"x": x})["y0"]
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, np.clip(x, -1, 1))


def test_clip_errors():
    with pytest.raises(ShapeError, match="compile time"):
        load("Clip", [("x", X), ("min", f32(0.0))], 13)
    with pytest.raises(InvalidModelError, match="scalar"):
        load("Clip", [("x", X), ("min", np.array([0.0, 1.0], np.float32))], 13, consts={"min"})
    # A one-element 1-D bound (some exporters write shape [1]) is accepted as a scalar.
    assert load("Clip", [("x", X), ("min", np.array([0.5], np.float32))], 13, consts={"min"}).nodes[0].op.min == 0.5


def test_fully_constant_activation_folds():
    m = build("Sigmoid", [("c", f32([0.0, 1.0]))], 13, consts={"c"})
    g = accelgen.load(m)
    assert not g.nodes
    np.testing.assert_allclose(g.outputs[0].data, [0.5, 1 / (1 + math.e ** -1)], rtol=1e-6)


def test_registered():
    ops = ("Relu LeakyRelu PRelu Elu Selu Gelu HardSigmoid HardSwish Softplus Softsign Clip Tanh Sigmoid Celu "
           "ThresholdedRelu Mish Shrink").split()
    assert all(lookup("", op) is not None for op in ops)
