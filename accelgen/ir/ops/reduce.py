"""Reductions: the Reduce* family, ArgMax/ArgMin and TopK.

Every Reduce* op is one class shape: an elementwise map before the reduction, the reduction, a map after it (e.g.
ReduceL2 = sqrt(sum(x*x))). The axes are an attribute before opset 18 (ReduceSum: 13) and a constant input after;
both land in the `axes` attribute. Empty or absent axes reduce everything unless `noop_with_empty_axes` is set,
in which case the reduction is over no axes at all: only the elementwise maps apply, as in ONNX's reference
implementation and onnxruntime (ReduceSumSquare then yields x*x, ReduceL1 |x|...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.base import Op, normalize_axis
from accelgen.ir.ops.fixed_math import sum_type
from accelgen.ir.ops.quantized import FixedPlan
from accelgen.ir.ops.registry import register
from accelgen.ir.types import I64, FixedType, TensorType


def _as_axes(value) -> tuple[int, ...] | None:
    """Axes as a tuple of ints (a scalar constant input arrives as a plain int)."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist()
    if isinstance(value, (int, np.integer)):
        return (int(value),)
    return tuple(int(a) for a in value)


def _as_int(value, what: str) -> int:
    """A scalar that may arrive as a 1-element tuple (a 1-D constant input)."""
    if isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist()
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise InvalidModelError(f"{what} must hold a single value, got {len(value)}")
        value = value[0]
    return int(value)


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    """Half-precision floats accumulate in float32 (as onnxruntime does); everything else in its own type."""
    if dtype.kind == "f" and dtype.itemsize < 4 or dtype.name == "bfloat16":
        return np.dtype(np.float32)
    return dtype


def _check_binary(name: str, value: int, op: str) -> None:
    if value not in (0, 1):
        raise InvalidModelError(f"{op}: {name} must be 0 or 1, got {value}")


