"""Data-movement ops whose output depends on index data or padding: Gather, GatherElements, Pad, Trilu, OneHot.

Gather indices stay tensor inputs (they may be runtime data, e.g. an embedding lookup); only what fixes the output
shape (pads, depth) or is a tiny option (Trilu's k) becomes an attribute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelgen.errors import InputError, InvalidModelError, ShapeError
from accelgen.ir.ops.base import Op, normalize_axis
from accelgen.ir.ops.registry import register
from accelgen.ir.ops.shape import as_ints, check_index_type, normalize_axes


def wrap_indices(idx: np.ndarray, dim: int, op: str) -> np.ndarray:
    """Negative indices count from the end; anything outside [-dim, dim) is an error, as in onnxruntime."""
    idx = idx.astype(np.int64)
    bad = (idx < -dim) | (idx >= dim)
    if bad.any():
        raise InputError(f"{op}: index {int(idx[bad].reshape(-1)[0])} is out of range for a dimension of size {dim}")
    return np.where(idx < 0, idx + dim, idx)


@register
@dataclass(frozen=True)
class Gather(Op):
    """Indices stay a tensor input (may be runtime data); negative indices count from the end."""

    exact_in_fixed = True
    keeps_type = True

    axis: int = 0

    def infer(self, inputs):
        self.arity(inputs, 2)
        data, idx = inputs
        check_index_type(idx, "Gather")
        if data.rank == 0:
            raise ShapeError("Gather: data must have rank 1 or more")
        axis = normalize_axis(self.axis, data.rank, "Gather")
        return [data.with_shape(data.shape[:axis] + idx.shape + data.shape[axis + 1:])]

    def compute(self, inputs):
        data, idx = inputs
        axis = normalize_axis(self.axis, data.ndim, "Gather")
        return [np.take(data, wrap_indices(idx, data.shape[axis], "Gather"), axis=axis)]


@register
@dataclass(frozen=True)
class GatherElements(Op):
    """Indices stay a tensor input; negative indices count from the end."""

    exact_in_fixed = True
    keeps_type = True

    axis: int = 0

    def infer(self, inputs):
        self.arity(inputs, 2)
        data, idx = inputs
        check_index_type(idx, "GatherElements")
        if data.rank == 0 or idx.rank != data.rank:
            raise ShapeError(f"GatherElements: data {data.shape} and indices {idx.shape} must have the same rank >= 1")
        axis = normalize_axis(self.axis, data.rank, "GatherElements")
        if any(i > d for a, (i, d) in enumerate(zip(idx.shape, data.shape)) if a != axis):
            raise ShapeError(f"GatherElements: indices {idx.shape} exceed data {data.shape} outside axis {axis}")
        return [data.with_shape(idx.shape)]

    def compute(self, inputs):
        data, idx = inputs
        axis = normalize_axis(self.axis, data.ndim, "GatherElements")
        where = list(np.indices(idx.shape, sparse=True))
        where[axis] = wrap_indices(idx, data.shape[axis], "GatherElements")
        return [data[tuple(where)]]


PAD_MODES = ("constant", "reflect", "edge", "wrap")


@register
@dataclass(frozen=True)
class Pad(Op):
    """constant/reflect/edge/wrap; negative pads crop; axes from opset 18."""

    mode: str = "constant"
    pads: tuple[int, ...] | None = None  # all begins, then all ends; negative values crop
    value: float = 0.0  # the constant (attribute before opset 11, input `constant_value` after)
    axes: tuple[int, ...] | None = None  # opset 18: the axes `pads` refers to
    attr_inputs = {1: "pads", 2: "value", 3: "axes"}

    def __post_init__(self):
        if self.mode not in PAD_MODES:
            raise InvalidModelError(f"Pad: mode must be one of {', '.join(PAD_MODES)}, got {self.mode!r}")

    @classmethod
    def from_onnx(cls, attrs, opset, n_outputs):
        attrs = dict(attrs)
        if "paddings" in attrs:  # opset 1 spelling
            attrs["pads"] = attrs.pop("paddings")
        value = attrs.get("value")
        if isinstance(value, tuple):  # a one-element (or empty) constant_value tensor
            if len(value) > 1:
                raise InvalidModelError(f"Pad: constant_value must be a scalar, got {len(value)} values")
            attrs["value"] = value[0] if value else 0.0
        return cls.from_attrs(attrs)

    def widths(self, shape) -> list[tuple[int, int]]:
        pads = as_ints(self.pads, "Pad", "pads")
        axes = normalize_axes(as_ints(self.axes, "Pad", "axes"), len(shape), "Pad") if self.axes is not None \
            else tuple(range(len(shape)))
        if len(pads) != 2 * len(axes):
            raise ShapeError(f"Pad: pads {pads} must hold 2 values for each of the {len(axes)} padded axes")
        widths = [(0, 0)] * len(shape)
        for i, a in enumerate(axes):
            widths[a] = (pads[i], pads[len(axes) + i])
        for a, ((b, e), d) in enumerate(zip(widths, shape)):
            if d + b + e < 0:
                raise ShapeError(f"Pad: pads {pads} crop axis {a} of size {d} below zero")
            if self.mode != "constant" and (b > 0 or e > 0) and d + min(b, 0) + min(e, 0) <= 0:
                raise ShapeError(f"Pad: mode {self.mode} cannot pad axis {a}, which is empty")
        return widths

    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        return [x.with_shape(d + b + e for d, (b, e) in zip(x.shape, self.widths(x.shape)))]

    def compute(self, inputs):
        x = inputs[0]
        widths = self.widths(x.shape)
        # Negative pads crop first; the positive ones then pad what is left.
        x = x[tuple(slice(-min(b, 0), d + min(e, 0)) for d, (b, e) in zip(x.shape, widths))]
        grow = [(max(b, 0), max(e, 0)) for b, e in widths]
        if self.mode == "constant":
            return [np.pad(x, grow, mode="constant", constant_values=np.asarray(self.value).astype(x.dtype))]
        return [np.pad(x, grow, mode=self.mode)]


@register
@dataclass(frozen=True)
class Trilu(Op):
    """Upper or lower triangle of the last two axes, offset by k."""

    upper: int = 1
    k: int = 0
    attr_inputs = {1: "k"}

    def infer(self, inputs):
        self.arity(inputs, 1)
        if inputs[0].rank < 2:
            raise ShapeError(f"Trilu: input must have rank 2 or more, got {inputs[0].shape}")
        return [inputs[0]]

    def compute(self, inputs):
        x = inputs[0]
        return [np.triu(x, self.k) if self.upper else np.tril(x, self.k)]


@register
@dataclass(frozen=True)
class OneHot(Op):
    """Indices may be runtime data; out-of-range indices give all-off rows."""

    axis: int = -1
    depth: int | float | None = None
    attr_inputs = {1: "depth"}

    def n(self) -> int:
        depth = self.depth[0] if isinstance(self.depth, tuple) and len(self.depth) == 1 else self.depth
        if not isinstance(depth, (int, float, np.integer, np.floating)) or depth < 1:
            raise InvalidModelError(f"OneHot: depth must be a positive scalar, got {self.depth!r}")
        return int(depth)

    def infer(self, inputs):
        self.arity(inputs, 2)  # depth (ONNX input 1) is an attribute here
        idx, values = inputs
        if values.shape != (2,):
            raise ShapeError(f"OneHot: values must have shape (2,) (off, on), got {values.shape}")
        rank = idx.rank + 1
        axis = normalize_axis(self.axis, rank, "OneHot")
        return [values.with_shape(idx.shape[:axis] + (self.n(),) + idx.shape[axis:])]

    def compute(self, inputs):
        idx, values = inputs
        depth = self.n()
        idx = idx.astype(np.int64)
        idx = np.where(idx < 0, idx + depth, idx)  # out-of-range indices give all-off rows
        hot = idx[..., None] == np.arange(depth)
        hot = np.moveaxis(hot, -1, normalize_axis(self.axis, idx.ndim + 1, "OneHot"))
        return [np.where(hot, values[1], values[0]).astype(values.dtype)]
