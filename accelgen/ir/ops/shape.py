"""Shape ops: reshaping, axis permutation, concatenation and splitting, slicing, broadcasting, and the ops that
produce shapes (Shape, Size, ConstantOfShape, Range).

Everything that fixes an output shape (a Reshape's shape, Slice bounds, Squeeze axes...) is a compile-time
attribute: older opsets spell it as an attribute, newer ones as an input that `attr_inputs` turns into the same
attribute. Shape and Size fold from the input *type*, so PyTorch's Shape -> Gather -> Concat -> Reshape chains
become constants on import.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.base import Op, broadcast_shapes, normalize_axis
from accelgen.ir.ops.registry import register
from accelgen.ir.types import I64, IntType, TensorType, from_numpy

INDEX_TYPES = (IntType(32, True), I64)


def as_ints(value, op: str, what: str) -> tuple[int, ...]:
    """An attribute that must be a list of integers (a scalar counts as a one-element list)."""
    if value is None:
        raise InvalidModelError(f"{op}: {what} is required")
    values = value if isinstance(value, tuple) else (value,)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise InvalidModelError(f"{op}: {what} must be integers, got {value!r}")
    return tuple(int(v) for v in values)


def normalize_axes(axes: Sequence[int], rank: int, op: str) -> tuple[int, ...]:
    out = tuple(normalize_axis(a, rank, op) for a in axes)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: axes {tuple(axes)} repeat an axis")
    return out


def check_index_type(t: TensorType, op: str, what: str = "indices") -> None:
    if t.dtype not in INDEX_TYPES:
        raise ShapeError(f"{op}: {what} must be int32 or int64, got {t.dtype}")


@register
@dataclass(frozen=True)
class Reshape(Op):
    """0 copies the input dimension (unless allowzero=1), -1 is inferred; opset 1-4 shape attribute too."""

    exact_in_fixed = True
    keeps_type = True

    shape: tuple[int, ...] | None = None
    allowzero: int = 0
    attr_inputs = {1: "shape"}
    ignored_attrs = frozenset({"consumed_inputs"})

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        target = list(as_ints(self.shape, "Reshape", "shape"))
        if self.allowzero and 0 in target and -1 in target:
            raise ShapeError(f"Reshape: shape {tuple(target)} has both 0 and -1, which allowzero=1 forbids")
        if sum(d == -1 for d in target) > 1:
            raise ShapeError(f"Reshape: shape {tuple(target)} has more than one -1")
        for i, d in enumerate(target):
            if d < -1:
                raise ShapeError(f"Reshape: shape {tuple(target)} has a negative dimension {d}")
            if d == 0 and not self.allowzero:
                if i >= len(in_shape):
                    raise ShapeError(f"Reshape: shape {tuple(target)} copies dimension {i} (0), but the input "
                                     f"{in_shape} has rank {len(in_shape)}")
                target[i] = in_shape[i]
        numel = math.prod(in_shape)
        if -1 in target:
            known = math.prod(d for d in target if d != -1)
            if known == 0 or numel % known:
                raise ShapeError(f"Reshape: cannot infer the -1 in {tuple(self.shape)} for input shape {in_shape}")
            target[target.index(-1)] = numel // known
        if math.prod(target) != numel:
            raise ShapeError(f"Reshape: cannot reshape {in_shape} ({numel} elements) to {tuple(target)}")
        return tuple(target)

    def infer(self, inputs):
        self.arity(inputs, 1)
        return [inputs[0].with_shape(self.out_shape(inputs[0].shape))]

    def compute(self, inputs):
        x = inputs[0]
        return [x.reshape(self.out_shape(x.shape))]


@register
@dataclass(frozen=True)
class Transpose(Op):
    """perm defaults to reversing the axes."""

    exact_in_fixed = True
    keeps_type = True

    perm: tuple[int, ...] | None = None  # default: reverse the axes

    def axes(self, rank: int) -> tuple[int, ...]:
        if self.perm is None:
            return tuple(reversed(range(rank)))
        perm = as_ints(self.perm, "Transpose", "perm")
        if sorted(perm) != list(range(rank)):
            raise ShapeError(f"Transpose: perm {perm} is not a permutation of the {rank} axes")
        return perm

    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        return [x.with_shape(x.shape[a] for a in self.axes(x.rank))]

    def compute(self, inputs):
        x = inputs[0]
        return [np.transpose(x, self.axes(x.ndim))]


@dataclass(frozen=True)
class ShapeOnly(Op):
    """Ops that only relabel the shape of their one input; subclasses give `out_shape(shape)`."""

    exact_in_fixed = True
    keeps_type = True

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def infer(self, inputs):
        self.arity(inputs, 1)
        return [inputs[0].with_shape(self.out_shape(inputs[0].shape))]

    def compute(self, inputs):
        return [inputs[0].reshape(self.out_shape(inputs[0].shape))]


@register
@dataclass(frozen=True)
class Flatten(ShapeOnly):
    """To 2-D: the axes before `axis` and the rest."""

    axis: int = 1

    def out_shape(self, shape):
        rank = len(shape)
        if not -rank <= self.axis <= rank:
            raise ShapeError(f"Flatten: axis {self.axis} is out of range for rank {rank}")
        axis = self.axis + rank if self.axis < 0 else self.axis
        return (math.prod(shape[:axis]), math.prod(shape[axis:]))



@register
@dataclass(frozen=True)
class Squeeze(ShapeOnly):
    """Without axes, removes every dimension of size 1."""

    axes: tuple[int, ...] | None = None  # default: every dimension of size 1
    attr_inputs = {1: "axes"}

    def out_shape(self, shape):
        if self.axes is None:
            return tuple(d for d in shape if d != 1)
        axes = normalize_axes(as_ints(self.axes, "Squeeze", "axes"), len(shape), "Squeeze")
        for a in axes:
            if shape[a] != 1:
                raise ShapeError(f"Squeeze: axis {a} of shape {shape} has size {shape[a]}, not 1")
        return tuple(d for i, d in enumerate(shape) if i not in axes)



@register
@dataclass(frozen=True)
class Unsqueeze(ShapeOnly):
    """Axes index the output; negative and unsorted axes allowed."""

    axes: tuple[int, ...] | None = None
    attr_inputs = {1: "axes"}

    def out_shape(self, shape):
        axes = as_ints(self.axes, "Unsqueeze", "axes")
        rank = len(shape) + len(axes)
        axes = normalize_axes(axes, rank, "Unsqueeze")
        rest = iter(shape)
        return tuple(1 if i in axes else next(rest) for i in range(rank))



@register
@dataclass(frozen=True)
class Concat(Op):
    """Joins inputs along `axis` (negative allowed)."""

    exact_in_fixed = True

    axis: int | None = None  # required by ONNX

    def infer(self, inputs):
        self.arity(inputs, 1, len(inputs) or 1)
        if any(t is None for t in inputs):
            raise ShapeError("Concat: an input is missing")
        if self.axis is None:
            raise InvalidModelError("Concat: attribute axis is required")
        first = inputs[0]
        axis = normalize_axis(self.axis, first.rank, "Concat")
        total = 0
        for t in inputs:
            if t.dtype != first.dtype:
                raise ShapeError(f"Concat: inputs have different element types {first.dtype} and {t.dtype}")
            if t.rank != first.rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis):
                raise ShapeError(f"Concat: shapes {first.shape} and {t.shape} differ outside axis {self.axis}")
            total += t.shape[axis]
        shape = list(first.shape)
        shape[axis] = total
        return [first.with_shape(shape)]

    def compute(self, inputs):
        return [np.concatenate(inputs, axis=normalize_axis(self.axis, inputs[0].ndim, "Concat"))]


@register
@dataclass(frozen=True)
class Split(Op):
    """Sizes from `split`, else num_outputs (opset 18, last chunk may be smaller) or the output count."""

    exact_in_fixed = True
    keeps_type = True

    axis: int = 0
    split: tuple[int, ...] | None = None  # chunk sizes; default: num_outputs chunks
    num_outputs: int | None = None  # from opset 18; before, the node's output count
    attr_inputs = {1: "split"}

    @classmethod
    def from_onnx(cls, attrs, opset, n_outputs):
        op = cls.from_attrs(attrs)
        if op.split is not None:
            sizes = as_ints(op.split, "Split", "split")
            if len(sizes) != n_outputs:
                raise InvalidModelError(f"Split: split {sizes} has {len(sizes)} sizes for {n_outputs} outputs")
            return dataclasses.replace(op, split=sizes, num_outputs=None)
        if op.num_outputs is not None and op.num_outputs != n_outputs:
            raise InvalidModelError(f"Split: num_outputs={op.num_outputs} but the node has {n_outputs} outputs")
        return dataclasses.replace(op, num_outputs=n_outputs)

    def sizes(self, shape) -> tuple[int, ...]:
        axis = normalize_axis(self.axis, len(shape), "Split")
        dim = shape[axis]
        if self.split is not None:
            sizes = as_ints(self.split, "Split", "split")
            if sum(sizes) != dim or min(sizes, default=0) < 0:
                raise ShapeError(f"Split: sizes {sizes} do not add up to dimension {dim} of {shape}")
            return sizes
        n = self.num_outputs or 1
        chunk = -(-dim // n)  # equal chunks; from opset 18 the last may be smaller
        last = dim - chunk * (n - 1)
        if last < 0:
            raise ShapeError(f"Split: cannot split dimension {dim} into {n} outputs")
        return (chunk,) * (n - 1) + (last,)

    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        axis = normalize_axis(self.axis, x.rank, "Split")
        return [x.with_shape(x.shape[:axis] + (s,) + x.shape[axis + 1:]) for s in self.sizes(x.shape)]

    def compute(self, inputs):
        x = inputs[0]
        axis = normalize_axis(self.axis, x.ndim, "Split")
        bounds = np.cumsum(self.sizes(x.shape))[:-1]
        return np.split(x, bounds, axis=axis)


@register
@dataclass(frozen=True)
class Slice(Op):
    """Clamps bounds like ONNX (ends may be INT64_MAX); negative steps; opset 1-9 attributes too."""

    exact_in_fixed = True
    keeps_type = True

    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None
    axes: tuple[int, ...] | None = None  # default: the first len(starts) axes
    steps: tuple[int, ...] | None = None  # default: all 1 (opset 10+)
    attr_inputs = {1: "starts", 2: "ends", 3: "axes", 4: "steps"}

    def slices(self, shape) -> tuple[slice, ...]:
        """One Python slice per axis, with ONNX's clamping (ends may be INT64_MAX, steps negative)."""
        starts = as_ints(self.starts, "Slice", "starts")
        ends = as_ints(self.ends, "Slice", "ends")
        axes = as_ints(self.axes, "Slice", "axes") if self.axes is not None else tuple(range(len(starts)))
        steps = as_ints(self.steps, "Slice", "steps") if self.steps is not None else (1,) * len(starts)
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise ShapeError(f"Slice: starts {starts}, ends {ends}, axes {axes} and steps {steps} differ in length")
        axes = normalize_axes(axes, len(shape), "Slice")
        out = [slice(None)] * len(shape)
        for start, end, axis, step in zip(starts, ends, axes, steps):
            dim = shape[axis]
            if step == 0:
                raise ShapeError("Slice: a step is 0")
            start = start + dim if start < 0 else start
            end = end + dim if end < 0 else end
            if step > 0:
                start, end = min(max(start, 0), dim), min(max(end, 0), dim)
            else:
                start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
            # A negative-step end of -1 means "past index 0", which Python spells None.
            out[axis] = slice(start, end if end >= 0 else None, step) if dim else slice(0, 0)
        return tuple(out)

    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        sl = self.slices(x.shape)
        return [x.with_shape(len(range(*s.indices(d))) for s, d in zip(sl, x.shape))]

    def compute(self, inputs):
        x = inputs[0]
        return [x[self.slices(x.shape)]]


