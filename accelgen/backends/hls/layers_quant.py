"""Layer contexts of the QONNX activation quantizers (Quant / IntQuant, QuantToInteger, BipolarQuant), mixed into
layers.LayerBuilder. Kernel: templates/hls/kernels/ag_quant.h.

A quantizer whose output type's own cast is the op (the quantizer's `cast` plan: one power-of-two scale, zero
point 0, an ap_fixed rounding mode) is an assignment. Any other, as FINN does it, is a set of thresholds: the level
of q = x / scale + zeropt, rounded and clipped, only grows with x, so it is the lowest level plus the number of
level boundaries x has reached. Each boundary is decided here exactly (a multiple of the scale, with the rounding
mode saying whether a tie goes up) and moved onto x's own grid, so the kernel compares x with constants of x's type
and reads the output from a table of the levels' values, each rounded as the interpreter rounds it. Bit-exact with
`Quant.fixed_levels` (accelgen/ir/ops/quant.py) for every scale, zero point and rounding mode.
"""

from __future__ import annotations

import numpy as np

from accelgen.backends.hls.cpp import exact_literals
from accelgen.errors import OptionError
from accelgen.ir.ops.quant import BipolarQuant, QuantToInteger, int_range
from accelgen.ir.types import FixedType

QUANTIZER_OPS = ("Quant", "IntQuant", "QuantToInteger", "BipolarQuant")
MAX_THRESHOLDS = 255  # an 8-bit quantizer: 255 comparators per value; wider ones need an arithmetic kernel


def boundaries(op, bits: int) -> tuple[list[int], list[tuple[float, bool]]]:
    """The levels of q = x / scale + zeropt in increasing order, and the boundary between each two as (q, inclusive):
    the level steps up when q exceeds the boundary, or reaches it when inclusive (the rounding mode sends a tie up)."""
    if isinstance(op, BipolarQuant) or op.bipolar(bits):
        return [-1, 1], [(0.0, True)]  # q >= 0 gives +1
    lo, hi = (int(v) for v in int_range(bits, op.signed, op.narrow))
    mode = op.rounding_mode.upper()
    steps = []
    for c in range(lo, hi):
        if mode in ("ROUND", "HALF_EVEN"):
            steps.append((c + 0.5, c % 2 == 1))  # a tie goes to the even neighbour
        elif mode == "HALF_UP":
            steps.append((c + 0.5, c >= 0))  # ties away from zero
        elif mode == "HALF_DOWN":
            steps.append((c + 0.5, c < 0))  # ties toward zero
        elif mode == "FLOOR" or (mode in ("DOWN", "ROUND_TO_ZERO") and c >= 0) or (mode == "UP" and c < 0):
            steps.append((c + 1.0, True))
        elif mode in ("CEIL", "DOWN", "ROUND_TO_ZERO", "UP"):
            steps.append((float(c), False))
        else:
            raise OptionError(f"unknown rounding mode {op.rounding_mode!r}")
    return list(range(lo, hi + 1)), steps


def thresholds(op, bits: int, scale: float, zeropt: float, x) -> tuple[np.ndarray, np.ndarray]:
    """(the levels x's type can reach, the raw values of x's type at which the level steps up): boundary q = p is
    x = (p - zeropt) * scale (exact in float64 for a float32 scale), moved up onto x's grid. Boundaries every x
    reaches and those none reaches are dropped with the levels below or above them."""
    levels, steps = boundaries(op, bits)
    raw = []
    for p, inclusive in steps:
        t = np.ldexp((p - zeropt) * scale, x.fractional)
        raw.append(np.ceil(t) if inclusive else np.floor(t) + 1)  # the least raw x with x >= t, or x > t
    raw = np.asarray(raw, np.float64)
    first = int(np.sum(raw <= x.raw_min))  # boundaries every x reaches
    kept = raw[(raw > x.raw_min) & (raw <= x.raw_max)]
    return np.asarray(levels[first:first + kept.size + 1], np.float64), kept


def quantizer_steps(node, x: FixedType, y: FixedType) -> tuple[np.ndarray, np.ndarray] | None:
    """(the output value of each level, rounded to y; the raw thresholds on the grid of x) of a quantizer node from
    type x to type y, or None when y's own cast is the op. Refuses what the kernel cannot do, by node name."""
    q, op = node.op, node.op.op
    if q.param("cast"):
        return None
    params = [np.asarray(v.data, np.float64) for v in node.inputs[1:]]
    if any(p.size != 1 for p in params[:2]):
        raise OptionError(f"{node.name}: a {node.op_type} with a scale or zero point per channel has no HLS kernel "
                          "in this version (per-tensor only)")
    bipolar = isinstance(op, BipolarQuant)
    scale = float(params[0].reshape(-1)[0])
    zeropt = 0.0 if bipolar else float(params[1].reshape(-1)[0])
    bits = 1 if bipolar else op.bits(params[2])
    if 2 ** bits - 1 > MAX_THRESHOLDS:
        raise OptionError(f"{node.name}: a {bits}-bit {node.op_type} that is not a plain cast (scale {scale:g}, zero "
                          f"point {zeropt:g}) would need {2 ** bits - 1} comparators per value; the HLS threshold "
                          "kernel takes up to 8 bits")
    levels, steps = thresholds(op, bits, scale, zeropt, x)
    if steps.size == 0:  # one level whatever x: a step every x takes keeps the kernel's arrays non-empty
        levels, steps = np.repeat(levels, 2), np.array([x.raw_min])
    levels = levels - zeropt
    return y.quantize(levels if isinstance(op, QuantToInteger) else levels * scale), steps  # as the interpreter


class QuantKernels:
    """Quant, IntQuant, QuantToInteger and BipolarQuant on activations."""

    def _quant(self, layer, node, q, op, choice) -> None:
        x, y = self.fixed_type(node.inputs[0]), self.fixed_type(node.outputs[0])
        n = node.outputs[0].type.numel
        plan = quantizer_steps(node, x, y)
        if plan is None:
            layer.call = f"ag::copy<{n}>({self._x(node)}, {self._y(node)});"
            layer.kernel = f"quantizer as the cast to {y}"
            return
        self._thresholds(layer, node, x, y, *plan)
        layer.kernel = f"quantizer, {plan[1].size} thresholds per value"

    def _thresholds(self, layer, node, x: FixedType, y: FixedType, values: np.ndarray, steps: np.ndarray) -> None:
        """ag::quantize_thresholds from x to y: `steps` the raw values of x at which the level steps up, `values`
        each level's output (one more than the steps), exact in y."""
        t_name = self._typedef(layer, "threshold", x)
        v_name = self._typedef(layer, "level", y)
        layer.config += [("unsigned", "n", node.outputs[0].type.numel), ("unsigned", "n_thresholds", int(steps.size)),
                         ("type", "threshold_t", t_name), ("type", "level_t", v_name)]
        self._const(layer, f"{layer.cname}_thresholds", t_name,
                    exact_literals(np.ldexp(steps, -x.fractional), x, f"{node.name} thresholds"))
        self._const(layer, f"{layer.cname}_levels", v_name, exact_literals(values, y, f"{node.name} levels"))
        layer.call = (f"ag::quantize_thresholds<{layer.config_name}>({self._x(node)}, {self._y(node)}, "
                      f"{layer.cname}_thresholds, {layer.cname}_levels);")

    _intquant = _quant
    _quanttointeger = _quant
    _bipolarquant = _quant
