"""The estimate of each generated HLS kernel: `describe` derives the sizes and the description layers.py would
print for a node (without formatting any weight), and `kernel_cost` prices that kernel with the models in
estimate_model.py and estimate_transformer.py. estimate.py composes these per-kernel costs into the design's."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from accelgen.backends.hls import estimate_model as m
from accelgen.backends.hls import estimate_transformer as tr
from accelgen.backends.hls.cpp import integer_type
from accelgen.backends.hls.layers import (
    COPIES,
    avgpool_sizes,
    conv_name,
    conv_sizes,
    pool_name,
    pool_sizes,
    resource_lanes,
    sparse_resource,
    value_type,
)
from accelgen.backends.hls.layers_elementwise import (
    COMPARISONS,
    GATHER_OPS,
    REDUCTIONS,
    clip_type,
    reduction_layout,
)
from accelgen.backends.hls.layers_math import (
    math_description,
    matmul_shapes,
    trunc_steps,
)
from accelgen.backends.hls.layers_quant import QUANTIZER_OPS, quantizer_steps
from accelgen.backends.hls.layers_transformer import AttentionShape
from accelgen.errors import OptionError
from accelgen.ir.ops.activations import _Tabled
from accelgen.ir.ops.fixed_math import sum_type

WIRES = (*COPIES, *GATHER_OPS, "Concat", "GatherElements")  # kernels that only move data through constant indices
REDUCING = (*REDUCTIONS, "GlobalAveragePool", "GlobalMaxPool")  # reduce_sum / reduce_mean / reduce_extremum
SIGN_OPS = ("LeakyRelu", "PRelu", "Abs")  # a copy of unsigned x


def bit_width(v) -> int:
    return value_type(v).width


@dataclass
class Kernel:
    """What the estimate needs of one generated kernel: the sizes layers.py would print and its description.
    Derived here rather than through layers.LayerBuilder, which also formats every weight as a C literal (seconds
    for a large model); the decisions are the same ones (nonzero weights, reuse factor, table sizes)."""

    kernel: str
    config: dict = field(default_factory=dict)
    table: dict | None = None


def describe(node, choice) -> Kernel:
    op, q = node.op_type, node.op
    inner = getattr(q, "op", None)
    k = Kernel(op.lower())
    if op == "Dense":
        n_in, n_out = node.inputs[1].shape
        k.config = {"n_in": n_in, "n_out": n_out, "tokens": node.inputs[0].type.numel // n_in}
        if choice.strategy == "resource":
            k.kernel = f"dense {_resource_kernel(node, node.inputs[1].data, choice.reuse_factor)}"
        else:
            k.kernel = f"dense latency, {int(np.count_nonzero(node.inputs[1].data))} multipliers (zeros skipped)"
    elif op in ("Conv", "FusedConv"):
        conv = inner.conv if op == "FusedConv" else inner
        k.config = conv_sizes(node, conv)
        k.config["n_in"] = k.config["group_in_c"] * k.config["k_h"] * k.config["k_w"]
        if choice.strategy == "resource" and conv.group == 1:
            k.kernel = (f"{conv_name(node, conv)} {_resource_kernel(node, _conv_matrix(node), choice.reuse_factor)} "
                        "per output pixel")
        else:
            k.kernel = (f"{conv_name(node, conv)} parallel over output pixels, {int(np.prod(node.inputs[1].shape))} "
                        "multipliers per pixel")
    elif op == "MaxPool":
        k.config = pool_sizes(node, inner)
        k.kernel = pool_name(node, inner)
    elif op == "Softmax":
        shape = node.inputs[0].shape
        if inner.axis % len(shape) != len(shape) - 1:
            raise OptionError(f"{node.name}: Softmax along axis {inner.axis} of {shape}; the HLS kernel needs the "
                              "last axis")
        exp = q.param("exp")
        k.config = {"rows": int(np.prod(shape[:-1], dtype=np.int64)), "n": shape[-1]}
        k.kernel = (f"softmax, exp table {1 << exp.index_bits}, reciprocal table "
                    f"{1 << q.param('reciprocal').index_bits}")
    elif op == "MultiHeadAttention":
        xq, xkv = node.inputs[inner.X_Q], node.inputs[inner.X_KV]
        if xq.shape[0] != 1 or inner.zero_masked_rows:
            raise OptionError(f"{node.name}: only attention with batch 1 that does not zero fully masked rows has "
                              "an HLS kernel")
        masking = (", causal" if inner.causal else "") + (", additive mask" if node.inputs[inner.MASK] is not None
                                                          else "")
        shape = AttentionShape(xq.shape[1], xq.shape[2], xkv.shape[1], xkv.shape[2], inner.num_heads,
                               inner.head_dim, node.inputs[inner.W_O].shape[1])
        form = (f"resource, reuse {choice.reuse_factor}" if choice.strategy == "resource"
                else "pipelined over queries")
        k.kernel = (f"multi-head attention, {inner.num_heads} heads of {inner.head_dim}, {xkv.shape[1]} keys"
                    f"{masking}, {form}, {shape.multipliers(choice)} multipliers")
    elif op == "LayerNormalization":
        shape = node.inputs[0].shape
        axis = inner.axis % len(shape)
        k.config = {"rows": int(np.prod(shape[:axis], dtype=np.int64)), "n": int(np.prod(shape[axis:]))}
        k.kernel = f"layernorm over {k.config['n']}, rsqrt table {q.param('rsqrt').size}"
    elif op == "Gelu":
        k.kernel = f"gelu table {q.param('table').size}"
    elif op == "MatMul":
        mm, kk, nn, a_batch, _ = matmul_shapes(node)
        k.config = {"batches": a_batch.size, "m": mm, "k": kk, "n": nn}
        k.kernel = (f"matmul of activations, {a_batch.size} x [{mm}, {kk}] x [{kk}, {nn}], pipelined over rows, "
                    f"{nn * kk} multipliers")
    elif op in ("Div", "Reciprocal", "Sqrt", "Exp"):
        k.kernel = math_description(node)
    elif op == "Trunc":
        steps = trunc_steps(node, value_type(node.inputs[0]), value_type(node.outputs[0]))[1]
        k.config = {"n": node.outputs[0].type.numel, "n_thresholds": int(steps.size)}
        k.kernel = f"trunc, {steps.size} thresholds per value"
    elif op in QUANTIZER_OPS:
        plan = quantizer_steps(node, value_type(node.inputs[0]), value_type(node.outputs[0]))
        k.config = {} if plan is None else {"n": node.outputs[0].type.numel, "n_thresholds": int(plan[1].size)}
        k.kernel = "quantizer as a cast" if plan is None else f"quantizer, {plan[1].size} thresholds per value"
    elif op in WIRES:
        k.kernel = f"{op.lower()} (data movement: wiring)"
    elif op in REDUCING:
        outer, r, inner = reduction_layout(node, inner)
        k.kernel = f"{op.lower()} of {r} values, {outer * inner} outputs"
    elif op == "AveragePool":
        k.config = avgpool_sizes(node, inner)
        scales = q.param("mean").constant.values
        k.config["n_scales"] = 1 if len(set(scales)) == 1 else len(scales)
        k.kernel = pool_name(node, inner) + (", count includes padding" if inner.count_include_pad else "")
    elif op in SIGN_OPS and not value_type(node.inputs[0]).signed:
        k.kernel = f"{op.lower()} of unsigned x: a copy"
    table = q.param("activation_table") if op in ("Dense", "Conv", "FusedConv") else None
    activation = getattr(inner, "activation", None) if op in ("Dense", "FusedConv") else None
    if activation is not None and activation.op_type not in ("Relu", "Clip") and (table is None or (
            activation.op_type != "Gelu" and type(activation).lookup_fixed is not _Tabled.lookup_fixed)):
        raise OptionError(f"{node.name}: fused activation {activation.op_type} has no HLS kernel in this version "
                          "(Relu, Clip, Gelu and plain table activations such as Sigmoid and Tanh), so there is no "
                          "design to estimate")
    if table is not None:
        k.table = {"size": table.size}
    return k


def _raw(value) -> np.ndarray:
    """The nonzero entries of a constant as raw integers of its fixed-point type."""
    w = np.asarray(value.data, np.float64).reshape(-1)
    nz = w[w != 0]
    return np.round(nz / value_type(value).lsb).astype(np.int64)


def raw_weights(node) -> np.ndarray:
    return _raw(node.inputs[1])


def _constant_raw(constant) -> int:
    return round(constant.value / constant.type.lsb)


def _softmax_types(q, x_w: int, n: int) -> tr.SoftmaxTypes:
    exp, recip = q.param("exp"), q.param("reciprocal")
    return tr.SoftmaxTypes(x_w, exp.scale.out.width, exp.scale.constant.type.width, 1 << exp.index_bits,
                           exp.out.width, exp.result.width, sum_type(exp.result, n).width, 1 << recip.index_bits,
                           recip.out.width)


def attention_model(node) -> tr.Attention:
    q, op = node.op, node.op.op
    xq, xkv = node.inputs[op.X_Q], node.inputs[op.X_KV]
    seq_q, seq_kv = xq.shape[1], xkv.shape[1]
    p = {name: q.param(name).width for name in ("q_accum", "k_accum", "v_accum", "q", "k", "v", "scores_accum",
                                                 "probs", "pv_accum", "heads", "out_accum")}
    scale = q.param("scores_scale")
    mask_w = q.param("masked").width if node.inputs[op.MASK] is not None else 0

    def proj(slot, tokens, x_w, acc, out):
        w = node.inputs[slot]
        return tr.Projection(tokens, w.shape[0], w.shape[1], _raw(w), x_w, bit_width(w), acc, out)

    return tr.Attention(
        seq_q, seq_kv, op.num_heads, op.head_dim,
        q=proj(op.W_Q, seq_q, bit_width(xq), p["q_accum"], p["q"]),
        k=proj(op.W_K, seq_kv, bit_width(xkv), p["k_accum"], p["k"]),
        v=proj(op.W_V, seq_kv, bit_width(xkv), p["v_accum"], p["v"]),
        out=proj(op.W_O, seq_q, p["heads"], p["out_accum"], bit_width(node.outputs[0])),
        q_w=p["q"], k_w=p["k"], v_w=p["v"], scores_acc_w=p["scores_accum"],
        scale_pre_w=(scale.pre or scale.x_type).width, scale_raw=_constant_raw(scale.constant),
        scale_w=scale.constant.type.width, logits_w=scale.out.width,
        softmax=_softmax_types(q, mask_w or scale.out.width, seq_kv), probs_w=p["probs"], pv_acc_w=p["pv_accum"],
        heads_w=p["heads"], mask_w=mask_w, causal=op.causal)


def _layernorm(node, rows: int, n: int) -> tr.LayerNorm:
    q = node.op
    mean, var, rsqrt, norm = q.param("mean"), q.param("var"), q.param("rsqrt"), q.param("norm")
    v_w, v_frac, v_int = var.out.width + 1, var.out.fractional, var.out.integer + 1
    shift_range = math.floor((v_int - 1) / 2) - math.floor(-v_frac / 2) + 1
    x = node.inputs[0]
    diff_w = max(x.dtype.integer, mean.out.integer) + 1 + max(x.dtype.fractional, mean.out.fractional)
    gamma = node.inputs[1] if len(node.inputs) > 1 and node.inputs[1] is not None else None
    gamma_raw, gamma_w = (_raw(gamma), bit_width(gamma)) if gamma is not None else (np.zeros(0, np.int64), 1)
    if gamma is not None and gamma.data.size < n:  # broadcast over the normalised axes
        gamma_raw = np.resize(gamma_raw, int(np.count_nonzero(np.broadcast_to(gamma.data, (n,)))))
    return tr.LayerNorm(rows, n, bit_width(x), mean.x_type.width, (mean.pre or mean.x_type).width,
                        _constant_raw(mean.constant), mean.constant.type.width, mean.out.width, diff_w,
                        var.x_type.width, (var.pre or var.x_type).width, _constant_raw(var.constant),
                        var.constant.type.width, v_w, rsqrt.size, rsqrt.out.width, norm.width, shift_range,
                        gamma_raw, gamma_w, bit_width(node.outputs[0]))


def kernel_cost(layer, node, choice, timing, unrolled: bool) -> tuple[m.Cost, int]:
    """The cost of one generated kernel and the loop trip count a top-level PIPELINE still has to unroll (1 for
    the kernels whose model unrolls itself)."""
    op = node.op_type
    c = layer.config
    if op == "Dense":
        x_w, w_w, acc_w = bit_width(node.inputs[0]), bit_width(node.inputs[1]), node.op.param("accum").width
        raw = raw_weights(node)
        if choice.strategy == "latency":
            cost = m.dense_latency(c["n_in"], c["n_out"], c["tokens"], raw, x_w, w_w, acc_w, timing)
            trips = c["tokens"]
            if not unrolled:
                _read_mux(cost, trips, c["n_in"], x_w)
        else:
            cost, trips = _resource_cost(node.inputs[1].data, c["tokens"], choice.reuse_factor, x_w, w_w, acc_w,
                                         timing), 1
    elif op in ("Conv", "FusedConv"):
        x_w, w_w, acc_w = bit_width(node.inputs[0]), bit_width(node.inputs[1]), node.op.param("accum").width
        trips = c["out_h"] * c["out_w"]
        if choice.strategy == "resource" and c["groups"] == 1:  # ag::conv2d_resource: Dense resource per pixel
            cost = _resource_cost(_conv_matrix(node), trips, choice.reuse_factor, x_w, w_w, acc_w, timing)
            cost.delay_ns += m.t_mux(c["in_h"] * c["in_w"])  # each window value reads through a mux
            cost.lut += c["n_in"] * x_w * math.ceil(c["in_h"] * c["in_w"] / 4)
            trips = 1
        else:
            cost = m.conv2d(trips, c["in_h"] * c["in_w"], c["in_c"] * c["k_h"] * c["k_w"], c["out_c"],
                            raw_weights(node), x_w, w_w, acc_w, timing, groups=c["groups"])
    elif op == "MaxPool":
        trips = c["channels"] * c["out_h"] * c["out_w"]
        cost = m.maxpool(c["channels"], c["out_h"] * c["out_w"], c["k_h"] * c["k_w"], bit_width(node.inputs[0]),
                         c["in_h"] * c["in_w"], timing)
    elif op == "Softmax":
        trips = c["rows"]
        cost = _softmax_types(node.op, bit_width(node.inputs[0]), c["n"]).cost(c["rows"], c["n"], timing)
        if not unrolled:
            _read_mux(cost, trips, c["n"], bit_width(node.inputs[0]))
    elif op == "MultiHeadAttention":
        if choice.strategy == "resource":
            cost, trips = tr.attention_resource(attention_model(node), choice.reuse_factor, timing), 1
        else:
            cost, trips = tr.attention(attention_model(node), unrolled, timing), 1
    elif op == "LayerNormalization":
        cost, trips = tr.layernorm(_layernorm(node, c["rows"], c["n"]), unrolled, timing), 1
    elif op == "Gelu":
        table, x = node.op.param("table"), value_type(node.inputs[0])
        floor_w = integer_type(max(x.integer + table.frac_bits, 1) + 1).width
        cost = tr.gelu(node.outputs[0].type.numel, x.width, floor_w, table.size, table.out.width, timing)
        trips = 1
    elif op in ("Add", "Sub", "Mul"):
        cost, trips = _binary(node), 1
    elif op == "Relu":
        cost, trips = m.elementwise(node.outputs[0].type.numel, bit_width(node.outputs[0]), "relu"), 1
    elif op in ("Sigmoid", "Tanh"):
        table = node.op.param("table")
        cost = m.table_activation(table.size, table.out.width, bit_width(node.inputs[0]),
                                  node.outputs[0].type.numel, timing)
        trips = 1
    elif op == "BatchNormalization":
        cost, trips = _batchnorm(node, timing), 1
    elif op in REDUCING:
        cost, trips = _reduction(node, timing, unrolled), 1
    elif op == "AveragePool":
        trips = c["channels"] * c["out_h"] * c["out_w"]
        mean = node.op.param("mean")
        scaling = ((mean.pre or mean.x_type).width, mean.constant.type.width, _constant_raw(mean.constant))
        cost = m.avgpool(c["channels"], c["out_h"] * c["out_w"], c["k_h"] * c["k_w"], bit_width(node.inputs[0]),
                         c["in_h"] * c["in_w"], mean.x_type.width, scaling, c["n_scales"], timing)
    elif layer.kernel.endswith("a copy"):  # LeakyRelu, PRelu, Abs of unsigned x: wiring
        cost, trips = m.Cost(), 1
    elif op in ("Clip", "Abs", "Neg", "Max", "Min", "Sum", "Where", *COMPARISONS):
        cost, trips = _compare_select(node), 1
    elif op in ("LeakyRelu", "PRelu", "HardSigmoid", "HardSwish"):
        cost, trips = _scaled_select(node), 1
    elif op in QUANTIZER_OPS:
        if "n_thresholds" in c:
            cost = m.thresholds(c["n"], c["n_thresholds"], bit_width(node.inputs[0]), bit_width(node.outputs[0]))
        else:  # the output type's cast: rounding and saturation logic
            cost = m.elementwise(node.outputs[0].type.numel, bit_width(node.outputs[0]), "add")
        trips = 1
    elif op in WIRES:  # layout copies and constant-index data movement: wiring
        cost, trips = m.Cost(), 1
    elif op == "MatMul":  # ag::matmul: a row per iteration, the row loop as Dense's token loop
        a_w, b_w = bit_width(node.inputs[0]), bit_width(node.inputs[1])
        cost = m.matmul(c["batches"], c["m"], c["k"], c["n"], a_w, b_w, node.op.param("accum").width, timing)
        trips = c["batches"] * c["m"]
        if not unrolled:
            _read_mux(cost, trips, c["k"], a_w)
    elif op in ("Div", "Reciprocal", "Sqrt", "Exp", "Trunc"):
        cost, trips = _math_cost(node, c, timing), 1
    else:
        raise OptionError(f"{node.name}: the estimator has no model of the HLS kernel for {op} yet")
    activation = getattr(node.op.op, "activation", None) if op in ("Dense", "FusedConv") else None
    if activation is not None and activation.op_type == "Clip":  # fused ReLU6: a clamp per parallel output
        parallel = c.get("n_out", c.get("out_c", 1)) * c.get("tokens", 1)
        clamp = m.compare_select(parallel, clip_type(node.op.param("accum"), value_type(node.outputs[0])).width,
                                 "clip")
        cost.delay_ns += clamp.delay_ns
        cost.lut += clamp.lut
    if layer.table is not None:  # a fused table activation after the accumulator
        parallel = c.get("n_out", c.get("out_c", 1)) * c.get("tokens", 1)
        t = m.table_activation(layer.table["size"], value_type(node.outputs[0]).width,
                               node.op.param("accum").width, parallel, timing)
        cost.delay_ns += t.delay_ns
        cost.cycles += t.cycles
        cost.lut += t.lut
        cost.bram18 += t.bram18
        cost.notes += t.notes
    return cost, trips


def _conv_matrix(node) -> np.ndarray:
    """A convolution's kernel as the n_in x out_c matrix its resource form multiplies each window by."""
    w = np.asarray(node.inputs[1].data, np.float64)
    return w.reshape(w.shape[0], -1).T


