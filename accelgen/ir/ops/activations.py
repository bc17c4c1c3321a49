"""Activation functions: Relu and its relatives, sigmoid-like curves, Erf and Gelu, Clip.

All keep their input's dtype. Float16/bfloat16 inputs are computed in float32 (see `elementwise.working`); the
erf-based Gelu is computed in float64 so its negative tail keeps relative accuracy.

Fixed point: Relu, PRelu (constant slope) and Clip are exact; LeakyRelu, HardSigmoid and HardSwish multiply by
constants rounded to named types; Sigmoid, Tanh and Gelu read a LookupTable over the calibrated input range
(`_Tabled`), and beyond the table take exact values: sigmoid and tanh saturate at the table's edge entries (the
table reaches their asymptotes when the calibrated range does), gelu is x above the table and 0 below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import ml_dtypes
import numpy as np
from numpy.polynomial import chebyshev

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.base import Op
from accelgen.ir.ops.elementwise import NUMERIC, SIGNED, Unary, check_kind, check_same_dtype, working
from accelgen.ir.ops.fixed_math import INTERNAL_ROUNDING, FixedConstant, fixed_round
from accelgen.ir.ops.quantized import FixedPlan
from accelgen.ir.ops.registry import register
from accelgen.ir.types import FixedType, Overflow


@register
@dataclass(frozen=True)
class Relu(Unary):
    exact_in_fixed = True
    kinds = SIGNED

    def fn(self, x):
        return np.maximum(x, 0)


@register
@dataclass(frozen=True)
class LeakyRelu(Unary):
    """x for x >= 0, alpha * x below. Fixed point: x * q(alpha) ("slope": the constant, its type), exact; rounded."""

    alpha: float = 0.009999999776482582  # float32(0.01): ONNX float attributes are 32-bit

    def fn(self, x):
        return np.where(x >= 0, x, x * self.alpha)

    def fixed_precision(self, node, ctx) -> FixedPlan:
        return FixedPlan(ctx.output_types(node), [("slope", ctx.rescale(node.inputs[0].dtype, self.alpha))])

    def compute_fixed(self, inputs, q):
        x = inputs[0]
        return [np.where(x >= 0, x, q.param("slope").apply(x))]


@register
@dataclass(frozen=True)
class PRelu(Op):
    """Leaky relu with a learned slope tensor that broadcasts to X (unidirectionally: the output has X's shape)."""

    exact_in_fixed = True  # a constant slope is rounded to a weight type; x * slope is exact

    def infer(self, inputs):
        self.arity(inputs, 2)
        x, slope = inputs
        check_kind(self, x.dtype, NUMERIC)
        check_same_dtype(self, [x, slope])
        try:
            fits = np.broadcast_shapes(x.shape, slope.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise ShapeError(f"PRelu: slope shape {slope.shape} does not broadcast to the input shape {x.shape}")
        return [x]

    def compute(self, inputs):
        x, slope = inputs
        xw, sw = working(x), working(slope)
        return [np.where(xw < 0, xw * sw, xw).astype(x.dtype, copy=False)]


@register
@dataclass(frozen=True)
class ThresholdedRelu(Unary):
    alpha: float = 1.0

    def fn(self, x):
        return np.where(x > self.alpha, x, 0)


@register
@dataclass(frozen=True)
class Elu(Unary):
    alpha: float = 1.0

    def fn(self, x):
        return np.where(x < 0, self.alpha * np.expm1(x), x)


@register
@dataclass(frozen=True)
class Selu(Unary):
    # ONNX's defaults are these float32 values (the SELU constants rounded to float32).
    alpha: float = 1.67326319217681884765625
    gamma: float = 1.05070102214813232421875

    def fn(self, x):
        return np.where(x > 0, self.gamma * x, (self.gamma * self.alpha) * np.expm1(x))


@register
@dataclass(frozen=True)
class Celu(Unary):
    alpha: float = 1.0

    def __post_init__(self):
        if self.alpha == 0:
            raise InvalidModelError("Celu: alpha must not be 0")

    def fn(self, x):
        return np.maximum(x, 0) + np.minimum(0, self.alpha * np.expm1(x / self.alpha))


@dataclass(frozen=True)
class _Tabled(Unary):
    """A nonlinear activation that runs in fixed point through a LookupTable ("table") over its calibrated input
    range. The table stops where the function is within half an output lsb of its asymptotes (`table_domain`);
    beyond the table the function's exact outside values apply (`lookup_fixed`)."""

    # (value below, value above) that the function tends to; None: the identity (gelu above)
    asymptotes: ClassVar[tuple[float | None, float | None]] = (0.0, 1.0)

    def table_domain(self, out: FixedType) -> tuple[float, float]:
        """[lo, hi]: outside it the function is its asymptote to within half an lsb of `out` (searched on a grid
        of 1/64 over [-64, 64])."""
        x = np.arange(-64 * 64, 64 * 64 + 1) / 64.0
        y = self.fn(x)
        lo_value, hi_value = (x if a is None else np.full_like(x, a) for a in self.asymptotes)
        far_lo = np.abs(y - lo_value) < out.lsb / 2
        far_hi = np.abs(y - hi_value) < out.lsb / 2

        def first_off(far):  # index of the first grid point off the asymptote
            return int(np.argmin(far)) if not far.all() else len(far)

        i, j = first_off(far_lo), len(x) - first_off(far_hi[::-1])  # j: one past the last point off it
        return float(x[max(i - 1, 0)]), float(x[min(j, len(x) - 1)])

    def lookup_fixed(self, x: np.ndarray, table) -> np.ndarray:
        """The fixed-point function: the table entry of x, clamped at the table's ends (saturation)."""
        return table.lookup(x)

    def fixed_precision(self, node, ctx) -> FixedPlan:
        lo, hi = ctx.range_of(node.inputs[0].name)
        return FixedPlan(ctx.output_types(node),
                         [("table", ctx.function_table(self, lo, hi, ctx.activation_table_out(node)))])

    def compute_fixed(self, inputs, q):
        return [self.lookup_fixed(np.asarray(inputs[0], np.float64), q.param("table"))]


@register
@dataclass(frozen=True)
class Sigmoid(_Tabled):
    def fn(self, x):
        e = np.exp(-np.abs(x))  # never overflows; both branches stay relatively accurate
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


@register
@dataclass(frozen=True)
class HardSigmoid(Unary):
    """clip(alpha * x + beta, 0, 1). Fixed point: with q(alpha) and q(beta) ("slope", "offset"), exact; rounded."""

    alpha: float = 0.20000000298023224  # float32(0.2)
    beta: float = 0.5

    def fn(self, x):
        return np.clip(self.alpha * x + self.beta, 0, 1)

    def fixed_precision(self, node, ctx) -> FixedPlan:
        return FixedPlan(ctx.output_types(node), [("slope", ctx.rescale(node.inputs[0].dtype, self.alpha)),
                                                  ("offset", FixedConstant.of(self.beta, ctx.config.table_width))])

    def compute_fixed(self, inputs, q):
        return [np.clip(q.param("slope").apply(inputs[0]) + q.param("offset").value, 0.0, 1.0)]


_SIXTH = 0.1666666716337204  # float32(1/6), HardSwish's fixed HardSigmoid alpha


@register
@dataclass(frozen=True)
class HardSwish(Unary):
    """x * clip(x / 6 + 0.5, 0, 1). Fixed point: the clip (with q(1/6)) rounded to "gate", times x exactly.

    "sixth" holds the constant; "gate" is unsigned, table_width bits; the node rounds the product."""

    def fn(self, x):
        return x * np.clip(x * _SIXTH + 0.5, 0, 1)

    def fixed_precision(self, node, ctx) -> FixedPlan:
        gate = FixedType(ctx.config.table_width, 1, False, INTERNAL_ROUNDING, Overflow.SAT)
        return FixedPlan(ctx.output_types(node), [("sixth", ctx.rescale(node.inputs[0].dtype, _SIXTH)),
                                                  ("gate", gate)])

    def compute_fixed(self, inputs, q):
        x = inputs[0]
        gate = fixed_round(q.param("gate"), np.clip(q.param("sixth").apply(x) + 0.5, 0.0, 1.0))
        return [x * gate]


@register
@dataclass(frozen=True)
class Tanh(_Tabled):
    asymptotes = (-1.0, 1.0)

    def fn(self, x):
        return np.tanh(x)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0, x)  # log(1 + exp(x)) without overflow


@register
@dataclass(frozen=True)
class Softplus(Unary):
    def fn(self, x):
        return _softplus(x)


@register
@dataclass(frozen=True)
class Softsign(Unary):
    def fn(self, x):
        return x / (1 + np.abs(x))


@register
@dataclass(frozen=True)
class Mish(Unary):
    def fn(self, x):
        return x * np.tanh(_softplus(x))


# -- erf ----------------------------------------------------------------------------------------------------------
# erfc(z) for z >= 0 is written as t * exp(-z^2 + P(u)) with t = 2 / (2 + z) and u = 2t - 1 in [-1, 1]; P is smooth
# over the whole half line, so one Chebyshev series of modest degree reaches float64 accuracy everywhere (relative
# error ~1e-13, set by the rounding of z^2) and keeps the tails relatively accurate, which Gelu needs for x << 0.
# Its coefficients are fitted at import from the standard library's erfc.
_ERFC_DEGREE = 27
_SMALL = 0.5  # below this, erf comes from its Taylor series (1 - erfc would lose relative accuracy near 0)


def _erfcx(z: float) -> float:
    """erfc(z) * exp(z^2), for z >= 0, accurate to float64."""
    if z < 25.0:
        return math.erfc(z) * math.exp(z * z)
    total, term = 1.0, 1.0  # asymptotic series; at z >= 25 its terms fall far below float64 resolution
    for n in range(1, 12):
        term *= -(2 * n - 1) / (2 * z * z)
        total += term
    return total / (z * math.sqrt(math.pi))


def _fit_erfc() -> np.ndarray:
    u = np.cos(np.pi * (np.arange(_ERFC_DEGREE + 1) + 0.5) / (_ERFC_DEGREE + 1))  # Chebyshev nodes
    t = (u + 1) / 2
    values = [math.log(_erfcx(2 / ti - 2) / ti) for ti in t]
    return chebyshev.chebfit(u, values, _ERFC_DEGREE)


_ERFC_COEFS = _fit_erfc()
# erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)); 14 terms reach 1e-18 for |x| < 0.5.
_ERF_TAYLOR = np.array([(-1) ** n * 2 / math.sqrt(math.pi) / (math.factorial(n) * (2 * n + 1)) for n in range(14)])


def _erfc_nonneg(z: np.ndarray) -> np.ndarray:
    t = 2.0 / (2.0 + z)
    u2 = 4.0 * t - 2.0
    c = _ERFC_COEFS
    b1, b2, tmp = np.full_like(z, c[-1]), np.zeros_like(z), np.empty_like(z)
    for coef in c[-2:0:-1]:  # Clenshaw recurrence, in place
        np.multiply(u2, b1, out=tmp)
        tmp -= b2
        tmp += coef
        b1, b2, tmp = tmp, b1, b2
    p = 0.5 * u2 * b1 - b2 + c[0]
    return t * np.exp(p - z * z)


def erfc(x) -> np.ndarray:
    """Complementary error function in float64, relatively accurate in both tails."""
    x = np.asarray(x, np.float64)
    with np.errstate(all="ignore"):
        e = _erfc_nonneg(np.abs(x))
        return np.where(x < 0, 2.0 - e, e)


def erf(x) -> np.ndarray:
    """Error function in float64 (agrees with math.erf to a few ulp)."""
    x = np.asarray(x, np.float64)
    with np.errstate(all="ignore"):
        y = np.copysign(1.0 - _erfc_nonneg(np.abs(x)), x)
        small = np.abs(x) < _SMALL
        if small.any():
            xs = x[small]
            y[small] = xs * np.polynomial.polynomial.polyval(xs * xs, _ERF_TAYLOR)
    return y


@register
@dataclass(frozen=True)
class Erf(Unary):
    def fn(self, x):
        return erf(x)


@register
@dataclass(frozen=True)
class Gelu(_Tabled):
    """approximate='none': x * Phi(x) with the exact erf; 'tanh': the tanh approximation of the ONNX spec.

    Fixed point: the table over the calibrated range; x itself above the table and 0 below it (the asymptotes,
    exact once the table reaches `table_domain`, and much closer than a clamped entry when it does not)."""

    asymptotes = (0.0, None)
    approximate: str = "none"

    def lookup_fixed(self, x, table):
        return np.where(x >= table.x_max, x, np.where(x < table.x_min, 0.0, table.lookup(x)))

    def __post_init__(self):
        if self.approximate not in ("none", "tanh"):
            raise InvalidModelError(f"Gelu: approximate must be 'none' or 'tanh', got {self.approximate!r}")

    def fn(self, x):
        w = x.astype(np.float64)
        if self.approximate == "tanh":
            return 0.5 * w * (1 + np.tanh(math.sqrt(2 / math.pi) * (w + 0.044715 * w ** 3)))
        return 0.5 * w * erfc(-w / math.sqrt(2))  # = 0.5 x (1 + erf(x / sqrt 2)), accurate for x << 0 too


@register
@dataclass(frozen=True)
class Shrink(Unary):
    bias: float = 0.0
    lambd: float = 0.5
    kinds = NUMERIC

    def fn(self, x):
        return np.where(x < -self.lambd, x + self.bias, np.where(x > self.lambd, x - self.bias, 0))


@register
@dataclass(frozen=True)
class Clip(Unary):
    """Clamp to [min, max]. When min > max every value becomes max (ONNX).

    An absent bound is the type's numeric_limits lowest()/max() (ONNX, onnxruntime): nothing changes except that
    float infinities become the largest finite value. Before opset 11 the bounds are attributes; from 11 they are
    optional constant inputs, read into the same attributes."""

    min: int | float | None = None
    max: int | float | None = None
    kinds = NUMERIC
    attr_inputs = {1: "min", 2: "max"}
    exact_in_fixed = True  # a min and a max with the bounds; the node rounds to its output type

    def __post_init__(self):
        for name in ("min", "max"):
            v = getattr(self, name)
            if isinstance(v, (tuple, np.ndarray)):  # some exporters give the bounds shape [1]
                flat = np.asarray(v).reshape(-1)
                if flat.size != 1:
                    raise InvalidModelError(f"Clip: {name} must be a scalar, got {flat.size} values")
                object.__setattr__(self, name, flat[0].item())

    def compute(self, inputs):
        x = inputs[0]
        if x.dtype.kind in "iu":
            info = np.iinfo(x.dtype)
            lo = info.min if self.min is None else _int_bound(self.min, info, lower=True)
            hi = info.max if self.max is None else _int_bound(self.max, info, lower=False)
            lo, hi = x.dtype.type(lo), x.dtype.type(hi)  # same dtype: exact, even for 64-bit values
        else:
            finite = float(ml_dtypes.finfo(x.dtype).max)
            lo = -finite if self.min is None else self.min
            hi = finite if self.max is None else self.max
        w = working(x)
        return [np.minimum(np.maximum(w, lo), hi).astype(x.dtype, copy=False)]


def _int_bound(b: int | float, info: np.iinfo, lower: bool) -> int:
    """An integer bound equivalent to `b` for integer data (x >= 2.5 iff x >= 3), within the type's range."""
    if math.isnan(b):
        raise InvalidModelError("Clip: a bound is NaN")
    if math.isinf(b):
        return info.min if b < 0 else info.max
    b = math.ceil(b) if lower else math.floor(b)
    return min(max(b, info.min), info.max)
