"""MaxPool (with Indices), AveragePool, LpPool, the global pools and LRN against onnxruntime: 1-D to 3-D, pads,
strides, dilations, ceil_mode (including windows past the padding), auto_pad, dtypes and opset forms."""

from __future__ import annotations

import numpy as np
import pytest

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.pool import LRN, AveragePool, GlobalAveragePool, MaxPool
from accelgen.ir.types import F32, I64, TensorType
from tests.ir.ops.test_linear import F16_TOL
from tests.onnxmodels import check, load
from tests.ortcheck import rand

WINDOWS = [
    # x shape, attributes (kernel_shape always given)
    ((1, 2, 8, 8), dict(kernel_shape=[2, 2], strides=[2, 2])),
    ((2, 3, 7, 9), dict(kernel_shape=[3, 2], strides=[2, 3], pads=[1, 0, 1, 1])),
    ((1, 2, 7, 7), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    ((1, 2, 9), dict(kernel_shape=[4], strides=[2], pads=[2, 1])),  # 1-D
    ((1, 2, 5, 6, 7), dict(kernel_shape=[2, 3, 2], strides=[2, 1, 2], pads=[1, 0, 1, 0, 1, 1])),  # 3-D
    ((1, 2, 7, 8), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ((1, 2, 6, 6), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)),
    ((1, 1, 4, 4), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)),  # last window dropped
    ((1, 1, 2, 5), dict(kernel_shape=[3, 2], strides=[3, 3], ceil_mode=1)),  # a window reaching past the input
    ((1, 1, 1, 5), dict(kernel_shape=[2, 2], strides=[3, 2])),  # kernel larger than input, one window
]
DILATED = [
    ((1, 2, 9, 9), dict(kernel_shape=[3, 3], dilations=[2, 2])),
    ((1, 2, 10, 9), dict(kernel_shape=[2, 3], dilations=[3, 2], strides=[2, 1], pads=[1, 2, 0, 1], ceil_mode=1)),
    ((1, 1, 6, 7, 8), dict(kernel_shape=[2, 2, 2], dilations=[2, 1, 3], strides=[2, 2, 1])),
]
AUTO = [(auto_pad, size, kernel, stride) for auto_pad in ("SAME_UPPER", "SAME_LOWER", "VALID")
        for size, kernel, stride in [(7, 3, 1), (8, 3, 2), (7, 4, 2), (9, 3, 3), (5, 5, 1)]]
# (a kernel smaller than the stride pads SAME negatively, which ORT's 2-D pools refuse)


# -- MaxPool ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x,attrs", WINDOWS + DILATED)
def test_maxpool(x, attrs):
    check("MaxPool", [("x", rand(*x))], 12, attrs)


@pytest.mark.parametrize("auto_pad,size,kernel,stride", AUTO)
@pytest.mark.parametrize("ceil_mode", [0, 1])
def test_maxpool_auto_pad(auto_pad, size, kernel, stride, ceil_mode):
    check("MaxPool", [("x", rand(1, 2, size, size + 2))], 12,
          dict(auto_pad=auto_pad, kernel_shape=[kernel, kernel], strides=[stride, stride], ceil_mode=ceil_mode))


@pytest.mark.parametrize("x,attrs", WINDOWS + DILATED)
@pytest.mark.parametrize("storage_order", [0, 1])
def test_maxpool_indices(x, attrs, storage_order):
    g = check("MaxPool", [("x", rand(*x))], 12, {**attrs, "storage_order": storage_order}, n_out=2)
    assert g.nodes[0].op.with_indices and g.outputs[1].type.dtype == I64


def test_maxpool_indices_of_padding_only_window():
    # kernel 2 dilated 2 over one column padded on the left: the window sees padding only, max = lowest float
    check("MaxPool", [("x", rand(1, 1, 4, 1))], 12,
          dict(kernel_shape=[1, 2], dilations=[1, 2], strides=[3, 2], auto_pad="SAME_LOWER"), n_out=2)


@pytest.mark.parametrize("opset", [7, 8, 10, 11, 12, 22])
def test_maxpool_opsets(opset):
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    if opset >= 10:
        attrs["ceil_mode"] = 1
    check("MaxPool", [("x", rand(1, 3, 8, 8))], opset, attrs, n_out=2 if opset >= 8 else 1)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int8, np.uint8])
def test_maxpool_dtypes(dtype):
    x = rand(1, 2, 7, 7, low=-100, high=100).astype(dtype)
    check("MaxPool", [("x", x)], 12, dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), n_out=2)


# -- AveragePool ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x,attrs", WINDOWS)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_averagepool(x, attrs, count_include_pad):
    # Opset 19's kernel: before it, ORT divided by the whole kernel size when count_include_pad=1 and one window
    # is larger than the padded input (the last WINDOWS case); accelgen counts the padded input only.
    check("AveragePool", [("x", rand(*x))], 19, {**attrs, "count_include_pad": count_include_pad})
    if x != WINDOWS[-1][0]:
        check("AveragePool", [("x", rand(*x))], 11, {**attrs, "count_include_pad": count_include_pad})


@pytest.mark.parametrize("x,attrs", DILATED)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_averagepool_dilations(x, attrs, count_include_pad):
    check("AveragePool", [("x", rand(*x))], 19, {**attrs, "count_include_pad": count_include_pad})


