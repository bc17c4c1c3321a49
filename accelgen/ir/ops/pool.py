"""Pooling: MaxPool, AveragePool, LpPool, their global forms, and LRN (a pool across channels).

Windows are read through one strided view of the padded input (conv.windows) and reduced with numpy; output sizes
come from conv.window_geometry, which matches onnxruntime (ceil_mode, SAME_UPPER/SAME_LOWER).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import ml_dtypes
import numpy as np

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.base import Op
from accelgen.ir.ops.conv import AUTO_PADS, Geometry, window_geometry, windows
from accelgen.ir.ops.fixed_math import sum_type
from accelgen.ir.ops.linear import as_work
from accelgen.ir.ops.quantized import FixedPlan
from accelgen.ir.ops.registry import register
from accelgen.ir.types import I64, TensorType


@dataclass(frozen=True)
class _Pool(Op):
    auto_pad: str = "NOTSET"
    ceil_mode: int = 0
    dilations: tuple[int, ...] = ()
    kernel_shape: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()

    def __post_init__(self):
        if self.auto_pad not in AUTO_PADS:
            raise InvalidModelError(f"{self.op_type}: auto_pad {self.auto_pad!r} is not one of {', '.join(AUTO_PADS)}")
        if not self.kernel_shape:
            raise InvalidModelError(f"{self.op_type}: the 'kernel_shape' attribute is required")

    def geometry(self, shape) -> Geometry:
        if len(shape) < 3:
            raise ShapeError(f"{self.op_type}: input must be (N, C, *spatial), got shape {tuple(shape)}")
        return window_geometry(self, shape[2:], self.kernel_shape, pool=True)

    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        return [TensorType(x.shape[:2] + self.geometry(x.shape).out, x.dtype)]

    def reduce_axes(self, nd: int) -> tuple[int, ...]:
        return tuple(range(2 + nd, 2 + 2 * nd))


def _lowest(dtype: np.dtype):
    """The value ORT starts a max from (and so what an all-padding window yields): lowest finite number."""
    if np.dtype(dtype).kind in "iu":
        return np.iinfo(dtype).min
    return ml_dtypes.finfo(dtype).min  # ml_dtypes.finfo also knows numpy's own float types


@register
@dataclass(frozen=True)
class MaxPool(_Pool):
    """Max over each window; padding never wins. With a second ONNX output, also the argmax as a flat index
    into X (row-major, or column-major over the spatial dims when storage_order=1)."""

    exact_in_fixed = True
    keeps_type = True

    storage_order: int = 0
    with_indices: bool = False  # set on import when the node has the optional Indices output

    @classmethod
    def from_onnx(cls, attrs, opset, n_outputs):
        return cls.from_attrs({**attrs, "with_indices": n_outputs > 1})

    def infer(self, inputs):
        (y,) = super().infer(inputs)
        return [y, y.with_dtype(I64)] if self.with_indices else [y]

    def compute(self, inputs):
        x = inputs[0]  # max is exact in every dtype: no widening
        g = self.geometry(x.shape)
        nd = len(g.out)
        view = windows(x, g, _lowest(x.dtype))
        y = view.max(axis=self.reduce_axes(nd))
        if not self.with_indices:
            return [y]
        flat = view.reshape(*view.shape[: 2 + nd], -1)
        taps = np.unravel_index(flat.argmax(axis=-1), g.kernel)  # first maximum in window order, as ORT
        spatial = x.shape[2:]
        grids = np.meshgrid(*(np.arange(o) for o in g.out), indexing="ij")
        # ORT keeps only values above the lowest number; a window without one (all padding) reports position -1.
        found = y > _lowest(x.dtype)
        coords = [np.where(found, grid * s - b + t * d, -1)
                  for grid, s, b, t, d in zip(grids, g.strides, g.begin, taps, g.dilations)]
        order = range(nd) if self.storage_order else reversed(range(nd))
        index, step = 0, 1
        for i in order:  # flat offset, row-major (or column-major over the spatial dims)
            index, step = index + coords[i] * step, step * spatial[i]
        n, c = x.shape[:2]
        base = (np.arange(n)[:, None] * c + np.arange(c)[None, :]) * int(np.prod(spatial))
        return [y, (base.reshape(n, c, *(1,) * nd) + index).astype(np.int64)]


def _counts(g: Geometry, spatial, include_pad: bool) -> np.ndarray:
    """Taps per window that land in the input (or in its declared padding, with count_include_pad), as the
    outer product of per-axis counts; ceil_mode's extra reach beyond the pads never counts."""
    total = np.ones((), np.float32)
    for n, o, k, s, d, b, e in zip(spatial, g.out, g.kernel, g.strides, g.dilations, g.begin, g.end):
        pos = np.arange(o)[:, None] * s - b + np.arange(k)[None, :] * d
        lo, hi = (-max(b, 0), n + max(e, 0)) if include_pad else (0, n)
        count = ((pos >= lo) & (pos < hi)).sum(axis=1).astype(np.float32)
        total = np.multiply.outer(total, count)
    return total