def _resource_kernel(node, weights: np.ndarray, rf: int) -> str:
    """The description of the resource form of an n_in x n_out product matrix (as layers.py writes it)."""
    if sparse_resource(weights, rf):
        return f"resource sparse, reuse {rf}, {max(-(-int(np.count_nonzero(weights)) // rf), 1)} multipliers"
    total = weights.size
    if total % rf:
        raise OptionError(f"{node.name}: reuse factor {rf} does not divide its {total} multiplications "
                          f"({weights.shape[0]}x{weights.shape[1]}); choose a divisor of {total}")
    return f"resource, reuse {rf}, {total // rf} multipliers"


def _resource_cost(weights: np.ndarray, tokens: int, rf: int, x_w: int, w_w: int, acc_w: int, timing) -> m.Cost:
    """The resource Dense kernel (dense or sparse lanes) over `tokens` rows of an n_in x n_out matrix."""
    if sparse_resource(weights, rf):
        lanes = resource_lanes(weights, rf)
        return m.dense_reuse_sparse(weights.shape[1], tokens, lanes.rows, lanes.cols, rf, x_w, w_w, acc_w, timing)
    return m.dense_reuse(weights.shape[0], weights.shape[1], tokens, int(np.count_nonzero(weights)), rf, x_w, w_w,
                         acc_w, timing)