@dataclass(frozen=True)
class Reduce(Op):
    """Shared shape logic of the Reduce* ops; subclasses define `reduce(x, axes)` with keepdims=True."""

    attr_inputs = {1: "axes"}

    axes: tuple[int, ...] | None = None
    keepdims: int = 1
    noop_with_empty_axes: int = 0

    def __post_init__(self):
        object.__setattr__(self, "axes", _as_axes(self.axes))
        _check_binary("keepdims", self.keepdims, self.op_type)
        _check_binary("noop_with_empty_axes", self.noop_with_empty_axes, self.op_type)

    def reduced_axes(self, rank: int) -> tuple[int, ...]:
        """The sorted, non-negative axes reduced for an input of `rank` (empty for a no-op)."""
        if not self.axes:
            return () if self.noop_with_empty_axes else tuple(range(rank))
        axes = tuple(sorted(normalize_axis(a, rank, self.op_type) for a in self.axes))
        if len(set(axes)) != len(axes):
            raise ShapeError(f"{self.op_type}: axes {self.axes} name an axis twice")
        return axes

    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        axes = self.reduced_axes(x.rank)
        if self.keepdims:
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return [x.with_shape(shape)]

    def compute(self, inputs):
        x = inputs[0]
        axes = self.reduced_axes(x.ndim)
        work = x.astype(_compute_dtype(x.dtype), copy=False)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = np.asarray(self.reduce(work, axes))
        if not self.keepdims:
            out = out.reshape(tuple(d for i, d in enumerate(x.shape) if i not in axes))
        return [out.astype(x.dtype, copy=False)]

    def reduce(self, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError


def _sum(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Sum with numpy's pairwise summation: move the reduced axes last and flatten them into one contiguous row,
    so float32 sums over long rows (e.g. 768 channels) stay close to onnxruntime's vectorised sums."""
    if not axes:
        return x.copy()
    keep = [i for i in range(x.ndim) if i not in axes]
    moved = np.transpose(x, keep + list(axes))
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    rows = np.ascontiguousarray(moved).reshape(tuple(x.shape[i] for i in keep) + (count,))
    out = rows.sum(axis=-1, dtype=x.dtype)
    return out.reshape(tuple(1 if i in axes else d for i, d in enumerate(x.shape)))


@register
@dataclass(frozen=True)
class ReduceSum(Reduce):
    exact_in_fixed = True
    def reduce(self, x, axes):
        return _sum(x, axes)


@register
@dataclass(frozen=True)
class ReduceMean(Reduce):
    """Mean over `axes`. Fixed point: the exact sum times q(1/N) ("mean"), exact; the node rounds it.

    q(1/N) is a shift when N is a power of two. Integer inputs keep their exact integer semantics."""

    def fixed_precision(self, node, ctx) -> FixedPlan:
        x = node.inputs[0]
        if not isinstance(x.dtype, FixedType):
            return FixedPlan(ctx.output_types(node))
        n = int(np.prod([x.shape[a] for a in self.reduced_axes(len(x.shape))], dtype=np.int64))
        return FixedPlan(ctx.output_types(node), [("mean", ctx.rescale(sum_type(x.dtype, n), 1.0 / max(n, 1)))])

    def compute_fixed(self, inputs, q):
        x = inputs[0]
        if x.dtype.kind != "f":
            return self.compute(inputs)
        axes = self.reduced_axes(x.ndim)
        y = q.param("mean").apply(np.asarray(x, np.float64).sum(axis=axes, keepdims=True))
        if not self.keepdims:
            y = y.reshape(tuple(d for i, d in enumerate(x.shape) if i not in axes))
        return [y]

    def reduce(self, x, axes):
        count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
        total = _sum(x, axes)
        if x.dtype.kind in "iu":  # onnxruntime divides integers in C++: truncation toward zero
            if count == 0:
                return np.zeros_like(total)
            q = np.abs(total) // count
            return np.where(total < 0, -q, q).astype(x.dtype)
        return total / np.asarray(count, x.dtype)


@register
@dataclass(frozen=True)
class ReduceSumSquare(Reduce):
    def reduce(self, x, axes):
        return _sum(x * x, axes)


@register
@dataclass(frozen=True)
class ReduceL1(Reduce):
    def reduce(self, x, axes):
        return _sum(np.abs(x), axes)


@register
@dataclass(frozen=True)
class ReduceL2(Reduce):
    def reduce(self, x, axes):
        out = _sum(x * x, axes)
        if x.dtype.kind in "iu":  # integer L2 norms: sqrt in float64, truncated back like a C++ cast
            return np.sqrt(out.astype(np.float64)).astype(x.dtype)
        return np.sqrt(out)


@register
@dataclass(frozen=True)
class ReduceLogSum(Reduce):
    def reduce(self, x, axes):
        return np.log(_sum(x, axes))


@register
@dataclass(frozen=True)
class ReduceLogSumExp(Reduce):
    def reduce(self, x, axes):
        if not axes:
            return x.copy()
        if x.size == 0:  # log of an empty sum
            return np.log(_sum(x, axes))
        # Subtract the max first so large inputs do not overflow exp; rows that are all -inf (or hold +inf)
        # keep their max as the answer.
        m = np.max(x, axis=axes, keepdims=True)
        shift = np.where(np.isfinite(m), m, np.zeros_like(m))
        return np.log(_sum(np.exp(x - shift), axes)) + shift


@register
@dataclass(frozen=True)
class ReduceProd(Reduce):
    def reduce(self, x, axes):
        return np.prod(x, axis=axes, keepdims=True)


@register
@dataclass(frozen=True)
class ReduceMax(Reduce):
    exact_in_fixed = True
    keeps_type = True
    def reduce(self, x, axes):
        return np.max(x, axis=axes, keepdims=True, initial=_lowest(x.dtype))


@register
@dataclass(frozen=True)
class ReduceMin(Reduce):
    exact_in_fixed = True
    keeps_type = True
    def reduce(self, x, axes):
        return np.min(x, axis=axes, keepdims=True, initial=_highest(x.dtype))


def _lowest(dtype: np.dtype):
    """The value a max over nothing yields (ONNX opset 18+: -inf, or the type's minimum)."""
    if dtype.kind == "b":
        return False
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _highest(dtype: np.dtype):
    if dtype.kind == "b":
        return True
    return np.inf if dtype.kind == "f" else np.iinfo(dtype).max


@dataclass(frozen=True)
class _ArgReduce(Op):
    axis: int = 0
    keepdims: int = 1
    select_last_index: int = 0

    def __post_init__(self):
        _check_binary("keepdims", self.keepdims, self.op_type)
        _check_binary("select_last_index", self.select_last_index, self.op_type)

    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        axis = normalize_axis(self.axis, x.rank, self.op_type)
        if x.shape[axis] == 0:
            raise ShapeError(f"{self.op_type}: axis {self.axis} of {x} is empty; there is no index to return")
        shape = list(x.shape)
        if self.keepdims:
            shape[axis] = 1
        else:
            del shape[axis]
        return [TensorType(tuple(shape), I64)]

    def compute(self, inputs):
        x = inputs[0]
        axis = normalize_axis(self.axis, x.ndim, self.op_type)
        if self.select_last_index:
            last = x.shape[axis] - 1
            idx = last - self.pick(np.flip(x, axis), axis)
        else:
            idx = self.pick(x, axis)
        if self.keepdims:
            idx = np.expand_dims(idx, axis)
        return [idx.astype(np.int64)]

    def pick(self, x: np.ndarray, axis: int) -> np.ndarray:
        raise NotImplementedError


@register
@dataclass(frozen=True)
class ArgMax(_ArgReduce):
    def pick(self, x, axis):
        return np.argmax(x, axis=axis)


@register
@dataclass(frozen=True)
class ArgMin(_ArgReduce):
    def pick(self, x, axis):
        return np.argmin(x, axis=axis)


@register
@dataclass(frozen=True)
class TopK(Op):
    """The k largest (or smallest) entries along `axis` and their int64 indices. Equal values keep their index
    order (lower index first), as onnxruntime does; the result is always sorted, which also satisfies sorted=0."""

    attr_inputs = {1: "k"}  # an attribute before opset 10, a constant input from 10

    k: int | None = None
    axis: int = -1
    largest: int = 1
    sorted: int = 1

    def __post_init__(self):
        if self.k is None:
            raise InvalidModelError("TopK needs k (the attribute before opset 10, input 1 from opset 10)")
        object.__setattr__(self, "k", _as_int(self.k, "TopK k"))
        _check_binary("largest", self.largest, "TopK")
        _check_binary("sorted", self.sorted, "TopK")

    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        axis = normalize_axis(self.axis, x.rank, "TopK")
        if not 0 <= self.k <= x.shape[axis]:
            raise ShapeError(f"TopK: k={self.k} must be in 0..{x.shape[axis]} (axis {self.axis} of {x})")
        shape = x.shape[:axis] + (self.k,) + x.shape[axis + 1:]
        return [x.with_shape(shape), TensorType(shape, I64)]

    def compute(self, inputs):
        x = inputs[0]
        axis = normalize_axis(self.axis, x.ndim, "TopK")
        n = x.shape[axis]
        if self.largest:
            # A stable ascending sort of the reversed axis, read backwards: descending values, and among equal
            # values the lower original index first. No negation, so unsigned and minimum integers stay exact.
            order = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
            order = (n - 1) - np.flip(order, axis)
        else:
            order = np.argsort(x, axis=axis, kind="stable")
        idx = np.take(order, np.arange(self.k), axis=axis)
        return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)]
