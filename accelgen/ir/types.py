"""Types are values: element types (float, integer, bool, fixed point) and tensor types.

All are frozen dataclasses, so they hash, compare and print. `FixedType` carries the Xilinx `ap_fixed` semantics;
its numpy quantizer lives in `fixed.py` and is bit-exact with the C++ headers (tests/ir/test_fixed.py proves it).
"""

from __future__ import annotations

import enum
import math
import operator
import re
from dataclasses import dataclass

import ml_dtypes
import numpy as np


class Rounding(enum.Enum):
    """ap_fixed quantization (rounding) modes, applied when fractional bits are dropped."""

    TRN = "TRN"  # toward -inf (floor); the ap_fixed default
    TRN_ZERO = "TRN_ZERO"  # toward zero
    RND = "RND"  # to nearest, ties toward +inf
    RND_ZERO = "RND_ZERO"  # to nearest, ties toward zero
    RND_INF = "RND_INF"  # to nearest, ties away from zero
    RND_MIN_INF = "RND_MIN_INF"  # to nearest, ties toward -inf
    RND_CONV = "RND_CONV"  # to nearest, ties to even (convergent)


class Overflow(enum.Enum):
    """ap_fixed overflow modes, applied when the value does not fit the integer bits."""

    WRAP = "WRAP"  # two's-complement wrap-around; the ap_fixed default
    SAT = "SAT"  # clamp to the min/max representable value
    SAT_ZERO = "SAT_ZERO"  # set to zero
    SAT_SYM = "SAT_SYM"  # clamp to +-max (signed types never hold the most negative value)


@dataclass(frozen=True)
class FloatType:
    bits: int
    name: str  # "f32", "f16", "bf16", "f64"

    @property
    def np_dtype(self) -> np.dtype:
        return _FLOAT_NP[self.name]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class IntType:
    bits: int
    signed: bool

    @property
    def name(self) -> str:
        return ("i" if self.signed else "u") + str(self.bits)

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(("int" if self.signed else "uint") + str(self.bits))

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class BoolType:
    name: str = "bool"

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(bool)

    def __str__(self) -> str:
        return "bool"