def _read_mux(cost: m.Cost, trips: int, n: int, width: int) -> None:
    """A kernel whose token (row) loop stays a loop reads its `n` inputs through a mux over the `trips` rows."""
    if trips > 1:
        cost.delay_ns += m.t_mux(trips)
        cost.lut += n * width * math.ceil(trips / 4)


def _binary(node) -> m.Cost:
    a, b = node.inputs
    kind = node.op_type.lower()
    out = node.outputs[0]
    constant = None
    if kind == "mul" and (a.is_constant or b.is_constant):
        c, a = (a, b) if a.is_constant else (b, a)
        full = np.broadcast_to(np.asarray(c.data, np.float64), out.shape).reshape(-1)
        constant = np.round(full / value_type(c).lsb).astype(np.int64)
        b = c
    return m.binary(out.type.numel, bit_width(a), bit_width(b), bit_width(out), kind, constant)


def _compare_select(node) -> m.Cost:
    """Clip, Abs, Neg, Max, Min, the comparisons, Where and Sum, at the width of the type the kernel computes in
    (Max, Min, Sum of k inputs: k - 1 steps per element, chained)."""
    n = node.outputs[0].type.numel
    kind = node.op_type.lower()
    types = [value_type(v) for v in node.inputs if v is not None]
    if node.op_type == "Clip":
        return m.compare_select(n, clip_type(types[0], value_type(node.outputs[0])).width, kind)
    if node.op_type == "Where":
        return m.compare_select(n, bit_width(node.outputs[0]), "select")
    signed = any(t.signed for t in types)
    width = max(t.width + (signed and not t.signed) for t in types) + (kind == "neg")
    if node.op_type in COMPARISONS:
        return m.compare_select(n, width, "compare")
    if kind not in ("max", "min", "sum"):
        return m.compare_select(n, width, kind)
    steps = max(len(types) - 1, 1)
    cost = m.binary(n * steps, width, width, width, "add") if kind == "sum" else \
        m.compare_select(n * steps, width, kind)
    cost.delay_ns *= steps
    return cost


