"""Quantization ops: ONNX QuantizeLinear / DequantizeLinear and the QONNX custom ops Quant (IntQuant),
BipolarQuant and Trunc.

Scales, zero points and bit widths stay tensor inputs: they are constants in every real model, but keeping them as
tensors lets per-channel and blocked parameters flow through unchanged for the passes that map them to fixed point.
QONNX semantics follow the QONNX operator docs and its reference executor (`ROUND` is round-half-to-even).

Fixed point (`compute_fixed` / `fixed_precision`, used by `accelgen.quantize`) keeps the model's own decisions:
a quantizer whose scale is a power of two outputs exactly the FixedType it defines (bitwidth bits, integer bits
from the scale), and where the QONNX rounding and clipping match an ap_fixed mode that type's own cast *is* the
op (param `cast=True`: ROUND -> RND_CONV, FLOOR -> TRN, DOWN -> TRN_ZERO, HALF_UP -> RND_INF, HALF_DOWN ->
RND_ZERO; signed narrow -> SAT_SYM, otherwise SAT). CEIL, UP, unsigned narrow ranges, zero points and per-channel
scales have no single ap_fixed cast: they compute exactly anyway (integer decisions from exact comparisons, see
`_levels`) into a type that holds every result, with `cast=False`. A scale that is not a power of two puts values
on a grid no FixedType holds: `accelgen.quant.imported.prepare_imported` keeps them exact as integer levels
(`QuantToInteger`, or a unit scale) whose scale moves into the consuming layers' weights; a quantizer it cannot
rewrite (feeding a Softmax, an Add or a graph output) keeps its exact integer decisions but rounds levels * scale to
its calibrated activation type, and says so with `exact=False` in its params.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelgen.errors import InvalidModelError, QuantizationError, ShapeError
from accelgen.ir.fixed import MAX_FLOAT_WIDTH
from accelgen.ir.ops.base import ACCELGEN_DOMAIN, QONNX_DOMAIN, Op, broadcast_shapes, normalize_axis
from accelgen.ir.ops.quantized import FixedPlan
from accelgen.ir.ops.registry import register
from accelgen.ir.types import FixedType, Overflow, Rounding, TensorType, from_numpy, is_float

# TensorProto element type codes of the integer types QuantizeLinear may produce here.
_QUANT_TYPES = {2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16}
_PRECISIONS = {1: np.float32, 10: np.float16, 11: np.float64}


def _param_layout(op: str, x: TensorType, p: TensorType, axis: int, block_size: int, what: str) -> None:
    """Check a scale / zero point against x: per-tensor (one value), per-axis (1-D along `axis`), or blocked
    (x's rank, with `axis` cut into blocks of `block_size`)."""
    if block_size > 0:
        a = normalize_axis(axis, x.rank, op)
        want = tuple(-(-d // block_size) if i == a else d for i, d in enumerate(x.shape))
        if p.shape != want:
            raise ShapeError(f"{op}: blocked {what} for input {x.shape} with block_size {block_size} along axis "
                             f"{axis} must have shape {want}, got {p.shape}")
    elif block_size < 0:
        raise InvalidModelError(f"{op}: block_size must be >= 0, got {block_size}")
    elif p.numel == 1 and p.rank <= 1:
        return
    elif p.rank == 1:
        a = normalize_axis(axis, x.rank, op)
        if p.shape[0] != x.shape[a]:
            raise ShapeError(f"{op}: per-axis {what} has {p.shape[0]} values for axis {axis} of size {x.shape[a]}")
    else:
        raise ShapeError(f"{op}: {what} of shape {p.shape} is neither a scalar nor 1-D (per-axis); set block_size "
                         "for blocked quantization")


def _same_layout(zp: TensorType, scale: TensorType) -> bool:
    """Zero point and scale agree in shape; per-tensor ones may be a scalar and a 1-element 1-D tensor (onnxruntime's
    quantizer writes its int32 bias that way, and onnxruntime runs it)."""
    return zp.shape == scale.shape or (zp.numel == scale.numel == 1 and zp.rank <= 1 and scale.rank <= 1)


def _expand(p: np.ndarray, x_shape: tuple[int, ...], axis: int, block_size: int) -> np.ndarray:
    """A scale / zero point laid out to broadcast against x."""
    if p.size == 1 and p.ndim <= 1 and block_size <= 0:
        return p.reshape(())
    a = normalize_axis(axis, len(x_shape), "")
    if block_size > 0:
        return np.repeat(p, block_size, axis=a)[tuple(slice(0, d) for d in x_shape)]
    return p.reshape([-1 if i == a else 1 for i in range(len(x_shape))])


# -- fixed point ----------------------------------------------------------------------------------------------------

# QONNX rounding modes that are ap_fixed quantization modes. CEIL and UP are not: they compute exactly by `_levels`.
AP_ROUNDING = {
    "ROUND": Rounding.RND_CONV, "HALF_EVEN": Rounding.RND_CONV, "FLOOR": Rounding.TRN, "DOWN": Rounding.TRN_ZERO,
    "ROUND_TO_ZERO": Rounding.TRN_ZERO, "HALF_UP": Rounding.RND_INF, "HALF_DOWN": Rounding.RND_ZERO,
}


def pow2_exponents(scale) -> np.ndarray | None:
    """The integers e with scale == 2**e (elementwise), or None if some scale is not a positive power of two."""
    s = np.asarray(scale, np.float64)
    if s.size == 0 or not np.all(np.isfinite(s) & (s > 0)):
        return None
    mantissa, e = np.frexp(s)
    return (e - 1).astype(np.int64) if np.all(mantissa == 0.5) else None


def grid_type(lo, hi, exponent, rounding: Rounding = Rounding.TRN, overflow: Overflow = Overflow.SAT) -> FixedType:
    """The narrowest FixedType holding n * 2**exponent for every integer lo <= n <= hi. Arrays (per-channel levels
    or exponents) broadcast: the type then holds every channel's values exactly."""
    lo, hi, e = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (lo, hi, exponent)))
    e_min = int(e.min())
    shift = np.ldexp(1.0, (e - e_min).astype(np.int64))  # channels on coarser grids: integers on the finest grid
    low, high = int(np.min(lo * shift)), int(np.max(hi * shift))
    signed = low < 0
    width = max((-low - 1).bit_length() + 1 if signed else 1, high.bit_length() + signed)
    if width > MAX_FLOAT_WIDTH:
        raise QuantizationError(f"levels [{low}, {high}] need {width} bits, more than the {MAX_FLOAT_WIDTH} that "
                                "fixed-point emulation holds exactly")
    return FixedType(width, width + e_min, signed, rounding, overflow)


def _levels(x, scale, zeropt, lo, hi, mode: str) -> np.ndarray:
    """The QONNX levels n = R(clip(x / scale + zeropt, lo, hi)) for float64 x holding exact fixed-point values and an
    integer zero point, computed exactly whatever the scale: every decision compares x against an exact multiple of
    the scale (c * s and (c + 1/2) * s are exact in float64 for float32 scales and |c| < 2**28), never a rounded
    quotient. This is the fixed-point meaning of a quantizer; hardware can hold the multiples as thresholds."""
    x, s, z = (np.asarray(a, np.float64) for a in (x, scale, zeropt))
    x = np.clip(x, (lo - z) * s, (hi - z) * s)
    c = np.floor(x / s)  # may be one off where the quotient rounded; corrected exactly below
    c = np.where(c * s > x, c - 1, c)
    c = np.where((c + 1) * s <= x, c + 1, c)
    mid = (c + 0.5) * s
    above, tie, inexact = x > mid, x == mid, c * s != x
    u = c + z  # floor(x / s + z)
    positive, negative = x > -z * s, x < -z * s  # the sign of x / s + z
    mode = mode.upper()
    if mode in ("ROUND", "HALF_EVEN"):
        up = above | (tie & (np.mod(u, 2) == 1))
    elif mode == "HALF_UP":  # ties away from zero
        up = above | (tie & positive)
    elif mode == "HALF_DOWN":  # ties toward zero
        up = above | (tie & negative)
    elif mode == "FLOOR":
        up = np.zeros(u.shape, bool)
    elif mode == "CEIL":
        up = inexact
    elif mode in ("DOWN", "ROUND_TO_ZERO"):
        up = inexact & negative
    elif mode == "UP":  # away from zero
        up = inexact & positive
    else:
        raise InvalidModelError(f"unknown rounding mode {mode!r}")
    return u + up


def _plans():
    """Plan helpers (constant parameters, checks, exact constant types) live with the quantizer."""
    from accelgen.quant import imported  # the quant package imports the ops: import on use

    return imported


@register
@dataclass(frozen=True)
class QuantizeLinear(Op):
    """Per-tensor, per-axis or blocked; uint8/int8/uint16/int16; round half to even, saturating."""

    axis: int = 1
    saturate: int = 1  # only matters for float8 outputs, which accelgen does not support
    block_size: int = 0
    output_dtype: int = 0  # TensorProto code; 0: the zero point's type, or uint8 without one
    precision: int = 0  # TensorProto code of the type x / scale is computed in; 0: float32

    def out_dtype(self, zero_point: TensorType | None):
        if self.output_dtype and self.output_dtype not in _QUANT_TYPES:
            raise InvalidModelError(f"QuantizeLinear: output_dtype {self.output_dtype} is an element type accelgen "
                                    "does not support (uint8, int8, uint16, int16 are)")
        if zero_point is not None:
            if self.output_dtype and from_numpy(_QUANT_TYPES[self.output_dtype]) != zero_point.dtype:
                raise ShapeError(f"QuantizeLinear: output_dtype {self.output_dtype} differs from the zero point's "
                                 f"type {zero_point.dtype}")
            if zero_point.dtype.np_dtype not in map(np.dtype, _QUANT_TYPES.values()):
                raise ShapeError(f"QuantizeLinear: zero point type {zero_point.dtype} is not a supported "
                                 "quantized type (uint8, int8, uint16, int16)")
            return zero_point.dtype
        return from_numpy(_QUANT_TYPES.get(self.output_dtype, np.uint8))

    def infer(self, inputs):
        self.arity(inputs, 2, 3)
        x, scale = inputs[:2]
        zp = inputs[2] if len(inputs) > 2 else None
        if not is_float(x.dtype) and x.dtype.np_dtype != np.int32:
            raise ShapeError(f"QuantizeLinear: x must be float or int32, got {x.dtype}")
        if self.precision and self.precision not in _PRECISIONS:
            raise InvalidModelError(f"QuantizeLinear: precision {self.precision} is not supported")
        for what, p in (("scale", scale), ("zero point", zp)):
            if p is not None:
                _param_layout("QuantizeLinear", x, p, self.axis, self.block_size, what)
        if zp is not None and not _same_layout(zp, scale):
            raise ShapeError(f"QuantizeLinear: zero point shape {zp.shape} differs from scale shape {scale.shape}")
        return [x.with_dtype(self.out_dtype(zp))]

    def compute(self, inputs):
        x, scale = inputs[:2]
        zp = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
        out = self.out_dtype(TensorType.of(zp) if zp is not None else None).np_dtype
        ftype = _PRECISIONS.get(self.precision, np.float32)
        s = _expand(scale, x.shape, self.axis, self.block_size).astype(ftype)
        q = np.rint(x.astype(ftype) / s).astype(np.float64)  # rint: round half to even, as ONNX requires
        if zp is not None:
            q = q + _expand(zp, x.shape, self.axis, self.block_size)
        info = np.iinfo(out)
        return [np.clip(q, info.min, info.max).astype(out)]

    def fixed_precision(self, node, ctx):
        """The integer output keeps its type; any float32 scale is exact (see `compute_fixed`)."""
        p = _plans()
        (scale,) = p.parameters(node, {1: "scale"})
        p.check_scale(node, scale)
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            p.parameters(node, {2: "zero point"})
        return FixedPlan([node.outputs[0].dtype], [("cast", False), ("exact", True)], p.exact_constants(node, [1]))

    def compute_fixed(self, inputs, q):
        """saturate(rint(x / scale) + zero_point) decided exactly (`_levels`); onnxruntime rounds the quotient to
        float32 first, which can differ only where x / scale lies within float32 rounding of a half-integer."""
        x, scale = inputs[:2]
        zp = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
        info = np.iinfo(q.out[0].np_dtype)
        s = _expand(np.asarray(scale, np.float64), x.shape, self.axis, self.block_size)
        z = 0.0 if zp is None else _expand(zp, x.shape, self.axis, self.block_size).astype(np.float64)
        return [_levels(x, s, 0.0, info.min - z, info.max - z, "ROUND") + z]


@register
@dataclass(frozen=True)
class DequantizeLinear(Op):
    """Per-tensor, per-axis or blocked; (x - zero_point) * scale in float32."""

    axis: int = 1
    block_size: int = 0
    output_dtype: int = 0  # opset 23; 0: the scale's type

    def infer(self, inputs):
        self.arity(inputs, 2, 3)
        x, scale = inputs[:2]
        zp = inputs[2] if len(inputs) > 2 else None
        if is_float(x.dtype) or x.dtype.np_dtype.kind not in "iu":
            raise ShapeError(f"DequantizeLinear: x must be an integer tensor, got {x.dtype}")
        if not is_float(scale.dtype):
            raise ShapeError(f"DequantizeLinear: scale must be float, got {scale.dtype}")
        for what, p in (("scale", scale), ("zero point", zp)):
            if p is not None:
                _param_layout("DequantizeLinear", x, p, self.axis, self.block_size, what)
        if zp is not None and (zp.dtype != x.dtype or not _same_layout(zp, scale)):
            raise ShapeError(f"DequantizeLinear: zero point {zp} must have x's type {x.dtype} and the scale's "
                             f"shape {scale.shape}")
        dtype = scale.dtype
        if self.output_dtype:
            codes = {1: "f32", 10: "f16", 16: "bf16"}
            if codes.get(self.output_dtype) != scale.dtype.name:
                raise ShapeError(f"DequantizeLinear: output_dtype {self.output_dtype} must be the scale's type "
                                 f"{scale.dtype}")
        return [x.with_dtype(dtype)]

    def compute(self, inputs):
        x, scale = inputs[:2]
        zp = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
        q = x.astype(np.int64)
        if zp is not None:
            q = q - _expand(zp, x.shape, self.axis, self.block_size).astype(np.int64)
        s = _expand(scale, x.shape, self.axis, self.block_size).astype(np.float32)
        return [(q.astype(np.float32) * s).astype(scale.dtype)]

    def fixed_precision(self, node, ctx):
        """(x - zero_point) * scale for power-of-two scales: exactly the grid type of the integer range shifted by
        the zero point. Fed by a QuantizeLinear with the same scale and a zero zero point, the pair is that type's
        cast (round half to even, saturate): `cast=True`."""
        p = _plans()
        (scale,) = p.parameters(node, {1: "scale"})
        p.check_scale(node, scale)
        x = node.inputs[0]
        has_zp = len(node.inputs) > 2 and node.inputs[2] is not None
        zp = p.parameters(node, {2: "zero point"})[0] if has_zp else np.zeros_like(scale)
        e = pow2_exponents(scale)
        if e is None:
            return p.quantizer_plan(node, ctx, None, False, [1])
        info = np.iinfo(x.dtype.np_dtype)
        t = grid_type(info.min - zp, info.max - zp, e, Rounding.RND_CONV, Overflow.SAT)
        producer = x.producer
        cast = bool(not np.any(zp) and producer is not None and producer.op_type == "QuantizeLinear"
                    and p.same_constant(producer, 1, node.inputs[1]) and len(np.unique(scale)) == 1
                    and all(v is None or (v.is_constant and not np.any(v.data)) for v in producer.inputs[2:3]))
        return p.quantizer_plan(node, ctx, t, cast, [1])

    def compute_fixed(self, inputs, q):
        x, scale = inputs[:2]
        zp = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
        n = np.asarray(x, np.float64)
        if zp is not None:
            n = n - _expand(zp, x.shape, self.axis, self.block_size).astype(np.float64)
        return [n * _expand(np.asarray(scale, np.float64), x.shape, self.axis, self.block_size)]


# -- QONNX ------------------------------------------------------------------------------------------------------

def _round_half_up(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _round_half_down(x):
    return np.sign(x) * np.ceil(np.abs(x) - 0.5)


_ROUNDING = {
    "ROUND": np.round,  # half to even
    "HALF_EVEN": np.round,
    "CEIL": np.ceil,
    "FLOOR": np.floor,
    "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)),  # away from zero
    "DOWN": np.trunc,  # toward zero
    "ROUND_TO_ZERO": np.trunc,  # Brevitas' name for DOWN
    "HALF_UP": _round_half_up,  # ties away from zero
    "HALF_DOWN": _round_half_down,  # ties toward zero
}


def _rounding(mode: str, op: str):
    fn = _ROUNDING.get(mode.upper())
    if fn is None:
        raise InvalidModelError(f"{op}: rounding_mode must be one of {', '.join(_ROUNDING)}, got {mode!r}")
    return fn


def int_range(bits, signed: int, narrow: int) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and largest integer of a `bits`-bit type (narrow drops the most negative / largest value)."""
    bits = np.asarray(bits, dtype=np.float64)
    if signed:
        return -(2.0 ** (bits - 1)) + (1 if narrow else 0), 2.0 ** (bits - 1) - 1
    return np.zeros_like(bits), 2.0 ** bits - 1 - (1 if narrow else 0)


@dataclass(frozen=True)
class _QonnxOp(Op):
    domain = QONNX_DOMAIN

    def check(self, inputs, n_params: int, lo: int, hi: int | None = None) -> TensorType:
        """x is float; the next `n_params` inputs broadcast into x's shape without changing it."""
        self.arity(inputs, lo, hi)
        x = inputs[0]
        if not is_float(x.dtype):
            raise ShapeError(f"{self.op_type}: input must be float, got {x.dtype}")
        for p in inputs[1:1 + n_params]:
            if broadcast_shapes(x.shape, p.shape, op=self.op_type) != x.shape:
                raise ShapeError(f"{self.op_type}: parameter of shape {p.shape} does not broadcast into the input "
                                 f"shape {x.shape}")
        return x


@register
@dataclass(frozen=True)
class Quant(_QonnxOp):
    """QONNX (Int)Quant: q = clip(round(x / scale + zeropt), min_int, max_int); y = (q - zeropt) * scale."""

    signed: int = 1
    narrow: int = 0
    rounding_mode: str = "ROUND"

    def __post_init__(self):
        _rounding(self.rounding_mode, self.op_type)

    def infer(self, inputs):
        x = self.check(inputs, 2, 4)
        if inputs[3].numel != 1:
            raise ShapeError(f"{self.op_type}: bitwidth must be a scalar, got shape {inputs[3].shape}")
        return [x]

    def bits(self, bitwidth) -> int:
        bits = float(np.asarray(bitwidth).reshape(-1)[0])
        if bits != int(bits) or bits < 1:
            raise InvalidModelError(f"{self.op_type}: bitwidth must be a positive integer, got {bits}")
        return int(bits)

    def bipolar(self, bits: int) -> bool:
        return bits == 1 and bool(self.signed)  # one signed bit: +-1, as QONNX executes it

    def levels(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """(q - zeropt, scale) in x's float type: the output is their product."""
        x, scale, zeropt, bitwidth = inputs
        dtype = x.dtype
        scale, zeropt = scale.astype(dtype), zeropt.astype(dtype)
        bits = self.bits(bitwidth)
        q = x / scale + zeropt
        if self.bipolar(bits):
            q = np.where(q >= 0, 1, -1).astype(dtype)
        else:
            lo, hi = int_range(bits, self.signed, self.narrow)
            q = _rounding(self.rounding_mode, self.op_type)(np.clip(q, dtype.type(lo), dtype.type(hi)))
        return q - zeropt, scale

    def compute(self, inputs):
        n, scale = self.levels(inputs)
        return [(n * scale).astype(inputs[0].dtype)]

    # -- fixed point ------------------------------------------------------------------------------------------------
    def level_range(self, zeropt, bits: int) -> tuple[np.ndarray, np.ndarray]:
        """The smallest and largest level q - zeropt."""
        lo, hi = (-1.0, 1.0) if self.bipolar(bits) else int_range(bits, self.signed, self.narrow)
        return lo - zeropt, hi - zeropt

    def fixed_type(self, scale, zeropt, bitwidth) -> tuple[FixedType, bool]:
        """(the output type, whether that type's own cast is this op) for a power-of-two scale and an integer zero
        point. The cast needs one scale, a zero zero point, an ap_fixed rounding mode and a range that SAT (or
        SAT_SYM for signed narrow) gives; bipolar and unsigned narrow ranges have none."""
        bits = self.bits(bitwidth)
        e = pow2_exponents(scale)
        lo, hi = self.level_range(zeropt, bits)
        rounding = AP_ROUNDING.get(self.rounding_mode.upper())
        overflow = Overflow.SAT_SYM if self.signed and self.narrow else Overflow.SAT
        cast = (rounding is not None and not np.any(zeropt) and len(np.unique(e)) == 1 and not self.bipolar(bits)
                and not (self.narrow and not self.signed))
        return grid_type(lo, hi, e, rounding or Rounding.TRN, overflow), cast

    def fixed_precision(self, node, ctx):
        p = _plans()
        scale, zeropt, bitwidth = p.parameters(node, {1: "scale", 2: "zero point", 3: "bitwidth"})
        p.check_scale(node, scale)
        p.check_integer(node, zeropt)
        t, cast = self.fixed_type(scale, zeropt, bitwidth) if pow2_exponents(scale) is not None else (None, False)
        return p.quantizer_plan(node, ctx, t, cast, [1, 2, 3])

    def fixed_levels(self, inputs) -> np.ndarray:
        """q - zeropt from exact fixed-point inputs (`_levels`: exact for any float32 scale)."""
        x, scale, zeropt, bitwidth = inputs
        bits = self.bits(bitwidth)
        if self.bipolar(bits):
            return np.where(x >= -zeropt * scale, 1.0, -1.0) - zeropt
        lo, hi = int_range(bits, self.signed, self.narrow)
        return _levels(x, scale, zeropt, lo, hi, self.rounding_mode) - zeropt

    def compute_fixed(self, inputs, q):
        return [self.fixed_levels(inputs) * np.asarray(inputs[1], np.float64)]  # exact in float64


@register
@dataclass(frozen=True)
class IntQuant(Quant):
    """The newer QONNX name of Quant."""


@register
@dataclass(frozen=True)
class QuantToInteger(Quant):
    """The integer levels of a QONNX Quant, q - zeropt, so that Quant(x) == QuantToInteger(x) * scale.

    Made by `accelgen.quant.imported.prepare_imported` for scales that are not powers of two, whose product with the
    levels no fixed-point type holds: the scale moves into the weights of the layers that consume the levels. The
    levels themselves are exact integers (`fixed<b, b>`), decided by exact comparisons against multiples of the
    scale."""

    domain = ACCELGEN_DOMAIN

    def compute(self, inputs):
        return [self.levels(inputs)[0].astype(inputs[0].dtype)]

    def fixed_type(self, scale, zeropt, bitwidth) -> tuple[FixedType, bool]:
        lo, hi = self.level_range(zeropt, self.bits(bitwidth))
        return grid_type(lo, hi, 0, AP_ROUNDING.get(self.rounding_mode.upper(), Rounding.TRN), Overflow.SAT), False

    def fixed_precision(self, node, ctx):
        p = _plans()
        scale, zeropt, bitwidth = p.parameters(node, {1: "scale", 2: "zero point", 3: "bitwidth"})
        p.check_scale(node, scale)
        p.check_integer(node, zeropt)
        return p.quantizer_plan(node, ctx, self.fixed_type(scale, zeropt, bitwidth)[0], False, [1, 2, 3])

    def compute_fixed(self, inputs, q):
        return [self.fixed_levels(inputs)]


@register
@dataclass(frozen=True)
class BipolarQuant(_QonnxOp):
    """y = (x >= 0 ? 1 : -1) * scale. In fixed point with scale 2**e: the type fixed<2, 2 + e> (+-1 need two bits:
    fixed<2, 2> holds -2..1), and no ap_fixed cast takes a sign, so `cast=False`."""

    def infer(self, inputs):
        return [self.check(inputs, 1, 2)]

    def compute(self, inputs):
        x, scale = inputs
        return [(np.where(x >= 0, 1, -1).astype(x.dtype) * scale.astype(x.dtype)).astype(x.dtype)]

    def fixed_precision(self, node, ctx):
        p = _plans()
        (scale,) = p.parameters(node, {1: "scale"})
        p.check_scale(node, scale)
        e = pow2_exponents(scale)
        return p.quantizer_plan(node, ctx, None if e is None else grid_type(-1, 1, e), False, [1])

    def compute_fixed(self, inputs, q):
        x, scale = inputs
        return [np.where(x >= 0, 1.0, -1.0) * scale]


@register
@dataclass(frozen=True)
class Trunc(_QonnxOp):
    """QONNX Trunc: drop low bits of an already quantized tensor.

    Version 1 (5 inputs: x, scale, zeropt, in_bitwidth, out_bitwidth) divides by 2^(in_bits - out_bits) and
    rounds; version 2 (6 inputs: ..., in_bitwidth, out_scale, out_bitwidth) divides by the power-of-two ratio of
    the scales, clamps to the signed/narrow output range, rounds and rescales with out_scale.

    Fixed point needs power-of-two scales (then every step is exact in float64, so `compute` on exact values is the
    fixed-point meaning) and, for version 2, a zero zero point. The output type holds every result: version 1's
    follows from the input type's range, version 2's from out_bitwidth.
    """

    rounding_mode: str = "FLOOR"
    signed: int = 1  # version 2 only
    narrow: int = 0  # version 2 only

    def __post_init__(self):
        _rounding(self.rounding_mode, self.op_type)

    def infer(self, inputs):
        x = self.check(inputs, 2, 5, 6)
        if len(inputs) == 6:
            self.check([x, inputs[4]], 1, 2)
        return [x]

    def compute(self, inputs):
        x = inputs[0]
        dtype = x.dtype
        scale, zeropt = inputs[1].astype(dtype), inputs[2].astype(dtype)
        rnd = _rounding(self.rounding_mode, self.op_type)
        y = np.round(x / scale + zeropt)
        if len(inputs) == 5:
            in_bits, out_bits = (np.asarray(b, dtype=np.float64) for b in inputs[3:5])
            y = rnd(y / (2.0 ** (in_bits - out_bits)))
            return [((y - zeropt) * scale).astype(dtype)]
        out_scale, out_bits = inputs[4].astype(dtype), inputs[5]
        trunc_scale = 2.0 ** np.round(np.log2(out_scale / scale))
        lo, hi = int_range(out_bits, self.signed, self.narrow)
        y = rnd(np.clip(y / trunc_scale, lo, hi))
        return [((y - zeropt / trunc_scale) * out_scale).astype(dtype)]

    def fixed_precision(self, node, ctx):
        p = _plans()
        slots = {i: name for i, name in enumerate(["x", "scale", "zero point", "in_bitwidth"]) if i}
        slots.update({4: "out_bitwidth"} if len(node.inputs) == 5 else {4: "out_scale", 5: "out_bitwidth"})
        params = p.parameters(node, slots)
        scale, zeropt = params[0], params[1]
        p.check_scale(node, scale, need_pow2=True)
        p.check_integer(node, zeropt)
        if len(node.inputs) == 5:
            x = node.inputs[0].dtype
            if not isinstance(x, FixedType):
                raise QuantizationError(f"{node.name} (Trunc): input must be fixed point, got {x}")
            ends = self.compute([np.array([x.min, x.max]), *params])[0]  # monotone: the ends map to the ends
            e = pow2_exponents(scale)
            t = grid_type(np.ldexp(ends.min(), -e), np.ldexp(ends.max(), -e), e)
            return p.quantizer_plan(node, ctx, t, False, range(1, 5))
        out_scale, out_bits = params[3], params[4]
        p.check_scale(node, out_scale, need_pow2=True)
        if np.any(zeropt):
            raise QuantizationError(f"{node.name} (Trunc): version 2 with a nonzero zero point has no fixed-point "
                                    "kernel")
        lo, hi = int_range(out_bits, self.signed, self.narrow)
        return p.quantizer_plan(node, ctx, grid_type(lo, hi, pow2_exponents(out_scale)), False, range(1, 6))

    def compute_fixed(self, inputs, q):
        return self.compute([np.asarray(a, np.float64) for a in inputs])  # power-of-two scales: exact in float64