@dataclass(frozen=True)
class FixedType:
    """A fixed-point number: `width` bits in all, `integer` of them (sign included) left of the binary point.

    Matches Xilinx `ap_fixed<W, I, Q, O>` (signed) and `ap_ufixed<W, I, Q, O>` (unsigned). In numpy, fixed-point
    tensors are stored as float64 arrays whose values are exactly representable in the type (width <= 53).
    """

    width: int
    integer: int
    signed: bool = True
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self):
        width, integer = _as_int(self.width), _as_int(self.integer)
        if width is None or not 1 <= width <= MAX_FIXED_WIDTH:
            raise ValueError(f"fixed-point width must be an integer in 1..{MAX_FIXED_WIDTH}, got {self.width!r}")
        if integer is None:
            raise ValueError(f"fixed-point integer bits must be an integer, got {self.integer!r}")
        if not isinstance(self.signed, (bool, np.bool_)):
            raise ValueError(f"fixed-point signed must be a bool, got {self.signed!r}")
        try:  # also accept the mode names, with or without the C++ AP_ prefix
            rounding = self.rounding if isinstance(self.rounding, Rounding) else Rounding(_mode_name(self.rounding))
            overflow = self.overflow if isinstance(self.overflow, Overflow) else Overflow(_mode_name(self.overflow))
        except ValueError:
            raise ValueError(f"unknown rounding or overflow mode: {self.rounding!r}, {self.overflow!r} "
                             f"(rounding: {', '.join(m.value for m in Rounding)}; "
                             f"overflow: {', '.join(m.value for m in Overflow)})") from None
        for name, value in (("width", width), ("integer", integer), ("signed", bool(self.signed)),
                            ("rounding", rounding), ("overflow", overflow)):
            object.__setattr__(self, name, value)

    @property
    def fractional(self) -> int:
        return self.width - self.integer

    @property
    def lsb(self) -> float:
        """Value of one unit in the last place, 2**-F."""
        return _ldexp(1, -self.fractional)

    @property
    def raw_min(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def raw_max(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def min(self) -> float:
        """The most negative value (0 for unsigned); rounded to float64, -inf past its range."""
        return _ldexp(self.raw_min, -self.fractional)

    @property
    def max(self) -> float:
        """The largest value, (2**(W-1) - 1) * lsb signed, (2**W - 1) * lsb unsigned; rounded to float64."""
        return _ldexp(self.raw_max, -self.fractional)

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(np.float64)

    @property
    def name(self) -> str:
        return str(self)

    def _modes(self) -> list[str]:
        if self.overflow is not Overflow.WRAP:
            return [self.rounding.value, self.overflow.value]
        if self.rounding is not Rounding.TRN:
            return [self.rounding.value]
        return []

    def __str__(self) -> str:
        args = [str(self.width), str(self.integer), *self._modes()]
        return f"{'' if self.signed else 'u'}fixed<{','.join(args)}>"

    def cpp(self) -> str:
        """The Vitis HLS C++ spelling, e.g. `ap_fixed<16,6,AP_RND_CONV,AP_SAT>`."""
        args = [str(self.width), str(self.integer), *("AP_" + m for m in self._modes())]
        return f"ap_{'' if self.signed else 'u'}fixed<{','.join(args)}>"

    @classmethod
    def parse(cls, text: str) -> FixedType:
        """Parse `fixed<16,6>`, `ufixed<8,0,RND,SAT>` or the C++ `ap_fixed<16,6,AP_RND,AP_SAT>` spelling."""
        if not isinstance(text, str):
            raise ValueError(f"not a fixed-point type: {text!r}")
        m = _FIXED_RE.fullmatch(re.sub(r"\s+", "", text))
        if not m:
            raise ValueError(f"not a fixed-point type: {text!r} "
                             "(expected e.g. fixed<16,6> or ap_fixed<16,6,AP_RND,AP_SAT>)")
        args = m.group("args").split(",")
        if len(args) < 2 or len(args) > 4:
            raise ValueError(f"fixed-point type needs 2 to 4 parameters: {text!r}")
        modes = [a.removeprefix("AP_") for a in args[2:]]
        try:
            rounding = Rounding(modes[0]) if len(modes) > 0 else Rounding.TRN
            overflow = Overflow(modes[1]) if len(modes) > 1 else Overflow.WRAP
        except ValueError:
            raise ValueError(f"unknown rounding or overflow mode in {text!r}") from None
        try:
            width, integer = int(args[0]), int(args[1])
        except ValueError:
            raise ValueError(f"fixed-point width and integer bits must be integers: {text!r}") from None
        return cls(width, integer, m.group("u") == "", rounding, overflow)

    def quantize(self, x) -> np.ndarray:
        """Values of `x` converted to this type exactly as assigning a double to ap_fixed does (float64 out)."""
        from accelgen.ir.fixed import quantize

        return quantize(self, x)[0]


MAX_FIXED_WIDTH = 1024  # ap_[u]fixed's default AP_INT_MAX_W


def _as_int(value) -> int | None:
    """value as a Python int if it is an integer (numpy integers too), else None; bools are not integers here."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _ldexp(n: int, e: int) -> float:
    """n * 2**e as a float (exact while it fits float64; +-inf past the float range, 0 below it)."""
    extra = max(n.bit_length() - 64, 0)  # huge n: keep 64 leading bits, float64 rounds them anyway
    try:
        return math.ldexp(float(n >> extra), e + extra)
    except OverflowError:
        return math.copysign(math.inf, n)


def _mode_name(value) -> str:
    if not isinstance(value, str):
        raise ValueError(value)
    return value.strip().upper().removeprefix("AP_")


_FIXED_RE = re.compile(r"(?:ap_)?(?P<u>u?)fixed<(?P<args>[^<>]*)>")

ElementType = FloatType | IntType | BoolType | FixedType

F16 = FloatType(16, "f16")
BF16 = FloatType(16, "bf16")
F32 = FloatType(32, "f32")
F64 = FloatType(64, "f64")
I8, I16, I32, I64 = (IntType(b, True) for b in (8, 16, 32, 64))
U8, U16, U32, U64 = (IntType(b, False) for b in (8, 16, 32, 64))
BOOL = BoolType()

_FLOAT_NP = {"f16": np.dtype(np.float16), "bf16": np.dtype(ml_dtypes.bfloat16), "f32": np.dtype(np.float32),
             "f64": np.dtype(np.float64)}
_BY_NP = {t.np_dtype: t for t in (F16, BF16, F32, F64, I8, I16, I32, I64, U8, U16, U32, U64, BOOL)}


def from_numpy(dtype) -> ElementType:
    """The element type for a numpy dtype (float64 maps to f64, not to a fixed type)."""
    try:
        return _BY_NP[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"no accelgen element type for numpy dtype {np.dtype(dtype)}") from None


def is_float(t: ElementType) -> bool:
    return isinstance(t, FloatType)


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: ElementType

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if any(d < 0 for d in self.shape):
            raise ValueError(f"negative dimension in shape {self.shape}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        bits = self.dtype.width if isinstance(self.dtype, FixedType) else getattr(self.dtype, "bits", 8)
        return (self.numel * bits + 7) // 8

    def with_shape(self, shape) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dtype: ElementType) -> TensorType:
        return TensorType(self.shape, dtype)

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"

    @classmethod
    def of(cls, array: np.ndarray) -> TensorType:
        return cls(array.shape, from_numpy(array.dtype))
