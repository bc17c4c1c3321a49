"""Layer contexts of the arithmetic ops the quantizer gives table or exact semantics beyond the elementwise set:
MatMul between activations, Div, Reciprocal, Sqrt, Exp, GatherElements (constant indices) and QONNX Trunc, mixed
into layers.LayerBuilder. Kernel: templates/hls/kernels/ag_math.h.

Each kernel computes what the op's `compute_fixed` computes (accelgen/ir/ops/elementwise.py, linear.py, quant.py):
MatMul is an exact accumulator; Div, Reciprocal and Sqrt read the node's normalised table (fixed_math
NormalizedTable) at the bits after the leading one of the divisor or radicand and shift the entry exactly; Exp is
softmax's 2**(x log2 e) on its own. No kernel divides a fixed-point value: every reciprocal is a table entry or a
constant written here. Trunc is monotone in x with a few output levels, so, as a QONNX Quant, it is a set of
thresholds, found here by running the node itself on every value of x's type.
"""

from __future__ import annotations

import numpy as np

from accelgen.backends.hls.cpp import (
    exact_literals,
    exact_type,
    holds_exactly,
    integer_type,
)
from accelgen.backends.hls.layers_elementwise import (
    ElementwiseKernels,
    common_type,
    index_ctype,
)
from accelgen.backends.hls.layers_quant import MAX_THRESHOLDS
from accelgen.errors import OptionError, QuantizationError
from accelgen.ir.ops.fixed_math import NormalizedTable, Rescale, product_type
from accelgen.ir.types import FixedType

MATH_OPS = ("MatMul", "Div", "Reciprocal", "Sqrt", "Exp", "GatherElements", "Trunc")
MAX_ENUMERATED_BITS = 16  # Trunc's thresholds come from running it on every value of x: 65536 at most


def matmul_shapes(node) -> tuple[int, int, int, np.ndarray, np.ndarray]:
    """(m, k, n, a_batch, b_batch) of numpy.matmul on the node's inputs: a 1-D operand as [1, K] or [K, 1]; output
    batch t (row-major over the broadcast batch dims) multiplies a's batch a_batch[t] by b's b_batch[t]."""
    sa, sb = tuple(node.inputs[0].shape), tuple(node.inputs[1].shape)
    sa = (1, *sa) if len(sa) == 1 else sa
    sb = (*sb, 1) if len(sb) == 1 else sb
    batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    numbers = [np.broadcast_to(np.arange(int(np.prod(s[:-2], dtype=np.int64))).reshape(s[:-2]), batch).reshape(-1)
               for s in (sa, sb)]
    return sa[-2], sa[-1], sb[-1], numbers[0], numbers[1]


def signed_type(t: FixedType) -> FixedType:
    """The narrowest signed type holding every value of t (t itself when signed)."""
    return common_type([t], signed=True)


def normalized_shift_type(entry: FixedType, lo: int, hi: int) -> FixedType:
    """Holds entry * 2**s exactly for every shift s in [lo, hi]."""
    up, down = max(hi, 0), max(-lo, 0)
    return exact_type(entry.width + up + down, entry.integer + up, entry.signed)


def math_description(node) -> str:
    """The kernel's description of a Div, Reciprocal, Sqrt or Exp node (layers and estimate alike)."""
    q, op = node.op, node.op_type
    if op == "Exp":
        return f"exp as 2**(x log2 e), table {1 << q.param('exp').index_bits}"
    if op != "Div":
        return f"{op.lower()}, table {q.param(op.lower()).size}"
    if q.param("reciprocal") is not None:
        return f"div by a constant: x * 1/b ({q.param('reciprocal').constant.type})"
    table = q.param("reciprocal_table")
    if table is None:
        raise OptionError(f"{node.name}: integer Div has no HLS kernel in this version")
    a, b = node.inputs
    if tuple(a.shape) == tuple(b.shape) == tuple(node.outputs[0].shape):
        return f"div, {node.outputs[0].type.numel} elements, reciprocal table {table.size}"
    return f"div broadcasting {list(a.shape)} and {list(b.shape)}, reciprocal table {table.size}"


