"""Quantization ops: ONNX QuantizeLinear / DequantizeLinear and the QONNX custom ops Quant (IntQuant),
BipolarQuant and Trunc.

Scales, zero points and bit widths stay tensor inputs: they are constants in every real model, but keeping them as
tensors lets per-channel and blocked parameters flow through unchanged for the passes that map them to fixed point.
QONNX semantics follow the QONNX operator docs and its reference executor (`ROUND` is round-half-to-even).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.base import QONNX_DOMAIN, Op, broadcast_shapes, normalize_axis
from accelgen.ir.ops.registry import register
from accelgen.ir.types import TensorType, from_numpy, is_float

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


def _expand(p: np.ndarray, x_shape: tuple[int, ...], axis: int, block_size: int) -> np.ndarray:
    """A scale / zero point laid out to broadcast against x."""
    if p.size == 1 and p.ndim <= 1 and block_size <= 0:
        return p.reshape(())
    a = normalize_axis(axis, len(x_shape), "")
    if block_size > 0:
        return np.repeat(p, block_size, axis=a)[tuple(slice(0, d) for d in x_shape)]
    return p.reshape([-1 if i == a else 1 for i in range(len(x_shape))])


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
        if zp is not None and zp.shape != scale.shape:
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
        if zp is not None and (zp.dtype != x.dtype or zp.shape != scale.shape):
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

    def compute(self, inputs):
        x, scale, zeropt, bitwidth = inputs
        dtype = x.dtype
        scale, zeropt = scale.astype(dtype), zeropt.astype(dtype)
        bits = float(np.asarray(bitwidth).reshape(-1)[0])
        if bits != int(bits) or bits < 1:
            raise InvalidModelError(f"{self.op_type}: bitwidth must be a positive integer, got {bits}")
        q = x / scale + zeropt
        if bits == 1 and self.signed:
            q = np.where(q >= 0, 1, -1).astype(dtype)  # one signed bit: bipolar, as QONNX executes it
        else:
            lo, hi = int_range(bits, self.signed, self.narrow)
            q = _rounding(self.rounding_mode, self.op_type)(np.clip(q, dtype.type(lo), dtype.type(hi)))
        return [((q - zeropt) * scale).astype(dtype)]


@register
@dataclass(frozen=True)
class IntQuant(Quant):
    """The newer QONNX name of Quant."""


@register
@dataclass(frozen=True)
class BipolarQuant(_QonnxOp):
    """y = (x >= 0 ? 1 : -1) * scale."""

    def infer(self, inputs):
        return [self.check(inputs, 1, 2)]

    def compute(self, inputs):
        x, scale = inputs
        return [(np.where(x >= 0, 1, -1).astype(x.dtype) * scale.astype(x.dtype)).astype(x.dtype)]


@register
@dataclass(frozen=True)
class Trunc(_QonnxOp):
    """QONNX Trunc: drop low bits of an already quantized tensor.

    Version 1 (5 inputs: x, scale, zeropt, in_bitwidth, out_bitwidth) divides by 2^(in_bits - out_bits) and
    rounds; version 2 (6 inputs: ..., in_bitwidth, out_scale, out_bitwidth) divides by the power-of-two ratio of
    the scales, clamps to the signed/narrow output range, rounds and rescales with out_scale.
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

