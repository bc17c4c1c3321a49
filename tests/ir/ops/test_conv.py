"""Conv and ConvTranspose against onnxruntime over 1-D to 3-D, groups, strides, dilations, explicit and automatic
padding, output_padding and output_shape; both Conv compute paths; MAC counts and error messages."""

from __future__ import annotations

import time

import numpy as np
import pytest

import accelgen
import accelgen.ir.ops.conv as conv_module
from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.conv import Conv, ConvTranspose
from accelgen.ir.types import F32, TensorType
from tests.ir.ops.test_linear import F16_TOL
from tests.onnxmodels import build, check, load
from tests.ortcheck import rand


def conv_inputs(x_shape, w_shape, bias=False, seed=0):
    inputs = [("x", rand(*x_shape, seed=seed)), ("w", rand(*w_shape, seed=seed + 1))]
    return inputs + ([("b", rand(w_shape[0], seed=seed + 2))] if bias else [])


# -- Conv -------------------------------------------------------------------------------------------------------
CONVS = [
    # x shape, w shape, attributes
    ((1, 3, 8, 8), (4, 3, 3, 3), {}),
    ((2, 3, 9, 7), (4, 3, 3, 2), dict(pads=[1, 0, 2, 1], strides=[2, 1])),
    ((1, 4, 10, 10), (6, 2, 3, 3), dict(group=2, dilations=[2, 1], pads=[2, 1, 2, 1])),
    ((1, 6, 8, 8), (6, 1, 3, 3), dict(group=6, pads=[1, 1, 1, 1])),  # depthwise
    ((1, 4, 8, 8), (8, 1, 3, 3), dict(group=4, strides=[2, 2])),  # depthwise multiplier 2
    ((1, 1, 6, 6), (5, 1, 2, 2), dict(kernel_shape=[2, 2])),
    ((1, 3, 11), (5, 3, 4), dict(strides=[3], pads=[2, 1])),  # 1-D
    ((1, 2, 5, 6, 7), (3, 2, 2, 3, 2), dict(strides=[1, 2, 2], pads=[1, 0, 1, 0, 1, 1])),  # 3-D
    ((1, 3, 7, 7), (2, 3, 7, 7), {}),  # kernel covers the input
    ((1, 3, 8, 8), (4, 3, 1, 1), dict(strides=[2, 2])),  # pointwise, strided
]