def trunc_steps(node, x: FixedType, y: FixedType) -> tuple[np.ndarray, np.ndarray]:
    """(the output value of each level, in increasing order of x; the raw values of x's type at which the next
    level starts) of a Trunc node: the node itself (rounding to y included) run on every value of x's type."""
    if x.width > MAX_ENUMERATED_BITS:
        raise OptionError(f"{node.name}: Trunc of a {x.width}-bit input has no HLS kernel in this version (up to "
                          f"{MAX_ENUMERATED_BITS} bits)")
    if any(v is not None and v.data is not None and np.asarray(v.data).size != 1 for v in node.inputs[1:]):
        raise OptionError(f"{node.name}: a Trunc with a scale or zero point per channel has no HLS kernel in this "
                          "version (per-tensor only)")
    raw = np.arange(x.raw_min, x.raw_max + 1, dtype=np.int64)
    out = node.op.compute([np.ldexp(raw.astype(np.float64), -x.fractional),
                           *(np.asarray(v.data) for v in node.inputs[1:])])[0]
    out = np.asarray(out, np.float64).reshape(-1)
    step = np.diff(out)
    if np.any(step < 0):
        raise OptionError(f"{node.name}: Trunc is not monotone in x here; the HLS threshold kernel needs it to be")
    starts = np.flatnonzero(step > 0) + 1
    if starts.size > MAX_THRESHOLDS:
        raise OptionError(f"{node.name}: Trunc with {starts.size + 1} output levels over x's range would need "
                          f"{starts.size} comparators per value; the HLS threshold kernel takes up to "
                          f"{MAX_THRESHOLDS}")
    levels = out[np.concatenate([[0], starts])]
    if starts.size == 0:  # one level whatever x: a step every x takes keeps the kernel's arrays non-empty
        return np.repeat(levels, 2), np.array([x.raw_min], np.float64)
    return levels, raw[starts].astype(np.float64)


