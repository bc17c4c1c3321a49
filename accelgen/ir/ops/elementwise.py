"""Elementwise ops: the Unary/Binary/Variadic bases, arithmetic, math functions, comparisons and logic, Where,
Identity. Cast, CastLike and inference-mode Dropout are in `conversion.py`; activation functions, Erf and Gelu live in `activations.py`.

Numerics follow onnxruntime's CPU kernels: float16/bfloat16 are computed in float32 and rounded back, integer
division truncates toward zero, integer overflow wraps, and IEEE special cases (division by zero, log of a negative
number...) give inf/nan without warnings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from accelgen.errors import InvalidModelError, QuantizationError, ShapeError
from accelgen.ir.ops.base import Op, broadcast_shapes
from accelgen.ir.ops.fixed_math import signed_reciprocal
from accelgen.ir.ops.quantized import FixedPlan
from accelgen.ir.ops.registry import register
from accelgen.ir.types import (
    BF16,
    BOOL,
    F16,
    ElementType,
    FixedType,
    FloatType,
    IntType,
    TensorType,
)

# -- element kinds ------------------------------------------------------------------------------------------------
# Ops declare which element kinds they accept: f = float (fixed point counts as float: it is stored as float64),
# i = signed integer, u = unsigned integer, b = bool.
FLOAT, SIGNED, NUMERIC, ANY = "f", "fi", "fiu", "fiub"
_KIND_NAMES = {"f": "float", "i": "signed integer", "u": "unsigned integer", "b": "bool"}


def kind(t: ElementType) -> str:
    if isinstance(t, (FloatType, FixedType)):
        return "f"
    if isinstance(t, IntType):
        return "i" if t.signed else "u"
    return "b"


def check_kind(op: Op, t: ElementType, kinds: str, what: str = "input") -> None:
    if kind(t) not in kinds:
        want = " or ".join(_KIND_NAMES[k] for k in kinds)
        raise InvalidModelError(f"{op.op_type}: {what} has element type {t}; it takes {want} tensors")


def check_same_dtype(op: Op, types: Sequence[TensorType]) -> None:
    """ONNX ties these operands to one type variable. Fixed-point operands may differ (passes retype them)."""
    dtypes = {t.dtype for t in types}
    if len(dtypes) > 1 and not any(isinstance(d, FixedType) for d in dtypes):
        raise InvalidModelError(f"{op.op_type}: inputs have different element types "
                                f"({', '.join(str(t.dtype) for t in types)})")


def working(x: np.ndarray) -> np.ndarray:
    """The array to compute with: half-precision floats widen to float32, as onnxruntime's kernels do."""
    if x.dtype == F16.np_dtype or x.dtype == BF16.np_dtype:
        return x.astype(np.float32)
    return x


