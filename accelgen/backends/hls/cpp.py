"""C++ spelling helpers for the HLS generator: identifiers, exact literals and the integer/wide types the kernels
need. Pure functions of FixedTypes and numpy arrays; no file or template work here."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from accelgen.errors import QuantizationError
from accelgen.ir.fixed import MAX_FLOAT_WIDTH
from accelgen.ir.types import FixedType, Overflow, Rounding

_IDENT = re.compile(r"[^0-9A-Za-z_]")


def identifier(text: str) -> str:
    """A C identifier made from `text` (graph names hold '/', '.', '-')."""
    name = _IDENT.sub("_", text).strip("_") or "v"
    return name if not name[0].isdigit() else f"v_{name}"


def literal(value: float) -> str:
    """A C++ double literal equal to `value`: Python's shortest round-trip repr names exactly this double, and
    fixed-point values of <= 53 bits are doubles exactly, so `ap_fixed x = literal` is exact."""
    text = repr(float(value))
    if text in ("inf", "-inf", "nan"):
        raise ValueError(f"no exact literal for {text}")
    return text


class Literals(Sequence):
    """The literal strings of checked constants, spelled only when read (a BERT layer has millions: the fit check
    can refuse a design before any is written), with the float64 values themselves in `data` for the binary
    weight files."""

    def __init__(self, data: np.ndarray):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [repr(v) for v in self.data[index].tolist()]
        return repr(float(self.data[index]))

    def __iter__(self):
        # repr of a finite Python float is its shortest round-trip spelling (see literal); exact_literals checked
        # that every value is finite and of its type
        return (repr(v) for v in self.data.tolist())


def exact_literals(values: np.ndarray, dtype: FixedType, what: str) -> Literals:
    """Literals for constants of type `dtype`, checked to be exactly representable in it (the quantizer rounded
    them; a mismatch here would be a bug upstream, not a user error)."""
    if dtype.width > MAX_FLOAT_WIDTH:
        raise QuantizationError(f"{what}: {dtype} is wider than {MAX_FLOAT_WIDTH} bits, which the HLS generator "
                                "cannot write exactly as literals")
    flat = np.asarray(values, np.float64).reshape(-1)
    raw = np.ldexp(flat, dtype.fractional)
    if not np.all(raw == np.round(raw)) or np.any(raw < dtype.raw_min) or np.any(raw > dtype.raw_max):
        raise AssertionError(f"{what}: values are not exactly representable in {dtype}")
    return Literals(flat)


def integer_type(bits: int, signed: bool = True) -> FixedType:
    """An integer-valued type that floors on assignment (AP_TRN) — the `floor` of the kernels."""
    return FixedType(max(bits, 1), max(bits, 1), signed, Rounding.TRN, Overflow.WRAP)


def exact_type(width: int, integer: int, signed: bool) -> FixedType:
    """A type used only to hold exact values (no rounding ever happens in it)."""
    return FixedType(width, integer, signed, Rounding.TRN, Overflow.WRAP)


def holds_exactly(outer: FixedType, inner: FixedType) -> bool:
    """Whether every value of `inner` is a value of `outer`."""
    if inner.fractional > outer.fractional:
        return False
    inner_top = inner.integer - inner.signed  # magnitude bits above the point
    outer_top = outer.integer - outer.signed
    if inner.signed and not outer.signed:
        return False
    return inner_top <= outer_top


def bits_for(value: int) -> int:
    return max(math.ceil(math.log2(abs(value) + 1)), 1)
