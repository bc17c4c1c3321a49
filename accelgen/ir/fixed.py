"""Bit-exact numpy emulation of converting doubles to Xilinx ap_fixed / ap_ufixed.

`ap_fixed<W, I, Q, O> x = d` (the `ap_fixed_base(double)` constructor of the ap_types headers) rounds d to the grid
of 2**-(W-I) by the quantization mode Q, then brings the result into W bits by the overflow mode O. We do the same on
int64 arithmetic, never on rounded floats:

* d is split into its IEEE fields, d = m * 2**e with m a signed 54-bit integer, exactly as the headers do. That also
  copies their reading of the special encodings: +-inf is +-2**1024 (so SAT modes clamp it and WRAP gives 0), and a
  subnormal is read with the implicit bit set and exponent -1023 (only its sign matters unless F > 1000).
* x * 2**F = m * 2**s with s = e + F. If s >= 0 the value is an integer already; otherwise floor(m / 2**-s) and the
  remainder against half an lsb decide the rounding.
* The overflow mode acts on the rounded integer q: WRAP keeps q mod 2**W, SAT clamps to [raw_min, raw_max], SAT_ZERO
  gives 0 out of range, SAT_SYM clamps to [-raw_max, raw_max] for signed types.

Two behaviours of the headers that differ from the textbook definitions are copied on purpose (tests/ir/test_fixed.py
checks them against the compiled headers):

* SAT_SYM (signed): a value that rounds to exactly raw_min (-2**(I-1)), which is in range, still becomes -raw_max.
* SAT_SYM with W == 1 (signed): the headers cannot express -raw_max = 0 and return raw_min (-2**(I-1)) instead of 0
  for every negative value that rounds below zero.
"""

from __future__ import annotations

import numpy as np

from accelgen.ir.types import FixedType, Overflow, Rounding

MAX_RAW_WIDTH = 62  # raw integers are held in int64 with headroom for the rounding carry
MAX_FLOAT_WIDTH = 53  # fixed-point values are held exactly in float64

_MANTISSA_BITS = 52
_EXP_BIAS = 1023
_SHIFT_CLAMP = 60  # right shifts past 54 bits all floor a 54-bit mantissa to 0 or -1; 60 keeps int64 headroom


def _fields(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m, e) int64 arrays with x == m * 2**e read the way ap_fixed_base(double) reads doubles (m == 0 for +-0)."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
    negative = (bits >> np.uint64(63)).astype(bool)
    biased = ((bits >> np.uint64(_MANTISSA_BITS)) & np.uint64(0x7FF)).astype(np.int64)
    mantissa = (bits & np.uint64((1 << _MANTISSA_BITS) - 1)).astype(np.int64) | (1 << _MANTISSA_BITS)
    zero = (bits & np.uint64((1 << 63) - 1)) == 0
    m = np.where(zero, 0, np.where(negative, -mantissa, mantissa))
    e = biased - (_EXP_BIAS + _MANTISSA_BITS)
    return m, e


def _round_up(mode: Rounding, fl, rem, half, m) -> np.ndarray:
    """Whether floor(m / 2**k) (= fl, remainder rem, half = 2**(k-1)) rounds up by one lsb."""
    above, tie = rem > half, rem == half
    if mode is Rounding.TRN:
        return np.zeros(fl.shape, dtype=bool)
    if mode is Rounding.TRN_ZERO:
        return (rem != 0) & (m < 0)
    if mode is Rounding.RND:
        return above | tie
    if mode is Rounding.RND_ZERO:
        return above | (tie & (m < 0))
    if mode is Rounding.RND_INF:
        return above | (tie & (m > 0))
    if mode is Rounding.RND_MIN_INF:
        return above
    if mode is Rounding.RND_CONV:
        return above | (tie & ((fl & 1) == 1))
    raise AssertionError(mode)  # pragma: no cover - the enum is closed


def quantize_raw(t: FixedType, x) -> tuple[np.ndarray, np.ndarray]:
    """(raw int64 values, boolean mask of elements that overflowed the range before the overflow mode acted).

    Raw values are the integers n with value n * 2**-F; signed types give raw_min..raw_max, i.e. the two's-complement
    reading of the W-bit pattern ap_fixed holds. x is converted to float64 first. NaN raises ValueError (ap_fixed has no
    NaN; the headers warn and produce garbage).
    """
    if t.width > MAX_RAW_WIDTH:
        raise ValueError(f"{t}: numpy emulation supports widths up to {MAX_RAW_WIDTH} bits")
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError(f"cannot quantize NaN to {t}")
    shape = x.shape
    m, e = _fields(x.reshape(-1))
    s = e + min(max(t.fractional, -4096), 4096)  # x * 2**F == m * 2**s; |F| past 4096 changes nothing below
    lo, hi, w = t.raw_min, t.raw_max, t.width
    mask = np.int64((1 << w) - 1)

    # s >= 0: an integer, possibly far outside int64. Compare m against the range shifted down instead.
    sl = np.clip(s, 0, 63)
    shifted = (m.view(np.uint64) << np.minimum(sl, w).astype(np.uint64)).view(np.int64)  # mod 2**64, exact here
    low_int = np.where(s < w, shifted & mask, 0)  # the W low bits of m * 2**s
    gt_int = m > (np.int64(hi) >> sl)
    lt_int = m < -((np.int64(-lo)) >> sl)  # m * 2**s < lo  <=>  m < ceil(lo / 2**s)

    # s < 0: round m / 2**k, k = -s, to an integer by the rounding mode.
    k = np.clip(-s, 1, _SHIFT_CLAMP)
    fl = m >> k
    rem = m - fl * (np.int64(1) << k)
    half = np.int64(1) << (k - 1)
    q = fl + _round_up(t.rounding, fl, rem, half, m)
    low_frac = q & mask

    integral = s >= 0
    low = np.where(integral, low_int, low_frac)
    gt = np.where(integral, gt_int, q > hi)
    lt = np.where(integral, lt_int, q < lo)
    overflow = gt | lt

    signed_low = low - (1 << w) if t.signed else low
    wrapped = np.where(low > hi, signed_low, low) if t.signed else low  # two's-complement reading of the W bits
    mode = t.overflow
    if mode is Overflow.WRAP:
        raw = wrapped
    elif mode is Overflow.SAT:
        raw = np.where(gt, hi, np.where(lt, lo, wrapped))
    elif mode is Overflow.SAT_ZERO:
        raw = np.where(overflow, 0, wrapped)
    elif mode is Overflow.SAT_SYM:
        if t.signed:
            sym_lo = lo if w == 1 else -hi  # W == 1: the headers return raw_min, see the module docstring
            raw = np.where(gt, hi, np.where(lt | (wrapped == lo), sym_lo, wrapped))
        else:
            raw = np.where(gt, hi, np.where(lt, lo, wrapped))
    else:  # pragma: no cover
        raise AssertionError(mode)
    return raw.astype(np.int64).reshape(shape), overflow.reshape(shape)


def quantize(t: FixedType, x) -> tuple[np.ndarray, np.ndarray]:
    """(values as float64, overflow mask); values are exactly representable in t."""
    if t.width > MAX_FLOAT_WIDTH:
        raise ValueError(f"{t}: float64 holds fixed-point values exactly only up to {MAX_FLOAT_WIDTH} bits")
    if t.fractional > 1074 or t.integer > 1024:
        raise ValueError(f"{t}: its values are not all representable in float64 (lsb 2**{-t.fractional})")
    raw, overflow = quantize_raw(t, x)
    return np.ldexp(raw.astype(np.float64), -t.fractional), overflow