@register
@dataclass(frozen=True)
class Expand(Op):
    """Bidirectional broadcast to `shape`."""

    exact_in_fixed = True
    keeps_type = True

    shape: tuple[int, ...] | None = None
    attr_inputs = {1: "shape"}

    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        shape = as_ints(self.shape, "Expand", "shape")
        return [x.with_shape(broadcast_shapes(x.shape, shape, op="Expand"))]

    def compute(self, inputs):
        x = inputs[0]
        out = broadcast_shapes(x.shape, as_ints(self.shape, "Expand", "shape"), op="Expand")
        return [np.broadcast_to(x, out).copy()]


@register
@dataclass(frozen=True)
class Tile(Op):
    """Repeats each axis `repeats[i]` times."""

    exact_in_fixed = True
    keeps_type = True

    repeats: tuple[int, ...] | None = None
    attr_inputs = {1: "repeats"}

    def reps(self, rank: int) -> tuple[int, ...]:
        reps = as_ints(self.repeats, "Tile", "repeats")
        if len(reps) != rank or any(r < 0 for r in reps):
            raise ShapeError(f"Tile: repeats {reps} must be {rank} non-negative integers (one per input axis)")
        return reps

    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        return [x.with_shape(d * r for d, r in zip(x.shape, self.reps(x.rank)))]

    def compute(self, inputs):
        x = inputs[0]
        return [np.tile(x, self.reps(x.ndim)) if x.ndim else x.copy()]