@pytest.mark.parametrize("x,w,attrs", CONVS)
@pytest.mark.parametrize("bias", [False, True])
def test_conv(x, w, attrs, bias):
    check("Conv", conv_inputs(x, w, bias), 11, attrs, consts=("w", "b"))


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("size,kernel,stride", [(7, 3, 1), (8, 3, 2), (7, 4, 2), (9, 2, 3), (6, 1, 3), (5, 5, 1)])
def test_conv_auto_pad(auto_pad, size, kernel, stride):
    # Odd totals put the extra pad at the end (SAME_UPPER) or the start (SAME_LOWER); kernel < stride pads nothing.
    check("Conv", conv_inputs((1, 2, size, size + 1), (3, 2, kernel, kernel)), 11,
          dict(auto_pad=auto_pad, strides=[stride, stride]))


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("size,kernel,stride,dilation", [(7, 3, 1, 2), (8, 3, 2, 2), (9, 2, 2, 3)])
def test_conv_same_dilated_follows_onnx_reference(auto_pad, size, kernel, stride, dilation):
    """onnxruntime refuses SAME padding with dilations; accelgen pads for the dilated kernel like the spec."""
    from onnx.reference import ReferenceEvaluator

    inputs = conv_inputs((1, 2, size, size), (3, 2, kernel, kernel))
    m = build("Conv", inputs, 11, dict(auto_pad=auto_pad, strides=[stride] * 2, dilations=[dilation] * 2))
    (want,) = ReferenceEvaluator(m).run(None, dict(inputs))
    got = accelgen.run(accelgen.load(m), dict(inputs))["y0"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", [1, 11, 22])
def test_conv_opsets(opset):
    check("Conv", conv_inputs((1, 3, 6, 6), (2, 3, 3, 3), bias=True), opset, dict(pads=[1, 1, 1, 1]))


def test_conv_dtypes():
    inputs = conv_inputs((1, 3, 6, 6), (4, 3, 3, 3), bias=True)
    check("Conv", [(n, a.astype(np.float16)) for n, a in inputs], 11, dict(pads=[1, 1, 1, 1]), **F16_TOL)
    # onnxruntime has no float64 Conv: float64 must agree with float32 and stay float64.
    (y64,) = Conv(pads=(1, 1, 1, 1)).compute([a.astype(np.float64) for _, a in inputs])
    (y32,) = Conv(pads=(1, 1, 1, 1)).compute([a for _, a in inputs])
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, y32, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x,w,attrs", CONVS)
def test_conv_paths_agree(x, w, attrs, monkeypatch):
    """The im2col product and the tap-by-tap accumulation compute the same convolution."""
    op = Conv(**{k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()})
    args = [a for _, a in conv_inputs(x, w, bias=True)]
    (big,) = op.compute(args)
    monkeypatch.setattr(conv_module, "IM2COL_LIMIT", 0)
    (small,) = op.compute(args)
    np.testing.assert_allclose(small, big, rtol=1e-5, atol=1e-5)


def test_conv_cost():
    g = check("Conv", conv_inputs((2, 4, 8, 8), (6, 2, 3, 3), bias=True), 11, dict(group=2, pads=[1, 1, 1, 1]),
              consts=("w", "b"))
    node = g.nodes[0]
    cost = node.op.cost([v.type for v in node.inputs], [v.type for v in node.outputs])
    assert cost.macs == (2 * 6 * 8 * 8) * 2 * 3 * 3  # output elements * (C / group) * kernel
    assert cost.bytes == 4 * (2 * 4 * 64 + 6 * 2 * 9 + 6 + 2 * 6 * 64)


def test_small_cnn_is_fast():
    x = rand(1, 3, 32, 32)
    pad = (1, 1, 1, 1)
    layers = [(Conv(pads=pad), rand(32, 3, 3, 3)), (Conv(pads=pad, strides=(2, 2)), rand(64, 32, 3, 3)),
              (Conv(pads=pad), rand(64, 64, 3, 3)), (Conv(group=64, pads=pad), rand(64, 1, 3, 3))]
    start = time.perf_counter()
    for op, w in layers:
        (x,) = op.compute([x, w])
    assert x.shape == (1, 64, 16, 16)
    assert time.perf_counter() - start < 2.0


def test_conv_shape_errors():
    with pytest.raises(ShapeError, match=r"X \(1, 4, 8, 8\) has 4 channels but W \(6, 3, 3, 3\) with group=1 "
                                         r"expects 3"):
        load("Conv", conv_inputs((1, 4, 8, 8), (6, 3, 3, 3)), 11)
    with pytest.raises(ShapeError, match="divisible by the group"):
        load("Conv", conv_inputs((1, 4, 8, 8), (3, 2, 3, 3)), 11, dict(group=2))
    with pytest.raises(ShapeError, match=r"kernel_shape \(2, 2\) does not match W \(6, 3, 3, 3\)"):
        load("Conv", conv_inputs((1, 3, 8, 8), (6, 3, 3, 3)), 11, dict(kernel_shape=[2, 2]))
    with pytest.raises(ShapeError, match=r"bias B \(4,\) must have shape \(6,\)"):
        Conv().infer([TensorType((1, 3, 8, 8), F32), TensorType((6, 3, 3, 3), F32), TensorType((4,), F32)])
    with pytest.raises(ShapeError, match="too small for kernel"):
        load("Conv", conv_inputs((1, 3, 2, 8), (6, 3, 3, 3)), 11)
    with pytest.raises(ShapeError, match="same rank"):
        Conv().infer([TensorType((1, 3, 8, 8), F32), TensorType((6, 3, 3), F32)])
    with pytest.raises(ShapeError, match="4 pads"):
        Conv(pads=(1, 1)).infer([TensorType((1, 3, 8, 8), F32), TensorType((6, 3, 3, 3), F32)])


def test_conv_invalid_attributes():
    with pytest.raises(InvalidModelError, match="auto_pad 'SAME'"):
        Conv(auto_pad="SAME")
    with pytest.raises(InvalidModelError, match="group"):
        Conv(group=0)


# -- ConvTranspose ----------------------------------------------------------------------------------------------
CONV_TRANSPOSES = [
    ((1, 2, 3, 3), (2, 3, 3, 3), {}),
    ((1, 2, 4, 3), (2, 3, 3, 2), dict(strides=[2, 3])),
    ((2, 2, 3, 4), (2, 3, 3, 3), dict(strides=[2, 2], pads=[1, 0, 1, 2])),
    ((1, 2, 3, 3), (2, 3, 3, 3), dict(strides=[3, 2], output_padding=[1, 1])),
    ((1, 2, 3, 3), (2, 1, 2, 3), dict(strides=[2, 2], dilations=[2, 3])),
    ((1, 4, 3, 3), (4, 2, 3, 3), dict(group=2, strides=[2, 2])),
    ((1, 4, 3, 3), (4, 1, 3, 3), dict(group=4, strides=[2, 1], pads=[1, 1, 1, 1])),  # depthwise
    ((1, 2, 5), (2, 3, 4), dict(strides=[2], pads=[1, 2])),  # 1-D
    ((1, 2, 3, 2, 3), (2, 2, 2, 3, 2), dict(strides=[2, 1, 2])),  # 3-D
    ((1, 2, 3, 3), (2, 3, 3, 3), dict(strides=[3, 2], output_shape=[10, 8])),  # larger than full: zeros at end
    ((1, 2, 3, 3), (2, 3, 3, 3), dict(strides=[2, 2], output_shape=[5, 6])),  # crops, odd total at the head
]


@pytest.mark.parametrize("x,w,attrs", CONV_TRANSPOSES)
@pytest.mark.parametrize("bias", [False, True])
def test_conv_transpose(x, w, attrs, bias):
    inputs = conv_inputs(x, w)
    if bias:
        inputs.append(("b", rand(w[1] * attrs.get("group", 1), seed=9)))
    check("ConvTranspose", inputs, 11, attrs, consts=("w", "b"))


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("size,kernel,stride,dilation", [(3, 3, 2, 1), (4, 2, 2, 1), (3, 3, 1, 2), (2, 1, 3, 1),
                                                         (3, 4, 3, 1), (3, 2, 2, 2)])
def test_conv_transpose_auto_pad(auto_pad, size, kernel, stride, dilation):
    check("ConvTranspose", conv_inputs((1, 2, size, size), (2, 3, kernel, kernel)), 11,
          dict(auto_pad=auto_pad, strides=[stride, stride], dilations=[dilation, dilation]))


@pytest.mark.parametrize("auto_pad", ["NOTSET", "SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("out", [4, 5, 6, 7, 8])
def test_conv_transpose_output_shape_split(auto_pad, out):
    # full size (3 - 1) * 2 + 3 = 7: smaller outputs crop (SAME_UPPER puts the odd element at the tail)
    check("ConvTranspose", conv_inputs((1, 1, 3), (1, 1, 3)), 11,
          dict(auto_pad=auto_pad, strides=[2], output_shape=[out]))


@pytest.mark.parametrize("opset", [1, 11, 22])
def test_conv_transpose_opsets(opset):
    check("ConvTranspose", conv_inputs((1, 2, 3, 3), (2, 3, 3, 3)), opset, dict(strides=[2, 2], pads=[1, 1, 1, 1]))


def test_conv_transpose_float16():
    inputs = [(n, a.astype(np.float16)) for n, a in conv_inputs((1, 2, 4, 4), (2, 3, 3, 3))]
    check("ConvTranspose", inputs, 11, dict(strides=[2, 2]), **F16_TOL)


def test_conv_transpose_cost():
    op = ConvTranspose(group=2, strides=(2, 2))
    ins = [TensorType((1, 4, 3, 3), F32), TensorType((4, 2, 3, 3), F32)]
    (out,) = op.infer(ins)
    assert out.shape == (1, 4, 7, 7)
    assert op.cost(ins, [out]).macs == (1 * 4 * 3 * 3) * 2 * 3 * 3  # input elements * (M / group) * kernel


def test_conv_transpose_errors():
    with pytest.raises(ShapeError, match=r"X \(1, 3, 3, 3\) has 3 channels but W \(2, 3, 3, 3\) has 2"):
        load("ConvTranspose", conv_inputs((1, 3, 3, 3), (2, 3, 3, 3)), 11)
    with pytest.raises(ShapeError, match="output_padding .* less than the strides"):
        load("ConvTranspose", conv_inputs((1, 2, 3, 3), (2, 3, 3, 3)), 11, dict(strides=[2, 2], output_padding=[2, 0]))
    with pytest.raises(ShapeError, match="output_shape .* is too large"):
        load("ConvTranspose", conv_inputs((1, 2, 3, 3), (2, 3, 3, 3)), 11, dict(strides=[2, 2], output_shape=[9, 9]))
    # ORT's kernel also takes output_shape with N and C in front (ONNX shape inference refuses it)
    ins = [TensorType((1, 2, 3, 3), F32), TensorType((2, 3, 3, 3), F32)]
    assert ConvTranspose(strides=(2, 2), output_shape=(1, 3, 5, 6)).infer(ins)[0].shape == (1, 3, 5, 6)
    with pytest.raises(ShapeError, match="do not fit 2 spatial dims"):
        ConvTranspose(output_shape=(5,)).infer([TensorType((1, 2, 3, 3), F32), TensorType((2, 3, 3, 3), F32)])
    with pytest.raises(ShapeError, match="output size"):
        ConvTranspose(pads=(2, 2, 2, 2)).infer([TensorType((1, 2, 1, 1), F32), TensorType((2, 3, 3, 3), F32)])
