"""Bit-exact numpy emulation of converting real numbers to Xilinx ap_fixed.

A double assigned to `ap_fixed<W,I,Q,O>` is first rounded to the grid of 2**-(W-I) by the quantization mode Q, then
brought into the W-bit range by the overflow mode O. We do the same on float64 arrays: scaling by a power of two is
exact, floor is exact, and the rounding decision only needs the exact fractional part, so no step loses a bit.
"""

from __future__ import annotations

import numpy as np

from accelgen.ir.types import FixedType, Overflow, Rounding

MAX_RAW_WIDTH = 62  # raw integers are held in int64
MAX_FLOAT_WIDTH = 53  # values are held exactly in float64


def round_to_grid(t: FixedType, x: np.ndarray) -> np.ndarray:
    """x * 2**F rounded to an integer by t.rounding (float64, exact)."""
    r = np.ldexp(np.asarray(x, dtype=np.float64), t.fractional)
    fl = np.floor(r)
    frac = r - fl  # exact: r and fl share the exponent range
    half, above = frac == 0.5, frac > 0.5
    mode = t.rounding
    if mode is Rounding.TRN:
        up = np.zeros_like(above)
    elif mode is Rounding.TRN_ZERO:
        up = (frac > 0) & (r < 0)
    elif mode is Rounding.RND:
        up = above | half
    elif mode is Rounding.RND_ZERO:
        up = above | (half & (r < 0))
    elif mode is Rounding.RND_INF:
        up = above | (half & (r > 0))
    elif mode is Rounding.RND_MIN_INF:
        up = above
    elif mode is Rounding.RND_CONV:
        up = above | (half & (np.fmod(fl, 2) != 0))
    else:  # pragma: no cover - enum is closed
        raise AssertionError(mode)
    return fl + up


def quantize_raw(t: FixedType, x) -> tuple[np.ndarray, np.ndarray]:
    """(raw int64 values, boolean mask of elements that overflowed the range before the overflow mode acted)."""
    if t.width > MAX_RAW_WIDTH:
        raise ValueError(f"{t}: numpy emulation supports widths up to {MAX_RAW_WIDTH} bits")
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError(f"cannot quantize NaN to {t}")
    q = round_to_grid(t, x)
    lo, hi = t.raw_min, t.raw_max
    overflow = (q < lo) | (q > hi)
    span = float(1 << t.width)
    # Reduce out-of-range values modulo 2**W while still in float (fmod is exact), then finish in integers.
    q = np.where(np.isinf(q), 0.0, q)
    raw = np.fmod(q, span).astype(np.int64)
    mode = t.overflow
    if mode is Overflow.WRAP:
        raw = np.where(raw < 0, raw + (1 << t.width), raw)
        if t.signed:
            raw = np.where(raw > hi, raw - (1 << t.width), raw)
    elif mode is Overflow.SAT:
        raw = np.where(q > hi, hi, np.where(q < lo, lo, raw))
    elif mode is Overflow.SAT_ZERO:
        raw = np.where(overflow, 0, raw)
    elif mode is Overflow.SAT_SYM:
        sym_lo = -hi if t.signed else lo
        raw = np.where(q > hi, hi, np.where(q < lo, sym_lo, raw))
    else:  # pragma: no cover
        raise AssertionError(mode)
    # Infinite inputs overflow in the direction of their sign; wrap has no meaningful value, so it gives 0.
    return raw.astype(np.int64), overflow


def quantize(t: FixedType, x) -> tuple[np.ndarray, np.ndarray]:
    """(values as float64, overflow mask); values are exactly representable in t."""
    if t.width > MAX_FLOAT_WIDTH:
        raise ValueError(f"{t}: float64 holds fixed-point values exactly only up to {MAX_FLOAT_WIDTH} bits")
    raw, overflow = quantize_raw(t, x)
    return np.ldexp(raw.astype(np.float64), -t.fractional), overflow