def _scaled_select(node) -> m.Cost:
    """LeakyRelu, PRelu, HardSigmoid, HardSwish: a product by a constant per element (PRelu: the slope broadcast
    to x, or a variable slope), then a select or a clamp."""
    q, out = node.op, node.outputs[0]
    n, x = out.type.numel, value_type(node.inputs[0])
    if node.op_type == "PRelu":
        slope = node.inputs[1]
        raw = None
        if slope.is_constant:
            full = np.broadcast_to(np.asarray(slope.data, np.float64), out.shape).reshape(-1)
            raw = np.round(full / value_type(slope).lsb).astype(np.int64)
        return m.scaled_select(n, x.width, value_type(slope).width, bit_width(out), raw)
    scale = q.param("sixth" if node.op_type == "HardSwish" else "slope")
    raw = np.full(n, _constant_raw(scale.constant), np.int64)
    pre_w = (scale.pre or scale.x_type).width
    if node.op_type == "LeakyRelu":
        return m.scaled_select(n, pre_w, scale.constant.type.width, bit_width(out), raw)
    clamp_w = pre_w + scale.constant.type.width + 2
    gate_w = q.param("gate").width if node.op_type == "HardSwish" else 0
    return m.scaled_select(n, pre_w, scale.constant.type.width, bit_width(out), raw, gate_w=gate_w, clamp_w=clamp_w)