# -- bases --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unary(Op):
    """One input, same shape out (same dtype, or bool for predicates); subclasses define `fn`."""

    kinds: ClassVar[str] = FLOAT
    boolean_out: ClassVar[bool] = False

    def infer(self, inputs: Sequence[TensorType | None]) -> list[TensorType]:
        self.arity(inputs, 1)
        x = inputs[0]
        check_kind(self, x.dtype, self.kinds)
        return [x.with_dtype(BOOL) if self.boolean_out else x]

    def compute(self, inputs):
        x = inputs[0]
        with np.errstate(all="ignore"):
            y = np.asarray(self.fn(working(x)))
        return [y.astype(bool if self.boolean_out else x.dtype, copy=False)]

    def fn(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Binary(Op):
    """Two inputs with numpy (multidirectional) broadcasting; output has the first input's dtype, or bool."""

    kinds: ClassVar[str] = NUMERIC
    boolean_out: ClassVar[bool] = False

    def infer(self, inputs):
        self.arity(inputs, 2)
        a, b = inputs
        for i, t in enumerate(inputs):
            check_kind(self, t.dtype, self.kinds, f"input {i}")
        self.check_dtypes(a, b)
        shape = broadcast_shapes(a.shape, b.shape, op=self.op_type)
        return [TensorType(shape, BOOL if self.boolean_out else a.dtype)]

    def check_dtypes(self, a: TensorType, b: TensorType) -> None:
        check_same_dtype(self, [a, b])

    def compute(self, inputs):
        a, b = inputs
        with np.errstate(all="ignore"):
            y = np.asarray(self.fn(working(a), working(b)))
        return [y.astype(bool if self.boolean_out else a.dtype, copy=False)]

    def fn(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Variadic(Op):
    """One or more inputs of one dtype, broadcast together and folded pairwise with `fn`."""

    kinds: ClassVar[str] = NUMERIC

    def infer(self, inputs):
        if not inputs or any(t is None for t in inputs):
            raise ShapeError(f"{self.op_type} takes one or more inputs, got {len(inputs)}")
        for i, t in enumerate(inputs):
            check_kind(self, t.dtype, self.kinds, f"input {i}")
        check_same_dtype(self, inputs)
        return [TensorType(broadcast_shapes(*(t.shape for t in inputs), op=self.op_type), inputs[0].dtype)]

    def compute(self, inputs):
        arrays = [working(x) for x in inputs]
        shape = np.broadcast_shapes(*(x.shape for x in arrays))
        with np.errstate(all="ignore"):
            y = np.broadcast_to(arrays[0], shape)
            for x in arrays[1:]:
                y = self.fn(y, x)
            y = self.finish(y, len(arrays))
        return [np.array(y, dtype=inputs[0].dtype)]

    def fn(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def finish(self, y: np.ndarray, n: int) -> np.ndarray:
        return y


# -- unary math ---------------------------------------------------------------------------------------------------
@register
@dataclass(frozen=True)
class Identity(Unary):
    exact_in_fixed = True
    keeps_type = True
    kinds = ANY

    def compute(self, inputs):
        return [inputs[0]]


@register
@dataclass(frozen=True)
class Neg(Unary):
    exact_in_fixed = True
    kinds = SIGNED

    def fn(self, x):
        return np.negative(x)


@register
@dataclass(frozen=True)
class Abs(Unary):
    exact_in_fixed = True
    kinds = NUMERIC

    def fn(self, x):
        return np.abs(x)


@register
@dataclass(frozen=True)
class Sign(Unary):
    kinds = NUMERIC

    def fn(self, x):
        return np.sign(x)


@register
@dataclass(frozen=True)
class Sqrt(Unary):
    def fn(self, x):
        return np.sqrt(x)

    def fixed_precision(self, node, ctx):  # the normalised table; sqrt of x <= 0 is 0
        return FixedPlan(ctx.output_types(node), [("sqrt", ctx.normalized_table("sqrt"))])

    def compute_fixed(self, inputs, q):
        x = np.asarray(inputs[0], np.float64)
        return [np.where(x > 0, q.param("sqrt").evaluate(np.where(x > 0, x, 1.0)), 0.0)]


@register
@dataclass(frozen=True)
class Reciprocal(Unary):
    def fn(self, x):
        return np.reciprocal(x)

    def fixed_precision(self, node, ctx):  # the normalised table; 1/0 saturates
        return FixedPlan(ctx.output_types(node), [("reciprocal", ctx.normalized_table("reciprocal"))])

    def compute_fixed(self, inputs, q):
        return [signed_reciprocal(inputs[0], q.param("reciprocal"))]


@register
@dataclass(frozen=True)
class Exp(Unary):
    def fn(self, x):
        return np.exp(x)

    def fixed_precision(self, node, ctx):  # 2**(x log2 e): a one-octave table and a shift; large results saturate
        out = ctx.output_types(node)
        return FixedPlan(out, [("exp", ctx.exp_function(node.inputs[0].dtype, out[0]))])

    def compute_fixed(self, inputs, q):
        return [q.param("exp").evaluate(inputs[0], q)]


@register
@dataclass(frozen=True)
class Log(Unary):
    def fn(self, x):
        return np.log(x)


@register
@dataclass(frozen=True)
class Sin(Unary):
    def fn(self, x):
        return np.sin(x)


@register
@dataclass(frozen=True)
class Cos(Unary):
    def fn(self, x):
        return np.cos(x)


@register
@dataclass(frozen=True)
class Floor(Unary):
    def fn(self, x):
        return np.floor(x)


@register
@dataclass(frozen=True)
class Ceil(Unary):
    def fn(self, x):
        return np.ceil(x)


@register
@dataclass(frozen=True)
class Round(Unary):
    """Round half to even, like numpy and onnxruntime."""

    def fn(self, x):
        return np.rint(x)


@register
@dataclass(frozen=True)
class IsNaN(Unary):
    boolean_out = True

    def fn(self, x):
        return np.isnan(x)


@register
@dataclass(frozen=True)
class IsInf(Unary):
    detect_negative: int = 1
    detect_positive: int = 1
    boolean_out = True

    def fn(self, x):
        return (np.isposinf(x) & bool(self.detect_positive)) | (np.isneginf(x) & bool(self.detect_negative))


@register
@dataclass(frozen=True)
class Not(Unary):
    kinds = "b"

    def fn(self, x):
        return np.logical_not(x)


# -- binary arithmetic --------------------------------------------------------------------------------------------
@register
@dataclass(frozen=True)
class Add(Binary):
    exact_in_fixed = True
    def fn(self, a, b):
        return a + b


@register
@dataclass(frozen=True)
class Sub(Binary):
    exact_in_fixed = True
    def fn(self, a, b):
        return a - b


@register
@dataclass(frozen=True)
class Mul(Binary):
    exact_in_fixed = True
    def fn(self, a, b):
        return a * b


@register
@dataclass(frozen=True)
class Div(Binary):
    """Integer division truncates toward zero (C semantics, as onnxruntime), not floor like numpy's //."""

    def fn(self, a, b):
        if a.dtype.kind == "f":
            return a / b
        q = a // b
        if a.dtype.kind == "i":
            q = q + ((a % b != 0) & ((a < 0) != (b < 0))).astype(q.dtype)
        return q

    # Fixed point: by a constant, a * q(1/b) ("reciprocal"), exact for powers of two; by a tensor, a times the
    # normalised reciprocal of b ("reciprocal_table"), an exact product and shift (0/0 is 0, a/0 saturates).
    def fixed_precision(self, node, ctx):
        a, b = node.inputs
        out = ctx.output_types(node)
        if not isinstance(out[0], FixedType):
            return FixedPlan(out)  # integer division
        constants = {i: ctx.weight_type(v.data, node.name, node.op_type) for i, v in enumerate(node.inputs)
                     if v.is_constant}
        if not b.is_constant:
            return FixedPlan(out, [("reciprocal_table", ctx.normalized_table("reciprocal"))], constants)
        if np.any(b.data == 0):
            raise QuantizationError(f"{node.name}: division by a constant that holds zeros")
        recip = ctx.rescale(constants.get(0, a.dtype), 1.0 / np.asarray(b.data, np.float64))
        return FixedPlan(out, [("reciprocal", recip)], constants)

    def compute_fixed(self, inputs, q):
        a, b = inputs
        if a.dtype.kind != "f":
            return self.compute(inputs)
        if q.param("reciprocal") is not None:
            return [q.param("reciprocal").apply(np.asarray(a, np.float64))]
        with np.errstate(invalid="ignore"):
            y = a * signed_reciprocal(b, q.param("reciprocal_table"))
        return [np.where(np.isnan(y), 0.0, y)]


@register
@dataclass(frozen=True)
class Mod(Binary):
    """fmod=0: the result takes the divisor's sign (numpy mod); fmod=1: the dividend's (C fmod)."""

    fmod: int = 0

    def __post_init__(self):
        if self.fmod not in (0, 1):
            raise InvalidModelError(f"Mod: fmod must be 0 or 1, got {self.fmod}")

    def fn(self, a, b):
        return np.fmod(a, b) if self.fmod else np.mod(a, b)


@register
@dataclass(frozen=True)
class Pow(Binary):
    """Base and exponent may differ in type; the output has the base's type. Float powers are computed in float64
    and rounded once; an integer base with non-negative integer exponents stays exact (wrapping on overflow)."""

    kinds = NUMERIC

    def check_dtypes(self, a, b):
        check_kind(self, a.dtype, SIGNED, "base")

    def fn(self, a, b):
        if a.dtype.kind in "iu" and b.dtype.kind in "iu" and not (b < 0).any():
            return np.power(a.astype(np.int64), b.astype(np.int64))
        return np.power(a.astype(np.float64), b.astype(np.float64))


# -- comparisons and logic ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Compare(Binary):
    boolean_out = True


@register
@dataclass(frozen=True)
class Equal(Compare):
    exact_in_fixed = True
    kinds = ANY

    def fn(self, a, b):
        return a == b


@register
@dataclass(frozen=True)
class Less(Compare):
    exact_in_fixed = True
    def fn(self, a, b):
        return a < b


@register
@dataclass(frozen=True)
class LessOrEqual(Compare):
    exact_in_fixed = True
    def fn(self, a, b):
        return a <= b


@register
@dataclass(frozen=True)
class Greater(Compare):
    exact_in_fixed = True
    def fn(self, a, b):
        return a > b


@register
@dataclass(frozen=True)
class GreaterOrEqual(Compare):
    exact_in_fixed = True
    def fn(self, a, b):
        return a >= b


@register
@dataclass(frozen=True)
class And(Compare):
    kinds = "b"

    def fn(self, a, b):
        return a & b


@register
@dataclass(frozen=True)
class Or(Compare):
    kinds = "b"

    def fn(self, a, b):
        return a | b


@register
@dataclass(frozen=True)
class Xor(Compare):
    kinds = "b"

    def fn(self, a, b):
        return a ^ b


@register
@dataclass(frozen=True)
class Where(Op):
    exact_in_fixed = True
    def infer(self, inputs):
        self.arity(inputs, 3)
        cond, a, b = inputs
        check_kind(self, cond.dtype, "b", "condition")
        check_same_dtype(self, [a, b])
        return [TensorType(broadcast_shapes(cond.shape, a.shape, b.shape, op=self.op_type), a.dtype)]

    def compute(self, inputs):
        cond, a, b = inputs
        return [np.where(cond, a, b).astype(a.dtype, copy=False)]


# -- variadic -----------------------------------------------------------------------------------------------------
@register
@dataclass(frozen=True)
class Max(Variadic):
    exact_in_fixed = True
    keeps_type = True
    def fn(self, a, b):
        return np.maximum(a, b)  # NaN propagates, as in onnxruntime


@register
@dataclass(frozen=True)
class Min(Variadic):
    exact_in_fixed = True
    keeps_type = True
    def fn(self, a, b):
        return np.minimum(a, b)


@register
@dataclass(frozen=True)
class Sum(Variadic):
    exact_in_fixed = True
    kinds = FLOAT

    def fn(self, a, b):
        return a + b


@register
@dataclass(frozen=True)
class Mean(Variadic):
    kinds = FLOAT

    def fn(self, a, b):
        return a + b

    def finish(self, y, n):
        return y / np.asarray(n, y.dtype)
