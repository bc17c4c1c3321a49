"""Quantized graphs (accelgen.quantize output) on tvm-cpu, in exact integer arithmetic.

A fixed-point value of type fixed<W, I> is held as its raw integer n (value n * 2**-F, F = W - I) in int64, the
representation `accelgen.ir.fixed.quantize_raw` gives. Every op then works on integers: a Dense or convolution
sums raw products exactly (its fractional bits are the sum of the operands'), a bias or addend is shifted left to
the same grid, Relu and max pooling compare integers, and each node's result is brought to its output type by
`_requantize`: an arithmetic right shift with the rounding mode's carry (the remainder against half an lsb), then
the overflow mode (saturate, wrap, ...), exactly as `quantize_raw` decides both. A softmax follows
fixed_math.softmax_fixed step by step (exp2 and normalized reciprocal tables, shifts by run-time powers of two).
So the library's results equal `accelgen.run` on the quantized graph bit for bit, and the tests check that.

The library takes and returns the raw integers; TvmModule.run converts float inputs with `quantize_raw` (as the
interpreter rounds inputs to their types) and returns outputs as float64 values. Ops whose fixed-point meaning is
not reproduced here (table activations, per-channel weight shifts, layer norm, attention...) are refused with
the list of nodes, before anything is built.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, te

from accelgen.errors import UnsupportedOpsError
from accelgen.ir.fixed import MAX_RAW_WIDTH
from accelgen.ir.graph import Graph, Node
from accelgen.ir.types import FixedType, Overflow, Rounding

R = relax.op
RAW = "int64"
SUPPORTED = {"Dense", "FusedConv", "Conv", "MaxPool", "Reshape", "Flatten", "Relu", "Add", "Softmax"}
SUM_HEADROOM_BITS = 62  # raw sums must stay inside int64 (one bit for the sign)


def is_fixed_graph(graph: Graph) -> bool:
    return any(isinstance(v.dtype, FixedType) for v in graph.values())


def _fixed_types(node: Node) -> list:
    return [v.dtype for v in [*node.inputs, *node.outputs] if v is not None]


def _why_not(node: Node) -> str | None:
    """None if we lower `node` exactly, else the label it is refused under."""
    op = node.op
    inner = getattr(op, "op", None)
    if node.op_type in ("Reshape", "Flatten") and node.inputs[0].dtype == node.outputs[0].dtype:
        return None if isinstance(node.outputs[0].dtype, FixedType) else node.op_type  # moves raw values as they are
    if type(op).__name__ != "Quantized" or node.op_type not in SUPPORTED:
        return node.op_type
    if any(not isinstance(t, FixedType) or t.width > MAX_RAW_WIDTH for t in _fixed_types(node)):
        return f"{node.op_type} (non fixed-point or over-wide operands)"
    activation = getattr(inner, "activation", None)
    if activation is not None and activation.op_type != "Relu":
        return f"{node.op_type}+{activation.op_type} (table activation)"
    if op.param("column_shifts") is not None:
        return f"{node.op_type} (per-channel weight shifts)"
    conv = getattr(inner, "conv", inner)
    if node.op_type in ("FusedConv", "Conv") and (getattr(conv, "group", 1) != 1 or node.inputs[0].type.rank != 4):
        return f"{node.op_type} (grouped or non-2-D)"
    if node.op_type == "MaxPool" and (node.inputs[0].type.rank != 4 or len(node.outputs) != 1):
        return f"{node.op_type} (non-2-D or with indices)"
    if node.op_type in ("Dense", "FusedConv", "Conv") and _sum_bits(node) > SUM_HEADROOM_BITS:
        return f"{node.op_type} (exact sum wider than int64)"
    if node.op_type == "Softmax" and not _softmax_supported(node):
        return "Softmax (legacy 2-D coercion, not the last axis, or unplanned tables)"
    for t in node.op.out:  # quantize_raw's W == 1 quirk is not reproduced
        if t.overflow is Overflow.SAT_SYM and t.signed and t.width == 1:
            return f"{node.op_type} (1-bit SAT_SYM output)"
    return None


def _sum_bits(node: Node) -> int:
    x, w = node.inputs[0].dtype, node.inputs[1].dtype
    fan_in = int(np.prod(node.inputs[1].shape[1:] if node.op_type != "Dense" else node.inputs[1].shape[:1]))
    bits = x.width + w.width + int(np.ceil(np.log2(max(fan_in, 1)))) + 1
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        b = node.inputs[2].dtype
        shift = max(b.fractional - (x.fractional + w.fractional), 0)
        bits = max(bits + shift, b.width + max(x.fractional + w.fractional - b.fractional, 0)) + 1
    return bits


def check_fixed_lowerable(graph: Graph) -> None:
    refused: dict[str, list[str]] = {}
    for node in graph.nodes:
        reason = _why_not(node)
        if reason is not None:
            refused.setdefault(f"{reason} [fixed point on tvm-cpu]", []).append(node.name)
    if refused:
        raise UnsupportedOpsError(refused)


# -- integer rounding and overflow, as quantize_raw ------------------------------------------------------------------
def _round_shift(n, k: int, mode: Rounding):
    """n / 2**k (k >= 1) rounded to an integer by `mode`, on int64."""
    fl = n >> k
    return _round_floor(n, fl, n - (fl << k), tvm.tirx.const(1 << (k - 1), RAW), mode)


def _round_floor(n, fl, rem, half, mode: Rounding):
    """fl = floor(n / 2**k) with remainder rem (half = 2**(k-1)) brought to `mode`'s integer: plus one where the
    mode rounds up, as quantize_raw decides."""
    zero, one = tvm.tirx.const(0, RAW), tvm.tirx.const(1, RAW)
    above, tie = rem > half, rem == half
    up = {
        Rounding.TRN: None,
        Rounding.TRN_ZERO: te.all(rem != zero, n < zero),
        Rounding.RND: te.any(above, tie),
        Rounding.RND_ZERO: te.any(above, te.all(tie, n < zero)),
        Rounding.RND_INF: te.any(above, te.all(tie, n > zero)),
        Rounding.RND_MIN_INF: above,
        Rounding.RND_CONV: te.any(above, te.all(tie, (fl & one) == one)),
    }[mode]
    return fl if up is None else fl + tvm.tirx.Select(up, one, zero)


def _fit(q, t: FixedType):
    """The overflow mode of `t` on an integer already on t's grid."""
    lo, hi = tvm.tirx.const(t.raw_min, RAW), tvm.tirx.const(t.raw_max, RAW)
    mask = tvm.tirx.const((1 << t.width) - 1, RAW)
    low = q & mask
    wrapped = tvm.tirx.Select(low > hi, low - tvm.tirx.const(1 << t.width, RAW), low) if t.signed else low
    mode = t.overflow
    if mode is Overflow.WRAP:
        return wrapped
    if mode is Overflow.SAT or (mode is Overflow.SAT_SYM and not t.signed):
        return tvm.tirx.Select(q > hi, hi, tvm.tirx.Select(q < lo, lo, wrapped))
    if mode is Overflow.SAT_ZERO:
        return tvm.tirx.Select(te.any(q > hi, q < lo), tvm.tirx.const(0, RAW), wrapped)
    # SAT_SYM, signed: also a value that lands exactly on raw_min becomes -raw_max (the headers' behaviour)
    return tvm.tirx.Select(q > hi, hi, tvm.tirx.Select(te.any(q < lo, wrapped == lo), -hi, wrapped))