@register
@dataclass(frozen=True)
class Shape(Op):
    """Folds from the input type even when the data is not constant; start/end from opset 15."""

    start: int = 0
    end: int | None = None

    def value(self, shape) -> np.ndarray:
        # ONNX clamps start/end exactly as Python slicing does.
        return np.array(shape[self.start:self.end], dtype=np.int64)

    def infer(self, inputs):
        self.arity(inputs, 1)
        return [TensorType((len(self.value(inputs[0].shape)),), I64)]

    def compute(self, inputs):
        return [self.value(inputs[0].shape)]

    def fold(self, inputs, data):
        return [self.value(inputs[0].shape)]  # known from the type even when the data is not


@register
@dataclass(frozen=True)
class Size(Op):
    """Folds from the input type even when the data is not constant."""

    def infer(self, inputs):
        self.arity(inputs, 1)
        return [TensorType((), I64)]

    def compute(self, inputs):
        return [np.array(inputs[0].size, dtype=np.int64)]

    def fold(self, inputs, data):
        return [np.array(inputs[0].numel, dtype=np.int64)]


@register
@dataclass(frozen=True)
class ConstantOfShape(Op):
    """The one-element `value` tensor is kept as value + dtype."""

    shape: tuple[int, ...] | None = None
    value: float | int | bool = 0.0  # the ONNX one-element `value` tensor, split into value and dtype
    dtype: str = "float32"
    attr_inputs = {0: "shape"}

    @classmethod
    def from_onnx(cls, attrs, opset, n_outputs):
        attrs = dict(attrs)
        value = attrs.pop("value", None)
        if value is not None:
            value = np.asarray(value)
            if value.size != 1:
                raise InvalidModelError(f"ConstantOfShape: value must hold one element, got shape {value.shape}")
            attrs["value"], attrs["dtype"] = value.reshape(-1)[0].item(), value.dtype.name
        return cls.from_attrs(attrs)

    def infer(self, inputs):
        self.arity(inputs, 0)
        shape = as_ints(self.shape, "ConstantOfShape", "shape")
        if any(d < 0 for d in shape):
            raise ShapeError(f"ConstantOfShape: shape {shape} has a negative dimension")
        return [TensorType(shape, from_numpy(self.dtype))]

    def compute(self, inputs):
        return [np.full(self.infer([])[0].shape, self.value, dtype=self.dtype)]