def _batchnorm(node, timing) -> m.Cost:
    x, op = node.inputs[0], node.op.op
    multiplier = node.op.param("multiplier")
    shape = tuple(x.shape)
    inner = 1 if not op.spatial else int(np.prod(shape[2:], dtype=np.int64))
    raw = np.repeat(np.round(multiplier.array.reshape(-1) / multiplier.type.lsb).astype(np.int64), inner)
    sum_w = max(bit_width(x) + multiplier.type.width, bit_width(node.outputs[0])) + 1
    return m.scale_shift(shape[0], raw, bit_width(x), multiplier.type.width, sum_w, timing)


def _reduction(node, timing, unrolled: bool) -> m.Cost:
    outer, r, inner = reduction_layout(node, node.op.op)
    x = value_type(node.inputs[0])
    if node.op_type in ("ReduceMax", "ReduceMin", "GlobalMaxPool"):
        return m.reduction(outer, r, inner, x.width, x.width, None, unrolled, timing,
                           extremum="min" if node.op_type == "ReduceMin" else "max")
    if node.op_type in ("ReduceMean", "GlobalAveragePool"):
        mean = node.op.param("mean")
        sum_w = mean.x_type.width
        scaling = ((mean.pre or mean.x_type).width, mean.constant.type.width, _constant_raw(mean.constant))
    else:
        sum_w, scaling = sum_type(x, r).width, None
    return m.reduction(outer, r, inner, x.width, sum_w, scaling, unrolled, timing)