def requantize_expr(n, frac: int, t: FixedType):
    """A raw integer with `frac` fractional bits, rounded and fitted to `t`."""
    k = frac - t.fractional
    q = n << -k if k < 0 else (n if k == 0 else _round_shift(n, k, t.rounding))
    return _fit(q, t)


def _shift_round(v, k, mode: Rounding):
    """v * 2**-k rounded by `mode`, for a run-time shift k (an expression, either sign): a left shift when
    k <= 0, `_round_shift`'s rounding when k > 0. Shift amounts are clamped so neither branch is undefined."""
    zero, one = tvm.tirx.const(0, RAW), tvm.tirx.const(1, RAW)
    right = tvm.tirx.max(tvm.tirx.min(k, tvm.tirx.const(62, RAW)), one)
    left = tvm.tirx.max(-k, zero)
    fl = v >> right
    rounded = _round_floor(v, fl, v - (fl << right), one << (right - one), mode)
    return tvm.tirx.Select(k > zero, rounded, v << left)


def requantize_var(v, frac, t: FixedType):
    """Like requantize_expr, with the fractional bits of v known only at run time (an expression)."""
    return _fit(_shift_round(v, frac - tvm.tirx.const(t.fractional, RAW), t.rounding), t)


def _requantize(ctx, x, frac: int, t: FixedType):
    return ctx.bb.emit_te(lambda a: te.compute(a.shape, lambda *i: requantize_expr(a(*i), frac, t), name="requant"),
                          x, primfunc_name_hint="requantize")


def _shift_left(bb, x, bits: int):
    if bits == 0:
        return x
    return bb.emit(R.left_shift(x, relax.const(np.array(bits, RAW), RAW)))


def _raw_const(value) -> relax.Constant:
    from accelgen.ir.fixed import quantize_raw

    raw, _ = quantize_raw(value.dtype, np.asarray(value.data, np.float64))
    return relax.const(np.ascontiguousarray(raw.astype(RAW)), RAW)