class MathKernels:
    """Methods of LayerBuilder. Uses LayerBuilder's _typedef, _x, _y, _const, fixed_type and
    ElementwiseKernels' _operand and _gather_map."""

    # -- MatMul between activations ------------------------------------------------------------------------------
    def _matmul(self, layer, node, q, op, choice) -> None:
        a, b = (self.fixed_type(v) for v in node.inputs)
        self.fixed_type(node.outputs[0])  # fixed point, or a clear error
        accum = q.param("accum")
        if q.param("column_shifts") is not None:
            raise OptionError(f"{node.name}: per-channel weight scales have no HLS kernel in this version; quantize "
                              "without per_channel")
        if not isinstance(accum, FixedType) or not holds_exactly(accum, product_type(a, b)):
            raise QuantizationError(f"{node.name}: accumulator {accum} cannot hold a*b ({product_type(a, b)}) "
                                    "exactly")
        m, k, n, a_batch, b_batch = matmul_shapes(node)
        index = index_ctype(max(a_batch.max(), b_batch.max()) + 1)
        layer.config += [("unsigned", "batches", a_batch.size), ("unsigned", "m", m), ("unsigned", "k", k),
                         ("unsigned", "n", n), ("unsigned", "a_size", node.inputs[0].type.numel),
                         ("unsigned", "b_size", node.inputs[1].type.numel),
                         ("type", "accum_t", self._typedef(layer, "accum", accum))]
        c = layer.cname
        self._const(layer, f"{c}_a_batch", index, [str(int(i)) for i in a_batch])
        self._const(layer, f"{c}_b_batch", index, [str(int(i)) for i in b_batch])
        layer.call = (f"ag::matmul<{layer.config_name}>({self._operand(layer, node, 0)}, "
                      f"{self._operand(layer, node, 1)}, {self._y(node)}, {c}_a_batch, {c}_b_batch);")
        layer.multipliers = n * k  # one output row per cycle
        layer.kernel = (f"matmul of activations, {a_batch.size} x [{m}, {k}] x [{k}, {n}], pipelined over rows, "
                        f"{layer.multipliers} multipliers")

    # -- Div, Reciprocal -----------------------------------------------------------------------------------------
    def _reciprocal_config(self, layer, node, num: FixedType, den: FixedType, table: NormalizedTable) -> None:
        """The CONFIG of ag::divide_one: num / den as num * (the normalised reciprocal of |den|), sign restored;
        and the scalars pos_inf, neg_inf: what the output rounding makes of +-inf (x / 0)."""
        if not isinstance(table, NormalizedTable) or table.function != "reciprocal":
            raise QuantizationError(f"{node.name}: {node.op_type} has no normalised reciprocal table in its params")
        y = self.fixed_type(node.outputs[0])
        num_t, den_t = signed_type(num), signed_type(den)
        mag = exact_type(den_t.width, den_t.integer, False)  # |den|, up to 2**(I - 1): one integer bit more
        prod = product_type(num_t, table.out)
        prod = exact_type(prod.width + 1, prod.integer + 1, True)  # room for the negation
        # 1/|den| = entry * 2**-e, e = lead - frac in [-frac, integer - 1]: the product shifts by -e
        wide = normalized_shift_type(prod, -(mag.integer - 1), mag.fractional)
        types = {"num_t": num_t, "den_t": den_t, "mag_t": mag, "recip_entry_t": table.out, "prod_t": prod,
                 "wide_t": wide, "out_t": y}
        for name, t in types.items():
            layer.config.append(("type", name, self._typedef(layer, name[:-2], t)))
        layer.config += [("int", "mag_width", mag.width), ("int", "mag_frac", mag.fractional),
                         ("int", "recip_bits", table.index_bits)]
        inf = y.quantize(np.array([np.inf, -np.inf]))
        if not np.all(np.isfinite(inf)):
            raise QuantizationError(f"{node.name}: output type {y} gives no value for x / 0")
        c = layer.cname
        layer.scalars += [(f"{c}_pos_inf", f"{c}_out_t", exact_literals(inf[:1], y, "+inf")[0]),
                          (f"{c}_neg_inf", f"{c}_out_t", exact_literals(inf[1:], y, "-inf")[0])]
        self._const(layer, f"{c}_recip_table", f"{c}_recip_entry_t",
                    exact_literals(table.values, table.out, f"{node.name} reciprocal table"))

    def _div(self, layer, node, q, op, choice) -> None:
        a, b = node.inputs
        self.fixed_type(node.outputs[0])
        if not isinstance(a.dtype, FixedType) or not isinstance(b.dtype, FixedType):
            raise OptionError(f"{node.name}: integer Div has no HLS kernel in this version")
        math_description(node)  # refuses what has no kernel, as the estimator does
        n = node.outputs[0].type.numel
        c = layer.cname
        scale = q.param("reciprocal")
        if scale is not None:  # by a constant: a * q(1/b)
            self._scale_by(layer, node, scale)
            return
        self._reciprocal_config(layer, node, self.fixed_type(a), self.fixed_type(b), q.param("reciprocal_table"))
        names = [self._operand(layer, node, slot) for slot in (0, 1)]
        tables = f"{c}_recip_table, {c}_pos_inf, {c}_neg_inf"
        if tuple(a.shape) == tuple(b.shape) == tuple(node.outputs[0].shape):
            layer.call = f"ag::divide<{layer.config_name}, {n}>({names[0]}, {names[1]}, {self._y(node)}, {tables});"
        else:
            maps = []
            for slot, v in enumerate((a, b)):
                source = np.broadcast_to(np.arange(v.type.numel, dtype=np.int64).reshape(v.shape),
                                         node.outputs[0].shape).reshape(-1)
                self._const(layer, f"{c}_index{slot}", index_ctype(max(a.type.numel, b.type.numel)),
                            [str(int(i)) for i in source])
                maps.append(f"{c}_index{slot}")
            layer.call = (f"ag::divide_broadcast<{layer.config_name}, {n}, {a.type.numel}, {b.type.numel}>("
                          f"{names[0]}, {names[1]}, {self._y(node)}, {maps[0]}, {maps[1]}, {tables});")
        layer.kernel = math_description(node)
        layer.multipliers = n

    def _scale_by(self, layer, node, scale: Rescale) -> None:
        """Div by a constant: x * q(1/b), x first rounded to pre_t when the product would pass 53 bits."""
        x = node.inputs[0]
        if x.is_constant or scale.out is not None:
            raise QuantizationError(f"{node.name}: Div by a constant with params the HLS kernel does not know")
        n = node.outputs[0].type.numel
        constant = scale.constant
        full = np.broadcast_to(constant.array, node.outputs[0].shape).reshape(-1)
        layer.config += [("type", "pre_t", self._typedef(layer, "pre", scale.pre or scale.x_type)),
                         ("type", "scale_t", self._typedef(layer, "scale", constant.type))]
        c = layer.cname
        self._const(layer, f"{c}_scale", f"{c}_scale_t", exact_literals(full, constant.type, f"{node.name} 1/b"))
        source = np.broadcast_to(np.arange(x.type.numel, dtype=np.int64).reshape(x.shape),
                                 node.outputs[0].shape).reshape(-1)
        self._const(layer, f"{c}_index0", index_ctype(x.type.numel), [str(int(i)) for i in source])
        layer.call = (f"ag::scale_by<{layer.config_name}, {n}, {x.type.numel}>({self._x(node)}, {self._y(node)}, "
                      f"{c}_index0, {c}_scale);")
        layer.kernel = math_description(node)
        layer.multipliers = n

    def _reciprocal(self, layer, node, q, op, choice) -> None:
        x = self.fixed_type(node.inputs[0])
        self._reciprocal_config(layer, node, exact_type(1, 1, False), x, q.param("reciprocal"))
        n = node.outputs[0].type.numel
        c = layer.cname
        layer.call = (f"ag::reciprocal<{layer.config_name}, {n}>({self._x(node)}, {self._y(node)}, {c}_recip_table, "
                      f"{c}_pos_inf, {c}_neg_inf);")
        layer.kernel = math_description(node)

    # -- Sqrt ----------------------------------------------------------------------------------------------------
    def _sqrt(self, layer, node, q, op, choice) -> None:
        x = self.fixed_type(node.inputs[0])
        self.fixed_type(node.outputs[0])
        table = q.param("sqrt")
        if not isinstance(table, NormalizedTable) or table.function != "sqrt":
            raise QuantizationError(f"{node.name}: Sqrt has no normalised sqrt table in its params")
        sx = signed_type(x)
        mag = exact_type(sx.width - 1, sx.integer - 1, False)  # the positive values of sx
        # x = m * 2**e, e = lead - frac in [-frac, integer - 1]: sqrt shifts the entry by floor(e / 2)
        lo, hi = -((mag.fractional + 1) // 2), (mag.integer - 1) // 2
        types = {"sx_t": sx, "mag_t": mag, "sqrt_entry_t": table.out,
                 "wide_t": normalized_shift_type(table.out, lo, hi)}
        for name, t in types.items():
            layer.config.append(("type", name, self._typedef(layer, name[:-2], t)))
        layer.config += [("int", "mag_width", mag.width), ("int", "mag_frac", mag.fractional),
                         ("int", "table_bits", table.index_bits)]
        c = layer.cname
        self._const(layer, f"{c}_sqrt_table", f"{c}_sqrt_entry_t",
                    exact_literals(table.values, table.out, f"{node.name} sqrt table"))
        n = node.outputs[0].type.numel
        layer.call = f"ag::square_root<{layer.config_name}, {n}>({self._x(node)}, {self._y(node)}, {c}_sqrt_table);"
        layer.kernel = math_description(node)

    # -- Exp -----------------------------------------------------------------------------------------------------
    def _exp(self, layer, node, q, op, choice) -> None:
        self.fixed_type(node.inputs[0]), self.fixed_type(node.outputs[0])
        exp = q.param("exp")
        scale = exp.scale
        if scale.out is None or scale.out.fractional < 1 or exp.index_bits < 1 or scale.out.integer + 1 > 31:
            raise QuantizationError(f"{node.name}: exp params the HLS kernel does not know: {exp}")
        t = scale.out
        types = {"pre_t": scale.pre or scale.x_type, "log2e_t": scale.constant.type, "t_t": t,
                 "floor_t": integer_type(t.integer + 1), "exp_entry_t": exp.out,
                 "exp_wide_t": normalized_shift_type(exp.out, min(exp.min_shift, 0), max(exp.max_shift, 0))}
        for name, typ in types.items():
            layer.config.append(("type", name, self._typedef(layer, name[:-2], typ)))
        layer.config += [("int", "t_frac", t.fractional), ("int", "exp_bits", exp.index_bits),
                         ("int", "min_shift", exp.min_shift), ("int", "max_shift", exp.max_shift)]
        c = layer.cname
        self._const(layer, f"{c}_exp_table", f"{c}_exp_entry_t", exact_literals(exp.values, exp.out, "exp table"))
        layer.scalars.append((f"{c}_log2e", f"{c}_log2e_t",
                              exact_literals(scale.constant.array, scale.constant.type, "log2(e)")[0]))
        n = node.outputs[0].type.numel
        layer.call = (f"ag::exponential<{layer.config_name}, {n}>({self._x(node)}, {self._y(node)}, {c}_exp_table, "
                      f"{c}_log2e);")
        layer.kernel = math_description(node)
        layer.multipliers = n  # x * log2(e)

    # -- GatherElements, Trunc -----------------------------------------------------------------------------------
    _gatherelements = ElementwiseKernels._gather_map

    def _trunc(self, layer, node, q, op, choice) -> None:
        x, y = self.fixed_type(node.inputs[0]), self.fixed_type(node.outputs[0])
        for slot, v in enumerate(node.inputs[1:], 1):
            if v is not None and not v.is_constant:
                raise OptionError(f"{node.name}: Trunc with a run-time input {slot} has no HLS kernel")
        levels, steps = trunc_steps(node, x, y)
        self._thresholds(layer, node, x, y, levels, steps)  # QuantKernels': the same threshold kernel
        layer.kernel = f"trunc, {steps.size} thresholds per value"