@register
@dataclass(frozen=True)
class Range(Op):
    """Integers import as int64 and reals as float32 unless the bounds arrive as typed numpy scalars."""

    start: int | float | None = None
    limit: int | float | None = None
    delta: int | float | None = None
    attr_inputs = {0: "start", 1: "limit", 2: "delta"}

    def np_dtype(self) -> np.dtype:
        values = (self.start, self.limit, self.delta)
        if any(v is None or isinstance(v, tuple) for v in values):
            raise InvalidModelError("Range: start, limit and delta must be scalars")
        if all(isinstance(v, np.generic) for v in values):  # typed scalars keep their element type
            return np.result_type(*values)
        # Python numbers: the type is lost on import, so integers are int64 and reals float32.
        return np.dtype(np.int64 if all(isinstance(v, (int, np.integer)) for v in values) else np.float32)

    def count(self) -> int:
        self.np_dtype()
        if self.delta == 0:
            raise ShapeError("Range: delta is 0")
        return max(math.ceil((float(self.limit) - float(self.start)) / float(self.delta)), 0)

    def infer(self, inputs):
        self.arity(inputs, 0)
        return [TensorType((self.count(),), from_numpy(self.np_dtype()))]

    def compute(self, inputs):
        dtype = self.np_dtype()
        steps = np.arange(self.count(), dtype=np.float64 if dtype.kind == "f" else np.int64)
        return [(np.asarray(self.start, steps.dtype) + steps * np.asarray(self.delta, steps.dtype)).astype(dtype)]