# -- ops --------------------------------------------------------------------------------------------------------------
def _linear(node, args, ctx):
    """Dense or convolution: exact raw sum, bias on the same grid, Relu, then the output type."""
    x_t, w_t = node.inputs[0].dtype, node.inputs[1].dtype
    frac = x_t.fractional + w_t.fractional
    if node.op_type == "Dense":
        y = R.matmul(args[0], args[1], out_dtype=RAW)
    else:
        inner = node.op.op
        conv = getattr(inner, "conv", inner)
        g = conv.geometry(node.inputs[0].shape[2:], node.inputs[1].shape[2:])
        pads = tuple(g.begin) + tuple(g.end)
        y = R.nn.conv2d(args[0], args[1], strides=g.strides, padding=pads, dilation=g.dilations, out_dtype=RAW)
    y = ctx.bb.emit(y)
    if len(args) > 2 and args[2] is not None:
        b_frac = node.inputs[2].dtype.fractional
        common = max(frac, b_frac)
        bias = _shift_left(ctx.bb, args[2], common - b_frac)
        if node.op_type != "Dense":
            bias = ctx.bb.emit(R.reshape(bias, (1, node.inputs[2].shape[0], 1, 1)))
        y = ctx.bb.emit(R.add(_shift_left(ctx.bb, y, common - frac), bias))
        frac = common
    if getattr(node.op.op, "activation", None) is not None:  # Relu (others are refused)
        y = ctx.bb.emit(R.maximum(y, relax.const(np.array(0, RAW), RAW)))
    return _requantize(ctx, y, frac, node.outputs[0].dtype)


def _max_pool(node, args, ctx):
    op = node.op.op
    g = op.geometry(node.inputs[0].shape)
    pads = tuple(g.begin) + tuple(g.end)
    y = ctx.bb.emit(R.nn.max_pool2d(args[0], pool_size=op.kernel_shape, strides=g.strides, padding=pads,
                                    dilation=g.dilations, ceil_mode=bool(op.ceil_mode)))
    return _requantize(ctx, y, node.inputs[0].dtype.fractional, node.outputs[0].dtype)


def _reshape(node, args, ctx):
    y = ctx.bb.emit(R.reshape(args[0], node.outputs[0].shape))
    return _requantize(ctx, y, node.inputs[0].dtype.fractional, node.outputs[0].dtype)


def _relu(node, args, ctx):
    y = ctx.bb.emit(R.maximum(args[0], relax.const(np.array(0, RAW), RAW)))
    return _requantize(ctx, y, node.inputs[0].dtype.fractional, node.outputs[0].dtype)


def _add(node, args, ctx):
    fa, fb = node.inputs[0].dtype.fractional, node.inputs[1].dtype.fractional
    common = max(fa, fb)
    y = ctx.bb.emit(R.add(_shift_left(ctx.bb, args[0], common - fa), _shift_left(ctx.bb, args[1], common - fb)))
    return _requantize(ctx, y, common, node.outputs[0].dtype)


def _softmax_supported(node: Node) -> bool:
    op, q = node.op.op, node.op
    exp, reciprocal = q.param("exp"), q.param("reciprocal")
    rank = node.inputs[0].type.rank
    return (not op.coerce_2d and op._axis(rank) == rank - 1 and exp is not None and reciprocal is not None
            and exp.scale.out is not None and reciprocal.function == "reciprocal")


def _raw_of(t: FixedType, values) -> np.ndarray:
    from accelgen.ir.fixed import quantize_raw

    return quantize_raw(t, np.asarray(values, np.float64))[0].astype(RAW)


