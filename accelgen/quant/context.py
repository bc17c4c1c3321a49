"""What precision inference knows and decides: calibrated ranges, the user's options, and the rules that turn a
range into a fixed-point type.

Types are chosen from evidence, never by habit: integer bits from the largest magnitude seen (times a margin),
fractional bits from the width budget. Accumulators are exact by construction (their width follows from the
operand types and the fan-in), so the only roundings in a quantized graph are the ones at op outputs, and every
one of them is counted when it saturates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from accelgen.errors import QuantizationError
from accelgen.ir.fixed import MAX_FLOAT_WIDTH, quantize
from accelgen.ir.fixed import quantize as quantize_fixed
from accelgen.ir.interpreter import TensorStats
from accelgen.ir.ops.fixed_math import ExpFunction, NormalizedTable, Rescale
from accelgen.ir.ops.quantized import FixedPlan, LookupTable
from accelgen.ir.types import FixedType, Overflow, Rounding, is_float

ACTIVATION_ROUNDING, ACTIVATION_OVERFLOW = Rounding.RND, Overflow.SAT  # cheap in hardware, never wraps silently
WEIGHT_ROUNDING = Rounding.RND_CONV  # weights are rounded once, offline: use the best rounding


@dataclass(frozen=True)
class QuantConfig:
    """The user's precision options. `uniform` fixes every activation and weight type (hls4ml-style); otherwise
    widths apply and integer bits come from calibration. `overrides` maps a node name or an op type to a partial
    config dict ({"width": 12}, {"type": "fixed<18,8>"}, {"weight_bits": 6})."""

    activation_width: int = 16
    weight_width: int = 16
    margin: float = 1.0  # calibrated magnitudes are multiplied by this before choosing integer bits
    table_size: int = 1024
    table_width: int = 18
    uniform: FixedType | None = None
    overrides: Mapping[str, Mapping] = field(default_factory=dict)
    per_channel: bool = False  # per-output-channel power-of-two weight scales (Dense, FusedConv); see per_channel_plan

    def __post_init__(self):
        for name in ("activation_width", "weight_width", "table_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 2 <= value <= 32:
                raise QuantizationError(f"{name} must be an integer in 2..32, got {value!r}")
        if not isinstance(self.table_size, int) or not 2 <= self.table_size <= 65536:
            raise QuantizationError(f"table_size must be an integer in 2..65536, got {self.table_size!r}")
        if not self.margin >= 1.0:
            raise QuantizationError(f"margin must be >= 1 (it widens calibrated ranges), got {self.margin!r}")
        if not isinstance(self.per_channel, (bool, np.bool_)):
            raise QuantizationError(f"per_channel must be True or False, got {self.per_channel!r}")


def integer_bits(magnitude: float, signed: bool) -> int:
    """Bits left of the binary point (sign included) to hold values up to `magnitude` in absolute value."""
    if magnitude <= 0 or not math.isfinite(magnitude):
        return 1 if signed else 0
    bits = math.floor(math.log2(magnitude)) + 1  # 2**(bits-1) <= magnitude < 2**bits
    return bits + (1 if signed else 0)


def fixed_for_range(lo: float, hi: float, width: int, margin: float = 1.0, rounding: Rounding = ACTIVATION_ROUNDING,
                    overflow: Overflow = ACTIVATION_OVERFLOW) -> FixedType:
    """The `width`-bit type with the fewest integer bits that holds [lo, hi] (times margin); unsigned if lo >= 0."""
    signed = lo < 0
    magnitude = max(abs(lo), abs(hi)) * margin
    return FixedType(width, integer_bits(magnitude, signed), signed, rounding, overflow)


def exact_type(values: np.ndarray, max_width: int = MAX_FLOAT_WIDTH) -> FixedType | None:
    """The narrowest type holding every value exactly (weights already on a grid, e.g. from QONNX), or None."""
    v = np.asarray(values, np.float64)
    if v.size == 0 or not np.all(np.isfinite(v)):
        return None
    nonzero = v[v != 0]
    if nonzero.size == 0:
        return FixedType(1, 1)
    for frac in range(-30, max_width):
        scaled = np.ldexp(v, frac)
        if np.all(scaled == np.round(scaled)):
            signed = bool((v < 0).any())
            ints = scaled.astype(np.int64)
            lo, hi = int(ints.min()), int(ints.max())
            # two's complement holds -2**n in n + 1 bits, so the negative side needs (-lo - 1) magnitude bits
            needed = max((-lo - 1).bit_length() if lo < 0 else 0, hi.bit_length()) + (1 if signed else 0)
            width = max(needed, 1)
            if width > max_width:
                return None
            return FixedType(width, width - frac, signed, WEIGHT_ROUNDING, Overflow.SAT)
    return None


@dataclass
class QuantContext:
    config: QuantConfig
    ranges: Mapping[str, TensorStats]

    def range_of(self, name: str) -> tuple[float, float]:
        s = self.ranges.get(name)
        if s is None or s.elements == 0 or not math.isfinite(s.min):
            raise QuantizationError(f"no calibration range for tensor {name!r}")
        return s.min, s.max

    def override(self, node_name: str, op_type: str) -> Mapping:
        o = self.config.overrides
        return {**o.get(op_type, {}), **o.get(node_name, {})}

    def activation_type(self, name: str, node_name: str = "", op_type: str = "") -> FixedType:
        """The type of an activation tensor: the uniform type, an override, or from its calibrated range."""
        o = self.override(node_name, op_type) if node_name or op_type else {}
        if "type" in o:
            return parse_type(o["type"])
        if self.config.uniform is not None and "width" not in o:
            return self.config.uniform
        lo, hi = self.range_of(name)
        return fixed_for_range(lo, hi, int(o.get("width", self.config.activation_width)), self.config.margin)

    def weight_type(self, data: np.ndarray, node_name: str = "", op_type: str = "") -> FixedType:
        o = self.override(node_name, op_type)
        if "weight_type" in o:
            return parse_type(o["weight_type"])
        width = int(o.get("weight_bits", self.config.weight_width))
        if self.config.uniform is not None and "weight_bits" not in o:
            u = self.config.uniform
            return FixedType(u.width, u.integer, u.signed, WEIGHT_ROUNDING, Overflow.SAT)
        exact = exact_type(data)
        if exact is not None and exact.width <= width:  # already on a coarse grid (QONNX weights): keep it exact
            return exact
        lo, hi = (float(np.min(data)), float(np.max(data))) if data.size else (0.0, 0.0)
        t = fixed_for_range(min(lo, 0.0), max(hi, 0.0), width, 1.0, WEIGHT_ROUNDING, Overflow.SAT)
        if quantize(t, data)[1].any():  # rounding up to the next grid point passed the top of the range
            t = FixedType(width, t.integer + 1, t.signed, t.rounding, t.overflow)
        return t


    # -- plans shared by several ops ----------------------------------------------------------------------------
    def table(self, function: str, lo: float, hi: float, out: FixedType | None = None) -> LookupTable:
        out = out or FixedType(self.config.table_width, 1, False, Rounding.RND, Overflow.SAT)
        return LookupTable.covering(function, lo, hi, self.config.table_size, out)

    def output_types(self, node) -> list:
        return [self.activation_type(v.name, node.name, node.op_type) if is_float(v.dtype) else v.dtype
                for v in node.outputs]

    def linear_plan(self, node, fan_in: int, activation=None) -> FixedPlan:
        """Dense, Conv, MatMul: weights and bias from their data, an exact accumulator, the output from its
        calibrated range, and a table for a fused nonlinear activation."""
        x = node.inputs[0].dtype
        w_value, b_value = node.inputs[1], node.inputs[2] if len(node.inputs) > 2 else None
        constants = {}
        w = w_value.dtype
        if w_value.is_constant:
            w = constants[1] = self.weight_type(w_value.data, node.name, node.op_type)
        b = None
        if b_value is not None:  # a weight-width bias; the accumulator has room for its bits, so the add is exact
            b = constants[2] = self.weight_type(b_value.data, node.name, node.op_type)
        params = [("accum", accumulator(x, w, fan_in, b))]
        if activation is not None and not activation.exact_in_fixed:
            lo, hi = self.range_of(f"{node.name}/pre_activation")
            params.append(("activation_table", self.function_table(activation, lo, hi, self.activation_table_out(node))))
        return FixedPlan(self.output_types(node), params, constants)

    def per_channel_for(self, node) -> bool:
        """Whether `node` asked for per-channel weights (the option, or an override {"per_channel": bool})."""
        return bool(self.override(node.name, node.op_type).get("per_channel", self.config.per_channel))

    def per_channel_plan(self, node, fan_in: int, axis: int, activation=None) -> FixedPlan:
        """`linear_plan` with per-output-channel weights, as an HLS design does them exactly: every output channel
        n (index `axis` of the weight) is stored as W'_n = W_n * 2**-k_n in the per-tensor weight type (k_n <= 0,
        so each channel uses the full width), and the product sum of channel n is shifted back by k_n before the
        bias is added. The shifts are exact, so the only change against per-tensor weights is finer weight
        rounding for the channels with small weights.

        Params: "accum" (the exact product sum x * W'), "column_shifts" (k_n), "column_accum" (the exact
        shifted sum plus bias, what the output is rounded from). The node's weight input is replaced by the
        scaled float constant W', which the quantizer then rounds to the weight type (the graph being planned is
        the quantizer's own copy). Falls back to `linear_plan` when the weight is not constant, the option is off
        for this node (override {"per_channel": False}), or no channel can be shifted."""
        plan = self.linear_plan(node, fan_in, activation)
        w_value = node.inputs[1]
        if not self.per_channel_for(node) or not w_value.is_constant or 1 not in plan.constants:
            return plan
        storage, bias = plan.constants[1], plan.constants.get(2)
        accum = accumulator(node.inputs[0].dtype, storage, fan_in)
        room = MAX_FLOAT_WIDTH - _shifted_sum(accum, 0, bias).width  # shifts add fractional bits: stay exact
        shifts = column_shifts(w_value.data, storage, axis, max_shift=max(room, 0))
        if not any(shifts):
            return plan
        scale = np.ldexp(1.0, -np.asarray(shifts)).reshape([-1 if i == axis % w_value.data.ndim else 1
                                                             for i in range(w_value.data.ndim)])
        scaled = (w_value.data * scale).astype(w_value.data.dtype)  # exact: a power-of-two scaling
        node.set_input(1, node.graph.add_constant(f"{w_value.name}_channels", scaled))
        params = [("accum", accum), ("column_shifts", shifts),
                  ("column_accum", _shifted_sum(accum, -min(shifts), bias)),
                  *((k, v) for k, v in plan.params if k != "accum")]
        return FixedPlan(plan.out, params, plan.constants)

    def activation_table_out(self, node) -> FixedType:
        """Table entries carry two more fractional bits than the output they are rounded to."""
        out = self.output_types(node)[0]
        return FixedType(out.width + 2, out.integer, out.signed, Rounding.RND, Overflow.SAT)

    def default_plan(self, node) -> FixedPlan:
        """Ops whose float semantics are exact in fixed point: constants from their data; data movement keeps
        its input's type; anything else takes its output's calibrated range."""
        op = node.op
        if not op.exact_in_fixed:
            raise QuantizationError(f"{node.name} ({node.op_type}) has no fixed-point semantics")
        constants = {i: self.weight_type(v.data, node.name, node.op_type) for i, v in enumerate(node.inputs)
                     if v is not None and v.is_constant and is_float(v.dtype)}
        if op.keeps_type:
            kept = [constants.get(i, v.dtype) for i, v in enumerate(node.inputs)
                    if v is not None and isinstance(constants.get(i, v.dtype), FixedType)]
            out = [union_type(kept) if kept and is_float(v.dtype) else v.dtype for v in node.outputs]
            return FixedPlan(out, [], constants)
        return FixedPlan(self.output_types(node), [], constants)

    # -- fixed-point functions for normalization, attention, activations and pooling --------------------------------
    # (appended section: the plans of LayerNormalization, Softmax, MultiHeadAttention, the table activations,
    # pooling and ReduceMean build their constants and tables through these; see accelgen/ir/ops/fixed_math.py)
    def internal_type(self, node, probe: str) -> FixedType:
        """The type an op rounds an internal tensor to: the calibrated range of its probe "node/probe", at the
        activation width (the node's overrides apply)."""
        return self.activation_type(f"{node.name}/{probe}", node.name, node.op_type)

    def bounded_type(self, node, magnitude: float, signed: bool = True, guard: int = 2) -> FixedType:
        """An internal type for values proven to stay within +-magnitude (it cannot saturate), `guard` bits wider
        than the node's activation width so the lost range costs no precision."""
        o = self.override(node.name, node.op_type)
        width = self.config.uniform.width if self.config.uniform is not None else self.config.activation_width
        width = int(o.get("width", width)) + guard
        return FixedType(width, integer_bits(magnitude, signed), signed, ACTIVATION_ROUNDING, ACTIVATION_OVERFLOW)

    @staticmethod
    def accumulator(x: FixedType, w: FixedType, fan_in: int, bias: FixedType | None = None) -> FixedType:
        return accumulator(x, w, fan_in, bias)

    def rescale(self, x: FixedType, value, out: FixedType | None = None) -> Rescale:
        """x * value for exact x of type `x`: the constant at table_width significant bits (exact for a power of
        two), the product rounded to `out` (None: left exact for the node's output rounding)."""
        return Rescale.plan(x, value, out, self.config.table_width)

    def index_bits(self) -> int:
        """Address bits of a normalised table: table_size entries per octave (rounded down to a power of two)."""
        return max(int(math.log2(self.config.table_size)), 1)

    def table_entry_type(self) -> FixedType:
        """Entries of normalised and exp tables: values in [0, 2), table_width bits."""
        return FixedType(self.config.table_width, 1, False, Rounding.RND, Overflow.SAT)

    def normalized_table(self, function: str) -> NormalizedTable:
        return NormalizedTable(function, self.index_bits(), self.table_entry_type())

    def exp_function(self, x: FixedType, result: FixedType) -> ExpFunction:
        """exp of values of type `x` as 2**(x log2 e): t keeps index_bits + 6 fractional bits (its rounding costs a
        relative 2**-(index_bits + 7)); the result is rounded to `result` by the caller."""
        t = FixedType(x.integer + 1 + self.index_bits() + 6, x.integer + 1, True, Rounding.RND, Overflow.SAT)
        return ExpFunction(self.rescale(x, 1.0 / math.log(2.0), t), self.index_bits(), self.table_entry_type(),
                           result)

    def function_table(self, activation, lo: float, hi: float, out: FixedType) -> LookupTable:
        """The table of a nonlinear activation over the calibrated input range [lo, hi] (times the margin),
        clipped to where the function still differs from its asymptotes by half an output lsb (the op handles
        inputs beyond the table exactly: `activation.lookup_fixed`)."""
        lo, hi = lo * (self.config.margin if lo < 0 else 1.0), hi * (self.config.margin if hi > 0 else 1.0)
        a_lo, a_hi = activation.table_domain(out)
        lo, hi = max(lo, a_lo), min(hi, a_hi)
        if hi <= lo:  # the calibrated range lies on an asymptote: a short table at the nearer edge
            lo, hi = (a_lo, a_lo + 1.0) if hi <= a_lo else (a_hi - 1.0, a_hi)
        return self.table(activation_table_function(activation), lo, hi, out)


def activation_table_function(activation) -> str:
    name = {"Sigmoid": "sigmoid", "Tanh": "tanh"}.get(activation.op_type)
    if activation.op_type == "Gelu":
        name = "gelu_tanh" if activation.approximate == "tanh" else "gelu_erf"
    if name is None:
        raise QuantizationError(f"activation {activation.op_type} has no fixed-point table yet")
    return name


def parse_type(text) -> FixedType:
    """A user-requested type. ap_fixed accepts integer bits beyond the width (a grid coarser than 1), but asked
    for as a precision that is almost always a swapped <I,W>, so it is refused here."""
    if isinstance(text, FixedType):
        t = text
    else:
        try:
            t = FixedType.parse(str(text))
        except ValueError as e:
            raise QuantizationError(str(e)) from None
    if t.integer > t.width:
        raise QuantizationError(f"{t}: integer bits ({t.integer}) exceed the width ({t.width}); the form is "
                                f"fixed<width,integer>")
    if t.width > 32:
        raise QuantizationError(f"{t}: activation and weight types are limited to 32 bits")
    return t


def accumulator(x: FixedType, w: FixedType, fan_in: int, bias: FixedType | None = None) -> FixedType:
    """The exact accumulator of `fan_in` products x*w (plus a bias): nothing can overflow or round in it."""
    frac = max(x.fractional + w.fractional, bias.fractional if bias is not None else 0)
    magnitude_bits = (x.integer - x.signed) + (w.integer - w.signed) + max(math.ceil(math.log2(max(fan_in, 1))), 0)
    if bias is not None:
        magnitude_bits = max(magnitude_bits, bias.integer - bias.signed) + 1
    signed = x.signed or w.signed or (bias is not None and bias.signed)
    integer = magnitude_bits + (1 if signed else 0)
    width = integer + frac
    if width > MAX_FLOAT_WIDTH:
        raise QuantizationError(f"an exact accumulator for {x} x {w} over {fan_in} terms needs {width} bits; "
                                f"use narrower types (at most {MAX_FLOAT_WIDTH} bits can be emulated exactly)")
    return FixedType(width, integer, signed, Rounding.TRN, Overflow.WRAP)


def column_shifts(data: np.ndarray, storage: FixedType, axis: int, max_shift: int = 32) -> tuple[int, ...]:
    """Per-channel exponents k_n <= 0 (channel n along `axis`): the smallest k_n >= -max_shift for which
    W_n * 2**-k_n still rounds into `storage` without overflow, so every channel uses the type's full range."""
    w = np.moveaxis(np.asarray(data, np.float64), axis, 0).reshape(np.shape(data)[axis], -1)
    shifts = []
    for column in w:
        magnitude = float(np.max(np.abs(column))) if column.size else 0.0
        if magnitude == 0.0:
            shifts.append(0)
            continue
        k = min(0, max(integer_bits(magnitude, storage.signed) - storage.integer, -max_shift))
        while k < 0 and quantize_fixed(storage, np.ldexp(column, -k))[1].any():  # rounding up can overflow
            k += 1
        shifts.append(int(k))
    return tuple(shifts)


def _shifted_sum(accum: FixedType, shift: int, bias: FixedType | None) -> FixedType:
    """The exact type of accum * 2**-shift (+ bias): `shift` more fractional bits, one more integer bit for the
    bias add."""
    shifted = FixedType(accum.width + shift, accum.integer, accum.signed, Rounding.TRN, Overflow.WRAP)
    if bias is None:
        return shifted
    signed = shifted.signed or bias.signed
    frac = max(shifted.fractional, bias.fractional)
    integer = max(shifted.integer - shifted.signed, bias.integer - bias.signed) + 1 + signed
    return FixedType(integer + frac, integer, signed, Rounding.TRN, Overflow.WRAP)


def union_type(types: list[FixedType]) -> FixedType:
    """The narrowest type that holds every value of each of `types` exactly (for Concat, Max...)."""
    signed = any(t.signed for t in types)
    frac = max(t.fractional for t in types)
    integer = max(t.integer + (1 if signed and not t.signed else 0) for t in types)
    first = types[0]
    return FixedType(integer + frac, integer, signed, first.rounding, first.overflow)