def _check_blocks(op: str, x: TensorType, blocksize: int) -> None:
    if x.rank != 4:
        raise ShapeError(f"{op}: input must be 4-D (N, C, H, W), got {x.shape}")
    if blocksize < 1:
        raise InvalidModelError(f"{op}: blocksize must be positive, got {blocksize}")


@register
@dataclass(frozen=True)
class DepthToSpace(Op):
    """DCR or CRD order."""

    exact_in_fixed = True
    keeps_type = True

    blocksize: int = 0
    mode: str = "DCR"

    def __post_init__(self):
        if self.mode not in ("DCR", "CRD"):
            raise InvalidModelError(f"DepthToSpace: mode must be DCR or CRD, got {self.mode!r}")

    def infer(self, inputs):
        self.arity(inputs, 1)
        x, b = inputs[0], self.blocksize
        _check_blocks("DepthToSpace", x, b)
        n, c, h, w = x.shape
        if c % (b * b):
            raise ShapeError(f"DepthToSpace: channels {c} are not divisible by blocksize^2 = {b * b}")
        return [x.with_shape((n, c // (b * b), h * b, w * b))]

    def compute(self, inputs):
        x, b = inputs[0], self.blocksize
        n, c, h, w = x.shape
        if self.mode == "DCR":
            y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        return [y.reshape(n, c // (b * b), h * b, w * b)]


@register
@dataclass(frozen=True)
class SpaceToDepth(Op):
    """DCR (default) or CRD order (opset 28)."""

    exact_in_fixed = True
    keeps_type = True

    blocksize: int = 0
    mode: str = "DCR"  # opset 28; the inverse of DepthToSpace with the same mode

    def __post_init__(self):
        if self.mode not in ("DCR", "CRD"):
            raise InvalidModelError(f"SpaceToDepth: mode must be DCR or CRD, got {self.mode!r}")

    def infer(self, inputs):
        self.arity(inputs, 1)
        x, b = inputs[0], self.blocksize
        _check_blocks("SpaceToDepth", x, b)
        n, c, h, w = x.shape
        if h % b or w % b:
            raise ShapeError(f"SpaceToDepth: height {h} and width {w} must be divisible by blocksize {b}")
        return [x.with_shape((n, c * b * b, h // b, w // b))]

    def compute(self, inputs):
        x, b = inputs[0], self.blocksize
        n, c, h, w = x.shape
        y = x.reshape(n, c, h // b, b, w // b, b)
        y = y.transpose(0, 3, 5, 1, 2, 4) if self.mode == "DCR" else y.transpose(0, 1, 3, 5, 2, 4)
        return [y.reshape(n, c * b * b, h // b, w // b)]