@pytest.mark.parametrize("auto_pad,size,kernel,stride", AUTO)
@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_averagepool_auto_pad(auto_pad, size, kernel, stride, ceil_mode, count_include_pad):
    check("AveragePool", [("x", rand(1, 2, size, size + 2))], 11,
          dict(auto_pad=auto_pad, kernel_shape=[kernel, kernel], strides=[stride, stride], ceil_mode=ceil_mode,
               count_include_pad=count_include_pad))


def test_averagepool_dilated_negative_same_padding():
    # kernel (2, dilation 2) under stride 3 pads SAME negatively: ORT's dilated kernel cuts windows at the end
    for auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        check("AveragePool", [("x", rand(1, 1, 6))], 19,
              dict(kernel_shape=[2], strides=[3], dilations=[2], auto_pad=auto_pad, ceil_mode=1))


@pytest.mark.parametrize("opset", [7, 10, 11, 19, 22])
def test_averagepool_opsets(opset):
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)
    if opset >= 10:
        attrs["ceil_mode"] = 1
    check("AveragePool", [("x", rand(1, 3, 8, 8))], opset, attrs)


def test_averagepool_float16():
    check("AveragePool", [("x", rand(1, 2, 7, 7).astype(np.float16))], 11,
          dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), **F16_TOL)


# -- LpPool -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x,attrs", WINDOWS[:5])
@pytest.mark.parametrize("p", [1, 2, 3])
def test_lppool(x, attrs, p):
    check("LpPool", [("x", rand(*x))], 11, {**attrs, "p": p})


@pytest.mark.parametrize("x,attrs", WINDOWS[5:] + DILATED)
def test_lppool_opset18(x, attrs):
    check("LpPool", [("x", rand(*x))], 18, {**attrs, "p": 2})


# -- global pools and LRN ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 6, 7), (1, 2, 3, 4, 5)])
def test_global_pools(op, shape):
    check(op, [("x", rand(*shape))], 11)


def test_global_pools_float16():
    for op in ("GlobalAveragePool", "GlobalMaxPool"):
        check(op, [("x", rand(1, 8, 5, 5).astype(np.float16))], 11, **F16_TOL)


def test_global_lp_pool():
    # onnxruntime's CPU provider has no GlobalLpPool kernel: compare with numpy.
    from accelgen.ir.ops.pool import GlobalLpPool

    x = rand(2, 3, 4, 5)
    for p in (1, 2, 3):
        (y,) = GlobalLpPool(p=p).compute([x])
        want = (np.abs(x.astype(np.float64)) ** p).sum(axis=(2, 3), keepdims=True) ** (1 / p)
        np.testing.assert_allclose(y, want, rtol=1e-5)
        assert y.shape == GlobalLpPool(p=p).infer([TensorType.of(x)])[0].shape


@pytest.mark.parametrize("size", [1, 3, 5, 9])
def test_lrn(size):
    check("LRN", [("x", rand(2, 6, 4, 3))], 13, dict(size=size, alpha=0.01, beta=0.6, bias=2.0))


@pytest.mark.parametrize("size", [2, 4])
@pytest.mark.parametrize("shape", [(1, 6, 4, 4), (2, 7, 3)])
def test_lrn_even_size_and_other_ranks(size, shape):
    # onnxruntime only takes odd sizes and 4-D inputs: compare with the ONNX formula directly.
    x = rand(*shape)
    (y,) = LRN(size=size, alpha=0.01, beta=0.6, bias=2.0).compute([x])
    sq = np.square(x.astype(np.float64))
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    total = np.stack([sq[:, max(0, c - lo):c + hi + 1].sum(axis=1) for c in range(shape[1])], axis=1)
    np.testing.assert_allclose(y, x / (2.0 + 0.01 / size * total) ** 0.6, rtol=1e-5)


def test_lrn_defaults_and_old_opset():
    check("LRN", [("x", rand(1, 5, 3, 3))], 1, dict(size=3))


# -- errors -----------------------------------------------------------------------------------------------------
def test_pool_errors():
    with pytest.raises(InvalidModelError, match="kernel_shape"):
        MaxPool()
    with pytest.raises(InvalidModelError, match="auto_pad 'SAME'"):
        AveragePool(kernel_shape=(2, 2), auto_pad="SAME")
    with pytest.raises(ShapeError, match=r"\(N, C, \*spatial\)"):
        MaxPool(kernel_shape=(2,)).infer([TensorType((3, 4), F32)])
    with pytest.raises(ShapeError, match=r"2 spatial dims need 2 kernel dims.*strides \(1, 1, 1\)"):
        MaxPool(kernel_shape=(2, 2), strides=(1, 1, 1)).infer([TensorType((1, 1, 4, 4), F32)])
    with pytest.raises(ShapeError, match=r"spatial dims \(2, 5\) are too small for kernel \(4, 2\)"):
        load("MaxPool", [("x", rand(1, 1, 2, 5))], 12, dict(kernel_shape=[4, 2]))
    with pytest.raises(ShapeError, match=r"got shape \(3,\)"):
        GlobalAveragePool().infer([TensorType((3,), F32)])
    with pytest.raises(InvalidModelError, match="size"):
        LRN()
