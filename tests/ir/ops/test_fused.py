"""accelgen's fused ops: Dense and FusedConv compute exactly what the ops they replace compute, infer their types,
refuse shapes that do not fit, and count their MACs."""

import ml_dtypes
import numpy as np
import pytest

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.activations import Clip, Gelu, LeakyRelu, Relu
from accelgen.ir.ops.conv import Conv
from accelgen.ir.ops.elementwise import Add
from accelgen.ir.ops.fused import Dense, FusedConv
from accelgen.ir.ops.linear import MatMul
from accelgen.ir.ops.registry import REGISTRY, supported_ops
from accelgen.ir.printer import _attr
from accelgen.ir.types import F16, F32, I32, TensorType


def rand(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("x_shape", [(5,), (3, 5), (2, 3, 5), (2, 1, 3, 5)])
def test_dense_is_bit_exact_with_matmul_add_activation(dtype, x_shape):
    x, w, b = rand(*x_shape, dtype=dtype), rand(5, 4, dtype=dtype, seed=1), rand(4, dtype=dtype, seed=2)
    for act in (None, Relu(), Gelu(), LeakyRelu(alpha=0.1)):
        y = MatMul().compute([x, w])[0]
        y = Add().compute([y, b])[0]
        want = act.compute([y])[0] if act else y
        got = Dense(activation=act).compute([x, w, b])[0]
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))


def test_dense_without_bias_and_integer_dense():
    x, w = rand(3, 5), rand(5, 2, seed=1)
    np.testing.assert_array_equal(Dense().compute([x, w])[0], MatMul().compute([x, w])[0])
    xi, wi = np.arange(6, dtype=np.int32).reshape(2, 3), np.ones((3, 2), np.int32)
    np.testing.assert_array_equal(Dense().compute([xi, wi])[0], xi @ wi)


def test_dense_infer_token_wise_and_with_activation():
    x, w, b = TensorType((2, 7, 16), F32), TensorType((16, 8), F32), TensorType((8,), F32)
    assert Dense().infer([x, w, b]) == [TensorType((2, 7, 8), F32)]
    assert Dense(activation=Clip(min=0.0, max=6.0)).infer([x, w]) == [TensorType((2, 7, 8), F32)]
    assert Dense().infer([TensorType((16,), F32), w]) == [TensorType((8,), F32)]
    assert Dense().infer([TensorType((3, 16), I32), TensorType((16, 8), I32)]) == [TensorType((3, 8), I32)]


@pytest.mark.parametrize("inputs, message", [
    ([TensorType((2, 16), F32), TensorType((8, 16), F32)], "does not fit weight"),
    ([TensorType((2, 16), F32), TensorType((2, 16, 8), F32)], "does not fit weight"),
    ([TensorType((2, 16), F32), TensorType((16, 8), F32), TensorType((1, 8), F32)], "bias"),
    ([TensorType((2, 16), F32), TensorType((16, 8), F16)], "element types differ"),
    ([TensorType((2, 16), F32)], "takes 2 to 3 inputs"),
])
def test_dense_rejects_shapes_that_do_not_fit(inputs, message):
    with pytest.raises(ShapeError, match=message):
        Dense().infer(inputs)


def test_dense_cost_counts_token_macs():
    x, w = TensorType((2, 7, 16), F32), TensorType((16, 8), F32)
    out = Dense().infer([x, w])
    cost = Dense().cost([x, w], out)
    assert cost.macs == 2 * 7 * 16 * 8
    assert cost.bytes == (2 * 7 * 16 + 16 * 8 + 2 * 7 * 8) * 4
    assert Dense().cost([TensorType((0, 16), F32), w], [TensorType((0, 8), F32)]).macs == 0


def test_fused_conv_is_conv_then_activation():
    conv = Conv(pads=(1, 1, 1, 1), strides=(2, 2))
    x, w, b = rand(1, 3, 9, 9), rand(4, 3, 3, 3, seed=1), rand(4, seed=2)
    fused = FusedConv(conv=conv, activation=Relu())
    want = Relu().compute(conv.compute([x, w, b]))[0]
    np.testing.assert_array_equal(fused.compute([x, w, b])[0], want)
    types = [TensorType(a.shape, F32) for a in (x, w, b)]
    assert fused.infer(types) == conv.infer(types)
    assert fused.cost(types, fused.infer(types)) == conv.cost(types, conv.infer(types))
    np.testing.assert_array_equal(FusedConv(conv=conv).compute([x, w, b])[0], conv.compute([x, w, b])[0])


def test_fused_conv_needs_a_conv():
    with pytest.raises(InvalidModelError, match="must be a Conv"):
        FusedConv(conv=Relu())
    with pytest.raises(InvalidModelError, match="must be a Conv"):
        FusedConv()


def test_fused_ops_are_registered_but_not_onnx_ops():
    assert REGISTRY[("accelgen", "Dense")] is Dense and REGISTRY[("accelgen", "FusedConv")] is FusedConv
    assert "Dense" not in supported_ops() and "FusedConv" not in supported_ops()


def test_fused_ops_hash_and_print_their_activation():
    assert Dense(activation=LeakyRelu(alpha=0.1)) == Dense(activation=LeakyRelu(alpha=0.1))
    assert len({Dense(activation=Relu()), Dense(activation=Relu()), Dense()}) == 2
    assert _attr(LeakyRelu(alpha=0.5)) == "LeakyRelu(alpha=0.5)"