@register
@dataclass(frozen=True)
class AveragePool(_Pool):
    """Mean over each window's taps inside the input (count_include_pad=1: inside the declared pads too)."""

    count_include_pad: int = 0

    def _sums(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(window sums, taps per window) for the work-dtype input x."""
        g = self.geometry(x.shape)
        spatial = x.shape[2:]
        if any(d != 1 for d in g.dilations) and min(g.end) < 0:
            # ORT's dilated kernel stops windows at the (negatively) padded end: drop the cut-off tail.
            spatial = tuple(n + min(e, 0) for n, e in zip(spatial, g.end))
            x = x[(slice(None), slice(None), *(slice(0, n) for n in spatial))]
            g = replace(g, end=tuple(max(e, 0) for e in g.end))
        return windows(x, g).sum(axis=self.reduce_axes(len(g.out))), _counts(g, spatial, bool(self.count_include_pad))

    def compute(self, inputs):
        total, counts = self._sums(as_work(inputs[0]))
        y = total / np.maximum(counts.astype(total.dtype), 1)  # a window of padding only averages to 0, as in ORT
        return [y.astype(inputs[0].dtype, copy=False)]

    # Fixed point: the exact window sum times q(1/count), one constant per output position (the count differs at
    # the borders unless count_include_pad), exact; the node rounds it to the output type.
    def fixed_precision(self, node, ctx) -> FixedPlan:
        x = node.inputs[0]
        _, counts = self._sums(np.zeros(x.shape, np.float64))
        reciprocals = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
        total = sum_type(x.dtype, int(np.prod(self.kernel_shape)))
        return FixedPlan(ctx.output_types(node), [("mean", ctx.rescale(total, reciprocals))])

    def compute_fixed(self, inputs, q):
        total, _ = self._sums(np.asarray(inputs[0], np.float64))
        return [q.param("mean").apply(total)]


@register
@dataclass(frozen=True)
class LpPool(_Pool):
    """(sum |x|^p)^(1/p) over each window; padding adds zeros."""

    p: int = 2

    def compute(self, inputs):
        x = inputs[0]
        g = self.geometry(x.shape)
        view = windows(np.abs(as_work(x)), g)
        return [_lp(view, self.p, self.reduce_axes(len(g.out))).astype(x.dtype, copy=False)]


def _lp(a: np.ndarray, p: int, axes) -> np.ndarray:
    if p == 1:
        return a.sum(axis=axes)
    if p == 2:
        return np.sqrt(np.square(a).sum(axis=axes))
    return np.power(np.power(a, p).sum(axis=axes), 1.0 / p).astype(a.dtype, copy=False)


@dataclass(frozen=True)
class _GlobalPool(Op):
    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        if x.rank < 2:
            raise ShapeError(f"{self.op_type}: input must be (N, C, *spatial), got shape {x.shape}")
        return [x.with_shape(x.shape[:2] + (1,) * (x.rank - 2))]

    def compute(self, inputs):
        x = inputs[0]
        xw = as_work(x) if x.dtype.kind == "f" else x
        return [np.asarray(self.reduce(xw, tuple(range(2, x.ndim)))).astype(x.dtype, copy=False)]


@register
@dataclass(frozen=True)
class GlobalAveragePool(_GlobalPool):
    """Mean over the spatial axes. Fixed point: the exact sum times q(1/N) ("mean"), exact; the node rounds it."""

    def reduce(self, x, axes):
        return x.mean(axis=axes, keepdims=True)

    def fixed_precision(self, node, ctx) -> FixedPlan:
        x = node.inputs[0]
        n = int(np.prod(x.shape[2:], dtype=np.int64))
        return FixedPlan(ctx.output_types(node), [("mean", ctx.rescale(sum_type(x.dtype, n), 1.0 / n))])

    def compute_fixed(self, inputs, q):
        x = np.asarray(inputs[0], np.float64)
        return [q.param("mean").apply(x.sum(axis=tuple(range(2, x.ndim)), keepdims=True))]


@register
@dataclass(frozen=True)
class GlobalMaxPool(_GlobalPool):
    exact_in_fixed = True
    keeps_type = True
    def reduce(self, x, axes):
        return x.max(axis=axes, keepdims=True)


@register
@dataclass(frozen=True)
class GlobalLpPool(_GlobalPool):
    p: int = 2

    def reduce(self, x, axes):
        return _lp(np.abs(x), self.p, axes).reshape(*x.shape[:2], *(1,) * (x.ndim - 2))


@register
@dataclass(frozen=True)
class LRN(Op):
    """Local response normalization across channels: x / (bias + alpha / size * sum of squares over the
    `size` channels around c, floor((size-1)/2) before and ceil((size-1)/2) after) ** beta."""

    alpha: float = 0.0001
    beta: float = 0.75
    bias: float = 1.0
    size: int = 0

    def __post_init__(self):
        if self.size < 1:
            raise InvalidModelError(f"LRN: 'size' must be a positive integer, got {self.size}")

    def infer(self, inputs):
        self.arity(inputs, 1)
        if inputs[0].rank < 2:
            raise ShapeError(f"LRN: input must be (N, C, ...), got shape {inputs[0].shape}")
        return [inputs[0]]

    def compute(self, inputs):
        x = inputs[0]
        sq = np.square(as_work(x))
        before, c = (self.size - 1) // 2, x.shape[1]
        padded = np.pad(sq, [(0, 0), (before, self.size - 1 - before)] + [(0, 0)] * (x.ndim - 2))
        total = sum(padded[:, i:i + c] for i in range(self.size))
        dt = sq.dtype.type
        y = as_work(x) / (dt(self.bias) + dt(self.alpha) / dt(self.size) * total) ** dt(self.beta)
        return [y.astype(x.dtype, copy=False)]
