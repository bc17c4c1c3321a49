"""Fixed-point building blocks for the ops' `compute_fixed`: typed constants, a constant scaling of an exact sum,
tables normalised by the leading one (reciprocal, rsqrt, sqrt), exp as a power of two, and softmax built from them.

Each piece is a frozen value stored in a `Quantized` node's params, so a backend can print it and the HLS kernels
can reproduce it bit for bit. Inputs and results are exact fixed-point values held in float64; every rounding is to
a named `FixedType`, and every product is kept within 53 bits so that float64 computes it exactly.

Why normalised tables: a plain table over [lo, hi] has one step size, so 1/x or 1/sqrt(x) is coarse where x is
small and the function steep, and the calibrated range decides the accuracy. Writing x = m * 2**e with m in [1, 2)
(a priority encoder in hardware) leaves a table over [1, 2) and an exact shift: the relative error is the same at
every magnitude and no range has to be calibrated. exp gets the same treatment through 2**(x log2 e).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from accelgen.errors import QuantizationError
from accelgen.ir.fixed import MAX_FLOAT_WIDTH, quantize
from accelgen.ir.types import FixedType, Overflow, Rounding

CONSTANT_ROUNDING = Rounding.RND_CONV  # constants are rounded once, offline
INTERNAL_ROUNDING = Rounding.RND  # run-time roundings: round half up is one adder in hardware


def fixed_round(t: FixedType, x, q=None, name: str = "") -> np.ndarray:
    """x rounded to t, as assigning to an ap_fixed of that type. Overflow events inside an op are reported to the
    wrapping node through `q.note_overflow(name, mask)` when it offers that hook, so internal saturation is
    counted like saturation at op outputs."""
    values, overflow = quantize(t, x)
    note = getattr(q, "note_overflow", None)
    if note is not None:
        note(name, overflow)
    return values


def sum_type(t: FixedType, n: int) -> FixedType:
    """The exact type of a sum of n values of type t."""
    grow = max(math.ceil(math.log2(max(n, 1))), 0)
    return FixedType(t.width + grow, t.integer + grow, t.signed, Rounding.TRN, Overflow.WRAP)


def add_type(a: FixedType, b: FixedType) -> FixedType:
    """The exact type of a + b or a - b (signed: a difference of unsigned values can be negative)."""
    frac = max(a.fractional, b.fractional)
    integer = max(a.integer + (not a.signed), b.integer + (not b.signed)) + 1
    return FixedType(integer + frac, integer, True, Rounding.TRN, Overflow.WRAP)


def product_type(a: FixedType, b: FixedType) -> FixedType:
    """The exact type of a * b."""
    signed = a.signed or b.signed
    integer = a.integer + b.integer - (a.signed and b.signed)
    return FixedType(a.width + b.width - (a.signed and b.signed), integer, signed, Rounding.TRN, Overflow.WRAP)


def significant_type(values, bits: int) -> FixedType:
    """The narrowest type of at most `bits` bits whose top bit is the leading one of max|values| and which holds
    the values rounded to it: 1/N, a softmax scale or log2(e) keep `bits` significant bits whatever their size;
    values that need fewer bits (1/32 needs one) get exactly those."""
    v = np.asarray(values, np.float64)
    signed = bool((v < 0).any())
    magnitude = float(np.max(np.abs(v))) if v.size else 0.0
    if magnitude == 0.0:
        return FixedType(1, 1, False, CONSTANT_ROUNDING, Overflow.SAT)
    integer = math.floor(math.log2(magnitude)) + 1 + signed
    t = FixedType(bits, integer, signed, CONSTANT_ROUNDING, Overflow.SAT)
    if quantize(t, v)[1].any():  # rounding up to the next power of two needs one more integer bit
        t = FixedType(bits, integer + 1, signed, CONSTANT_ROUNDING, Overflow.SAT)
    q = quantize(t, v)[0]
    frac = t.fractional
    while frac > t.fractional - bits + 1 and np.all(np.ldexp(q, frac - 1) == np.round(np.ldexp(q, frac - 1))):
        frac -= 1  # drop trailing zero bits
    return FixedType(t.integer + frac, t.integer, signed, CONSTANT_ROUNDING, Overflow.SAT)


@dataclass(frozen=True)
class FixedConstant:
    """A constant (scalar or small array) already rounded to `type`; `values` is a flat tuple so it hashes."""

    values: tuple[float, ...]
    dims: tuple[int, ...]  # the array's shape (not called shape: printers take anything with one for an array)
    type: FixedType

    @classmethod
    def of(cls, value, bits: int) -> FixedConstant:
        v = np.asarray(value, np.float64)
        t = significant_type(v, bits)
        return cls(tuple(quantize(t, v)[0].reshape(-1).tolist()), tuple(v.shape), t)

    @classmethod
    def in_type(cls, value, t: FixedType) -> FixedConstant:
        v = np.asarray(value, np.float64)
        return cls(tuple(quantize(t, v)[0].reshape(-1).tolist()), tuple(v.shape), t)

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.values, np.float64).reshape(self.dims)

    @property
    def value(self) -> float:
        return self.values[0]

    def __str__(self) -> str:
        shown = f"{self.values[0]:.9g}" if len(self.values) == 1 else f"[{len(self.values)} values]"
        return f"{self.type}({shown})"


@dataclass(frozen=True)
class Rescale:
    """y = x * constant for an exact x of type `x_type`: x is first rounded to `pre` when the exact product would
    need more than 53 bits (None: no rounding), then the exact product is rounded to `out` (None: left exact, the
    node's output rounding follows)."""

    constant: FixedConstant
    x_type: FixedType
    pre: FixedType | None = None
    out: FixedType | None = None

    @classmethod
    def plan(cls, x: FixedType, value, out: FixedType | None, bits: int) -> Rescale:
        """The constant gets `bits` significant bits; when the exact product would pass 53 bits, x first drops
        fractional bits (an exact accumulator's low bits lie far below its values' size, so this costs much less
        than a shorter constant, whose error is relative to everything)."""
        constant = FixedConstant.of(value, bits)
        room = MAX_FLOAT_WIDTH - constant.type.width
        pre = None
        if x.width > room:
            if room <= x.integer:
                raise QuantizationError(f"cannot scale a {x} value by a constant exactly in {MAX_FLOAT_WIDTH} bits")
            pre = FixedType(room, x.integer, x.signed, INTERNAL_ROUNDING, Overflow.SAT)
        return cls(constant, x, pre, out)

    def apply(self, x: np.ndarray, q=None, name: str = "") -> np.ndarray:
        if self.pre is not None:
            x = fixed_round(self.pre, x)  # keeps x's integer bits (only a round-up at the very top saturates)
        y = x * self.constant.array
        return y if self.out is None else fixed_round(self.out, y, q, name)

    def __str__(self) -> str:
        pre = f" via {self.pre}" if self.pre is not None else ""
        return f"x*{self.constant}{pre}" + (f" -> {self.out}" if self.out is not None else "")


_NORMALIZED = {
    "reciprocal": lambda m: 1.0 / m,
    "rsqrt": lambda m: 1.0 / np.sqrt(m),
    "sqrt": np.sqrt,
}
_HALF_POWER = {"reciprocal": False, "rsqrt": True, "sqrt": True}  # f(m * 2**e) needs an even e
_SIGN = {"reciprocal": -1, "rsqrt": -1, "sqrt": 1}  # f(2**e) = 2**(sign * e / (2 if half power else 1))


@dataclass(frozen=True)
class NormalizedTable:
    """f(x) for x > 0 by leading-one normalisation, f one of reciprocal, rsqrt, sqrt.

    x = m * 2**e with m in [1, 2); i = floor((m - 1) * 2**index_bits), the index_bits bits after the leading one.
    reciprocal: 1/x = table[i] * 2**-e.
    rsqrt, sqrt: the power must be even, so an odd e reads the second half of the table, which holds f(2m):
    index = (e & 1) * 2**index_bits + i; rsqrt(x) = table[index] * 2**-(e >> 1), sqrt(x) = table[index] * 2**(e >> 1)
    (e >> 1 is floor(e / 2)). Entries are f at the bin centres, rounded to `out`; the relative error is about
    2**-(index_bits + 1) (half that for the square roots), at every magnitude of x.
    """

    function: str
    index_bits: int
    out: FixedType

    def __post_init__(self):
        if self.function not in _NORMALIZED:
            raise ValueError(f"no normalised table for {self.function!r}")

    @property
    def size(self) -> int:
        return (2 if _HALF_POWER[self.function] else 1) << self.index_bits

    @cached_property
    def values(self) -> np.ndarray:
        step = 2.0 ** -self.index_bits
        m = 1.0 + (np.arange(1 << self.index_bits) + 0.5) * step
        points = np.concatenate([m, 2 * m]) if _HALF_POWER[self.function] else m
        return quantize(self.out, _NORMALIZED[self.function](points))[0]

    def parts(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(table entry, power-of-two exponent) for each x > 0: f(x) ~= entry * 2**exponent."""
        frac, exp = np.frexp(np.asarray(x, np.float64))  # x = frac * 2**exp, frac in [0.5, 1): exact
        m, e = 2.0 * frac, exp.astype(np.int64) - 1
        i = np.floor((m - 1.0) * 2.0 ** self.index_bits).astype(np.int64)
        if _HALF_POWER[self.function]:
            i = i + (e & 1) * (1 << self.index_bits)
            e = e >> 1
        return self.values[i], _SIGN[self.function] * e

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """f(x) exactly as entry * 2**exponent (x > 0)."""
        entry, e = self.parts(x)
        return np.ldexp(entry, e)

    def __str__(self) -> str:
        return f"normalized_table<{self.function},{self.size},{self.out}>"


def signed_reciprocal(x: np.ndarray, table: NormalizedTable) -> np.ndarray:
    """1/x from a normalised reciprocal table, the sign restored; 1/0 is +inf, which rounding saturates (and
    counts)."""
    x = np.asarray(x, np.float64)
    magnitude = np.abs(x)
    r = table.evaluate(np.where(magnitude > 0, magnitude, 1.0))
    return np.where(magnitude > 0, np.copysign(r, x), np.inf)


@dataclass(frozen=True)
class ExpFunction:
    """exp(x) as 2**t with t = x * log2(e): t is rounded to `scale.out`; n = floor(t), f = t - n in [0, 1), and
    exp(x) ~= table[floor(f * 2**index_bits)] * 2**n, the entries 2**(bin centre) rounded to `out` (in [1, 2)).
    The shift n is clamped to [min_shift, max_shift], outside of which every result rounds to 0 or saturates in
    `result`, the type callers round to. Relative error about ln2 * 2**-(index_bits + 1), over the whole range."""

    scale: Rescale  # x * log2(e), rounded to the t type
    index_bits: int
    out: FixedType
    result: FixedType

    @property
    def min_shift(self) -> int:
        return -(self.result.fractional + 2)  # entry * 2**n < lsb / 2: rounds to 0 (entries are < 2)

    @property
    def max_shift(self) -> int:
        return self.result.integer + 1  # entry * 2**n >= 2**(I + 1): saturates

    @cached_property
    def values(self) -> np.ndarray:
        centres = (np.arange(1 << self.index_bits) + 0.5) * 2.0 ** -self.index_bits
        return quantize(self.out, np.exp2(centres))[0]

    def evaluate(self, x: np.ndarray, q=None) -> np.ndarray:
        """exp(x) exactly as entry * 2**n; round it to `result`."""
        t = self.scale.apply(np.asarray(x, np.float64), q, "exp_t")
        n = np.floor(t)
        i = np.floor((t - n) * 2.0 ** self.index_bits).astype(np.int64)
        n = np.clip(n, self.min_shift, self.max_shift).astype(np.int64)
        return np.ldexp(self.values[i], n)

    def __str__(self) -> str:
        return f"exp2_table<t={self.scale.out},{1 << self.index_bits},{self.out}> -> {self.result}"


def softmax_difference_type(x: FixedType, result: FixedType) -> FixedType:
    """The type of d = x - max(x) in a softmax: x's fractional bits, and only as many integer bits as reach where
    exp(d) rounds to 0 in `result` (d < -(F + 2) ln 2), so saturating d there changes nothing and keeps the exp
    input narrow whatever the logits' range (masks of -1e4 or -3.4e38)."""
    exact = add_type(x, x)
    integer = min(exact.integer, math.floor(math.log2(result.fractional + 3)) + 2)
    frac = max(x.fractional, 0)
    return FixedType(integer + frac, integer, True, INTERNAL_ROUNDING, Overflow.SAT)


def softmax_fixed(x: np.ndarray, axis: int, exp: ExpFunction, reciprocal: NormalizedTable,
                  keep: np.ndarray | None = None, q=None) -> np.ndarray:
    """Softmax of exact values along `axis`: d = x - max(x), saturated to the exp input type (exact where it
    matters, see softmax_difference_type; not counted); e = exp(d) rounded to exp.result; s = sum(e) exactly;
    result = e * reciprocal(s), exact (the caller rounds it). `keep` (broadcasting to x) masks entries out: their
    e is 0 (causal attention). s >= 1 always, since the row maximum gives exp(0)."""
    x = np.asarray(x, np.float64)
    if keep is not None:
        lowest = np.min(x) if x.size else 0.0
        x_for_max = np.where(keep, x, lowest)
    else:
        x_for_max = x
    d = fixed_round(exp.scale.x_type, x - np.max(x_for_max, axis=axis, keepdims=True))
    e = fixed_round(exp.result, exp.evaluate(d, q), q, "exp")
    if keep is not None:
        e = np.where(keep, e, 0.0)
    s = e.sum(axis=axis, keepdims=True)
    r = reciprocal.evaluate(np.maximum(s, exp.result.lsb))
    return e * r