def _math_cost(node, c: dict, timing) -> m.Cost:
    """Div, Reciprocal, Sqrt, Exp (ag_math.h) and Trunc (thresholds), at the widths layers_math.py gives them."""
    q, op, out = node.op, node.op_type, node.outputs[0]
    n, out_w = out.type.numel, bit_width(out)
    if op == "Trunc":
        return m.thresholds(c["n"], c["n_thresholds"], bit_width(node.inputs[0]), out_w)
    if op == "Exp":
        exp = q.param("exp")
        scale = exp.scale
        return m.exponential(n, (scale.pre or scale.x_type).width, scale.constant.type.width,
                             _constant_raw(scale.constant), 1 << exp.index_bits, exp.out.width, out_w,
                             exp.max_shift - exp.min_shift + 1, timing)
    if op == "Div" and q.param("reciprocal") is not None:  # by a constant: a product per element
        scale = q.param("reciprocal")
        raw = np.round(np.broadcast_to(scale.constant.array, out.shape).reshape(-1) / scale.constant.type.lsb)
        return m.binary(n, (scale.pre or scale.x_type).width, scale.constant.type.width, out_w, "mul",
                        raw.astype(np.int64))
    x = value_type(node.inputs[-1])
    mag_w = x.width + (not x.signed)
    table = q.param({"Div": "reciprocal_table", "Reciprocal": "reciprocal", "Sqrt": "sqrt"}[op])
    num_w = bit_width(node.inputs[0]) if op == "Div" else 0
    return m.normalized_function(n, mag_w, table.size, table.out.width, num_w, out_w,
                                 mag_w // 2 + 1 if op == "Sqrt" else mag_w, timing)
