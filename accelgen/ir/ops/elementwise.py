"""Elementwise ops: unary math and activations, broadcasting binary arithmetic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from accelgen.ir.ops.base import Op, broadcast_shapes
from accelgen.ir.ops.registry import register
from accelgen.ir.types import TensorType


@dataclass(frozen=True)
class Unary(Op):
    """One input, same type out; subclasses define `fn`."""

    def infer(self, inputs: Sequence[TensorType | None]) -> list[TensorType]:
        self.arity(inputs, 1)
        return [inputs[0]]

    def compute(self, inputs):
        x = inputs[0]
        return [np.asarray(self.fn(x)).astype(x.dtype, copy=False)]

    def fn(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Binary(Op):
    """Two inputs with numpy broadcasting; output has the first input's dtype."""

    def infer(self, inputs):
        self.arity(inputs, 2)
        a, b = inputs
        return [TensorType(broadcast_shapes(a.shape, b.shape, op=self.op_type), a.dtype)]

    def compute(self, inputs):
        a, b = inputs
        return [np.asarray(self.fn(a, b)).astype(a.dtype, copy=False)]

    def fn(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@register
@dataclass(frozen=True)
class Relu(Unary):
    def fn(self, x):
        return np.maximum(x, 0)


@register
@dataclass(frozen=True)
class LeakyRelu(Unary):
    alpha: float = 0.01

    def fn(self, x):
        return np.where(x >= 0, x, x * np.asarray(self.alpha, x.dtype))


@register
@dataclass(frozen=True)
class Add(Binary):
    def fn(self, a, b):
        return a + b
