"""accelgen's own ops, produced by fusion passes (domain "accelgen"; never read from ONNX).

Fused ops hold their pieces as values: `Dense(activation=Relu())` keeps the activation's op instance, so its
meaning is the activation's own `compute`, not a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.base import ACCELGEN_DOMAIN, Cost, Op
from accelgen.ir.ops.elementwise import working
from accelgen.ir.ops.linear import as_work, same_dtype
from accelgen.ir.ops.quantized import FixedPlan, apply_activation_fixed
from accelgen.ir.ops.registry import register
from accelgen.ir.types import TensorType


def _apply(activation: Op | None, y: np.ndarray) -> np.ndarray:
    return y if activation is None else activation.compute([y])[0]


def _shift_channels(y: np.ndarray, q, axis: int) -> np.ndarray:
    """Per-channel weights (param "column_shifts", see QuantContext.per_channel_plan): channel n of the exact
    product sum times 2**k_n, an exact shift; without the param, y unchanged."""
    shifts = q.param("column_shifts")
    if shifts is None:
        return y
    k = np.asarray(shifts, np.int64).reshape(-1, *(1,) * (-1 - axis if axis < 0 else y.ndim - 1 - axis))
    return np.ldexp(y, k)


@register
@dataclass(frozen=True)
class Dense(Op):
    """y = activation(x @ W + b), token-wise over the leading dims of x: x [..., K], W [K, N] constant, b [N].

    Computed exactly as the MatMul, Add and activation ops it replaces: the product accumulated in float32 (float64
    stays float64) and rounded to x's type, the bias added in float32 for half types and rounded again, then the
    activation's own compute. So fusing MatMul + Add + activation changes no bits, in any dtype.
    """

    domain = ACCELGEN_DOMAIN
    activation: Op | None = None

    def infer(self, inputs):
        self.arity(inputs, 2, 3)
        x, w = inputs[:2]
        b = inputs[2] if len(inputs) > 2 else None
        same_dtype(self, x, w, b)
        if x.rank < 1 or w.rank != 2 or x.shape[-1] != w.shape[0]:
            raise ShapeError(f"Dense: input {x} does not fit weight {w} (expected x[..., K] and W[K, N])")
        if b is not None and b.shape != (w.shape[1],):
            raise ShapeError(f"Dense: bias {b} must have shape ({w.shape[1]},)")
        out = TensorType(x.shape[:-1] + (w.shape[1],), x.dtype)
        return [self.activation.infer([out])[0] if self.activation is not None else out]

    def compute(self, inputs):
        x, w = inputs[:2]
        y = np.asarray(np.matmul(as_work(x), as_work(w))).astype(x.dtype, copy=False)
        if len(inputs) > 2 and inputs[2] is not None:
            with np.errstate(all="ignore"):
                y = np.asarray(working(y) + working(inputs[2])).astype(x.dtype, copy=False)
        return [_apply(self.activation, y)]

    def compute_fixed(self, inputs, q):
        x, w = inputs[:2]
        y = np.matmul(x, w)  # float64 on exact fixed-point values: exact while the accumulator fits 53 bits
        y = _shift_channels(y, q, axis=-1)
        if len(inputs) > 2 and inputs[2] is not None:
            y = y + inputs[2]
        return [apply_activation_fixed(self.activation, y, q)]

    def calibration_probes(self, inputs):
        if self.activation is None or self.activation.exact_in_fixed:
            return {}
        return {"pre_activation": replace(self, activation=None).compute(inputs)[0]}

    def fixed_precision(self, node, ctx) -> FixedPlan:
        if ctx.per_channel_for(node):  # per-channel weights: the output channels are W's columns
            return ctx.per_channel_plan(node, fan_in=node.inputs[1].shape[0], axis=1, activation=self.activation)
        return ctx.linear_plan(node, fan_in=node.inputs[1].shape[0], activation=self.activation)

    def cost(self, inputs, outputs):
        x, w = inputs[:2]
        base = super().cost(inputs, outputs)
        tokens = int(np.prod(x.shape[:-1], dtype=np.int64))
        return Cost(macs=tokens * w.numel, bytes=base.bytes)


@register
@dataclass(frozen=True)
class FusedConv(Op):
    """activation(Conv(x, W, b)): `conv` is the ONNX Conv op instance with its attributes."""

    domain = ACCELGEN_DOMAIN
    conv: Op = None
    activation: Op | None = None

    def __post_init__(self):
        if self.conv is None or self.conv.op_type != "Conv":
            raise InvalidModelError(f"FusedConv: conv must be a Conv op, got {self.conv}")

    def infer(self, inputs):
        out = self.conv.infer(inputs)[0]
        return [self.activation.infer([out])[0] if self.activation is not None else out]

    def compute(self, inputs):
        y = self.conv.compute(inputs)[0]
        return [_apply(self.activation, y)]

    def compute_fixed(self, inputs, q):
        if q.param("column_shifts") is None:
            return [apply_activation_fixed(self.activation, self.conv.compute_fixed(inputs, q)[0], q)]
        y = _shift_channels(self.conv.compute_fixed(inputs[:2], q)[0], q, axis=1)  # bias after the shift
        if len(inputs) > 2 and inputs[2] is not None:
            y = y + inputs[2].reshape(-1, *(1,) * (y.ndim - 2))
        return [apply_activation_fixed(self.activation, y, q)]

    def calibration_probes(self, inputs):
        if self.activation is None or self.activation.exact_in_fixed:
            return {}
        return {"pre_activation": self.conv.compute(inputs)[0]}

    def fixed_precision(self, node, ctx) -> FixedPlan:
        w = node.inputs[1]
        if ctx.per_channel_for(node):  # per-channel weights: the output channels are W's axis 0
            return ctx.per_channel_plan(node, fan_in=int(np.prod(w.shape[1:])), axis=0, activation=self.activation)
        return ctx.linear_plan(node, fan_in=int(np.prod(w.shape[1:])), activation=self.activation)

    def cost(self, inputs, outputs):
        return self.conv.cost(inputs, outputs)