def _softmax(node, args, ctx):
    """fixed_math.softmax_fixed on raw integers, row by row along the last axis: d = x - max(x) fitted to the exp
    input type; t = d * log2(e) rounded to its type; exp(d) = table[bits of frac(t)] * 2**floor(t) rounded to the
    exp result type; s = sum(e) exactly; 1/s = table[bits after s's leading one] * 2**-(leading one's power);
    e * (1/s) exact, then rounded to the output type. The run-time powers of two make the fractional bits of
    the last two roundings run-time values (requantize_var)."""
    q, x_t, out_t = node.op, node.inputs[0].dtype, node.outputs[0].dtype
    exp, recip = q.param("exp"), q.param("reciprocal")
    scale = exp.scale
    c_raw = int(_raw_of(scale.constant.type, scale.constant.array).reshape(-1)[0])
    exp_table = relax.const(_raw_of(exp.out, exp.values), RAW)
    recip_table = relax.const(_raw_of(recip.out, recip.values), RAW)
    ib, rb = exp.index_bits, recip.index_bits
    f_res, f_out_exp, f_recip = exp.result.fractional, exp.out.fractional, recip.out.fractional

    def const(v):
        return tvm.tirx.const(int(v), RAW)

    def compute(x, exp_tab, recip_tab):
        *lead, n = x.shape
        k = te.reduce_axis((0, n), "k")
        row_max = te.compute(lead, lambda *i: te.max(x[(*i, k)], axis=k), name="requant_softmax_max")

        # one stage per rounding: each reads the previous from a buffer (an expression per rounding would nest
        # ~10 copies of its input in the next, and the tree grows exponentially)
        f_d = scale.x_type.fractional
        d = te.compute(x.shape, lambda *i: requantize_expr(x[i] - row_max[i[:-1]], x_t.fractional, scale.x_type),
                       name="requant_softmax_d")
        if scale.pre is not None:
            d = te.compute(x.shape, lambda *i: requantize_expr(d[i], f_d, scale.pre), name="requant_softmax_pre")
            f_d = scale.pre.fractional
        t = te.compute(x.shape, lambda *i: requantize_expr(d[i] * const(c_raw), f_d + scale.constant.type.fractional,
                                                           scale.out), name="requant_softmax_t")
        f_t = scale.out.fractional

        def exp_of(*i):
            whole = t[i] >> f_t if f_t > 0 else t[i] << -f_t
            part = t[i] - (whole << f_t) if f_t > 0 else const(0)
            index = part >> (f_t - ib) if f_t >= ib else part << (ib - f_t)
            power = tvm.tirx.max(tvm.tirx.min(whole, const(exp.max_shift)), const(exp.min_shift))
            return requantize_var(exp_tab[index], const(f_out_exp) - power, exp.result)

        e = te.compute(x.shape, exp_of, name="requant_softmax_exp")
        k2 = te.reduce_axis((0, n), "k2")
        total = te.compute(lead, lambda *i: te.sum(e[(*i, k2)], axis=k2), name="requant_softmax_sum")

        def out_of(*i):
            s = tvm.tirx.max(total[i[:-1]], const(1))  # >= one lsb, as softmax_fixed
            top = const(63) - tvm.tirx.clz(s).astype(RAW)  # position of the leading one
            index = tvm.tirx.Select(top >= const(rb), s >> tvm.tirx.max(top - const(rb), const(0)),
                                    s << tvm.tirx.max(const(rb) - top, const(0))) - const(1 << rb)
            power = top - const(f_res)  # s = m * 2**power, m in [1, 2)
            return requantize_var(e[i] * recip_tab[index], const(f_res + f_recip) + power, out_t)

        return te.compute(x.shape, out_of, name="requant_softmax")

    return ctx.bb.emit_te(compute, args[0], exp_table, recip_table, primfunc_name_hint="softmax_fixed")


LOWERINGS = {"Softmax": _softmax, "Dense": _linear, "FusedConv": _linear, "Conv": _linear, "MaxPool": _max_pool, "Reshape": _reshape,
             "Flatten": _reshape, "Relu": _relu, "Add": _add}


class _Context:
    def __init__(self, bb):
        self.bb = bb


def to_relax_fixed(graph: Graph) -> tvm.IRModule:
    """The quantized graph as a Relax module on raw int64 values: `main` takes each graph input's raw integers and
    returns a tuple of the outputs' raw integers."""
    from accelgen.backends.tvm.lower import _safe

    check_fixed_lowerable(graph)
    params = [relax.Var(_safe(v.name, i), relax.TensorType(shape=v.shape, dtype=RAW)) for i, v in
              enumerate(graph.inputs)]
    env = {id(v): p for v, p in zip(graph.inputs, params)}

    def lookup(value):
        if id(value) not in env:
            env[id(value)] = _raw_const(value)
        return env[id(value)]

    bb = relax.BlockBuilder()
    ctx = _Context(bb)
    with bb.function("main", params):
        with bb.dataflow():
            for node in graph.nodes:
                args = [None if v is None else lookup(v) for v in node.inputs]
                out = LOWERINGS[node.op_type](node, args, ctx)
                env[id(node.outputs[0])] = bb.emit(out, name_hint=_safe(node.outputs[0].name, 0)) \
                    if not isinstance(out, relax.Var) else out
            tuple_out = bb.emit_output(relax.Tuple([lookup(v) for v in graph.outputs]))
        bb.emit_func_output(tuple_out)
    return bb.get()


def fixed_spec(value) -> dict:
    """Manifest fields of a fixed-point input or output: raw int64 plus the type to convert with."""
    t = value.dtype
    return {"dtype": RAW, "fixed": {"width": t.width, "integer": t.integer, "signed": t.signed,
                                    "rounding": t.rounding.value, "overflow": t.overflow.value}}
