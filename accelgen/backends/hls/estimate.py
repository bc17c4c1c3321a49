"""`estimate(graph, target="hls", ...)`: the latency/resource report of the HLS project `compile` would write,
from the same layer decisions (accelgen/backends/hls/layers.py) and the kernel models in estimate_model.py and
estimate_transformer.py; the same report is written into every generated project (write_project_report).

Composition follows the generated top function: when every layer uses the latency strategy (io parallel) the top
is one PIPELINE (II=1; every loop below is unrolled, so loop bodies are replicated and combinational paths chain
across layers); otherwise it is a DATAFLOW region of one process per layer (latency = sum, interval = slowest
process), and with io stream those processes are linked by FIFOs (estimate_stream.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from accelgen.backends.hls import estimate_model as m
from accelgen.backends.hls import estimate_stream as st
from accelgen.backends.hls import estimate_transformer as tr
from accelgen.backends.hls.cpp import integer_type
from accelgen.backends.hls.layers import (
    COPIES,
    avgpool_sizes,
    check_supported,
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
from accelgen.backends.hls.options import HlsOptions, parse_options
from accelgen.backends.hls.stream import frame_size, plan_stream, port_stream
from accelgen.errors import AccelgenError, OptionError
from accelgen.ir.graph import Graph
from accelgen.ir.ops.activations import _Tabled
from accelgen.ir.ops.fixed_math import sum_type
from accelgen.ir.types import is_float
from accelgen.report import LayerEstimate, Report

UNIFORM = re.compile(r"u?fixed<\s*\d+\s*,\s*-?\d+\s*>")
SYNTHETIC_SAMPLES = 4
REPORT_FILES = ("estimate.json", "estimate.md", "estimate.html")
WIRES = (*COPIES, *GATHER_OPS, "Concat", "GatherElements")  # kernels that only move data through constant indices
REDUCING = (*REDUCTIONS, "GlobalAveragePool", "GlobalMaxPool")  # reduce_sum / reduce_mean / reduce_extremum
SIGN_OPS = ("LeakyRelu", "PRelu", "Abs")  # a copy of unsigned x


def _width(v) -> int:
    return value_type(v).width


@dataclass
class _Kernel:
    """What the estimate needs of one generated kernel: the sizes layers.py would print and its description.
    Derived here rather than through layers.LayerBuilder, which also formats every weight as a C literal (seconds
    for a large model); the decisions are the same ones (nonzero weights, reuse factor, table sizes)."""

    kernel: str
    config: dict = field(default_factory=dict)
    table: dict | None = None


def _describe(node, choice) -> _Kernel:
    op, q = node.op_type, node.op
    inner = getattr(q, "op", None)
    k = _Kernel(op.lower())
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
                          "(Relu, Clip, Gelu and plain table activations such as Sigmoid and Tanh), so there is no design to "
                          "estimate")
    if table is not None:
        k.table = {"size": table.size}
    return k


def _raw(value) -> np.ndarray:
    """The nonzero entries of a constant as raw integers of its fixed-point type."""
    w = np.asarray(value.data, np.float64).reshape(-1)
    nz = w[w != 0]
    return np.round(nz / value_type(value).lsb).astype(np.int64)


def _raw_weights(node) -> np.ndarray:
    return _raw(node.inputs[1])


def _constant_raw(constant) -> int:
    return round(constant.value / constant.type.lsb)


def _softmax_types(q, x_w: int, n: int) -> tr.SoftmaxTypes:
    exp, recip = q.param("exp"), q.param("reciprocal")
    return tr.SoftmaxTypes(x_w, exp.scale.out.width, exp.scale.constant.type.width, 1 << exp.index_bits,
                           exp.out.width, exp.result.width, sum_type(exp.result, n).width, 1 << recip.index_bits,
                           recip.out.width)


def _attention(node) -> tr.Attention:
    q, op = node.op, node.op.op
    xq, xkv = node.inputs[op.X_Q], node.inputs[op.X_KV]
    seq_q, seq_kv = xq.shape[1], xkv.shape[1]
    p = {name: q.param(name).width for name in ("q_accum", "k_accum", "v_accum", "q", "k", "v", "scores_accum",
                                                 "probs", "pv_accum", "heads", "out_accum")}
    scale = q.param("scores_scale")
    mask_w = q.param("masked").width if node.inputs[op.MASK] is not None else 0

    def proj(slot, tokens, x_w, acc, out):
        w = node.inputs[slot]
        return tr.Projection(tokens, w.shape[0], w.shape[1], _raw(w), x_w, _width(w), acc, out)

    return tr.Attention(
        seq_q, seq_kv, op.num_heads, op.head_dim,
        q=proj(op.W_Q, seq_q, _width(xq), p["q_accum"], p["q"]),
        k=proj(op.W_K, seq_kv, _width(xkv), p["k_accum"], p["k"]),
        v=proj(op.W_V, seq_kv, _width(xkv), p["v_accum"], p["v"]),
        out=proj(op.W_O, seq_q, p["heads"], p["out_accum"], _width(node.outputs[0])),
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
    gamma_raw, gamma_w = (_raw(gamma), _width(gamma)) if gamma is not None else (np.zeros(0, np.int64), 1)
    if gamma is not None and gamma.data.size < n:  # broadcast over the normalised axes
        gamma_raw = np.resize(gamma_raw, int(np.count_nonzero(np.broadcast_to(gamma.data, (n,)))))
    return tr.LayerNorm(rows, n, _width(x), mean.x_type.width, (mean.pre or mean.x_type).width,
                        _constant_raw(mean.constant), mean.constant.type.width, mean.out.width, diff_w,
                        var.x_type.width, (var.pre or var.x_type).width, _constant_raw(var.constant),
                        var.constant.type.width, v_w, rsqrt.size, rsqrt.out.width, norm.width, shift_range,
                        gamma_raw, gamma_w, _width(node.outputs[0]))


def _kernel_cost(layer, node, choice, timing, unrolled: bool) -> tuple[m.Cost, int]:
    """The cost of one generated kernel and the loop trip count a top-level PIPELINE still has to unroll (1 for
    the kernels whose model unrolls itself)."""
    op = node.op_type
    c = layer.config
    if op == "Dense":
        x_w, w_w, acc_w = _width(node.inputs[0]), _width(node.inputs[1]), node.op.param("accum").width
        raw = _raw_weights(node)
        if choice.strategy == "latency":
            cost = m.dense_latency(c["n_in"], c["n_out"], c["tokens"], raw, x_w, w_w, acc_w, timing)
            trips = c["tokens"]
            if not unrolled:
                _read_mux(cost, trips, c["n_in"], x_w)
        else:
            cost, trips = _resource_cost(node.inputs[1].data, c["tokens"], choice.reuse_factor, x_w, w_w, acc_w,
                                         timing), 1
    elif op in ("Conv", "FusedConv"):
        x_w, w_w, acc_w = _width(node.inputs[0]), _width(node.inputs[1]), node.op.param("accum").width
        trips = c["out_h"] * c["out_w"]
        if choice.strategy == "resource" and c["groups"] == 1:  # ag::conv2d_resource: Dense resource per pixel
            cost = _resource_cost(_conv_matrix(node), trips, choice.reuse_factor, x_w, w_w, acc_w, timing)
            cost.delay_ns += m.t_mux(c["in_h"] * c["in_w"])  # each window value reads through a mux
            cost.lut += c["n_in"] * x_w * math.ceil(c["in_h"] * c["in_w"] / 4)
            trips = 1
        else:
            cost = m.conv2d(trips, c["in_h"] * c["in_w"], c["in_c"] * c["k_h"] * c["k_w"], c["out_c"],
                            _raw_weights(node), x_w, w_w, acc_w, timing, groups=c["groups"])
    elif op == "MaxPool":
        trips = c["channels"] * c["out_h"] * c["out_w"]
        cost = m.maxpool(c["channels"], c["out_h"] * c["out_w"], c["k_h"] * c["k_w"], _width(node.inputs[0]),
                         c["in_h"] * c["in_w"], timing)
    elif op == "Softmax":
        trips = c["rows"]
        cost = _softmax_types(node.op, _width(node.inputs[0]), c["n"]).cost(c["rows"], c["n"], timing)
        if not unrolled:
            _read_mux(cost, trips, c["n"], _width(node.inputs[0]))
    elif op == "MultiHeadAttention":
        if choice.strategy == "resource":
            cost, trips = tr.attention_resource(_attention(node), choice.reuse_factor, timing), 1
        else:
            cost, trips = tr.attention(_attention(node), unrolled, timing), 1
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
        cost, trips = m.elementwise(node.outputs[0].type.numel, _width(node.outputs[0]), "relu"), 1
    elif op in ("Sigmoid", "Tanh"):
        table = node.op.param("table")
        cost = m.table_activation(table.size, table.out.width, _width(node.inputs[0]),
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
        cost = m.avgpool(c["channels"], c["out_h"] * c["out_w"], c["k_h"] * c["k_w"], _width(node.inputs[0]),
                         c["in_h"] * c["in_w"], mean.x_type.width, scaling, c["n_scales"], timing)
    elif layer.kernel.endswith("a copy"):  # LeakyRelu, PRelu, Abs of unsigned x: wiring
        cost, trips = m.Cost(), 1
    elif op in ("Clip", "Abs", "Neg", "Max", "Min", "Sum", "Where", *COMPARISONS):
        cost, trips = _compare_select(node), 1
    elif op in ("LeakyRelu", "PRelu", "HardSigmoid", "HardSwish"):
        cost, trips = _scaled_select(node), 1
    elif op in QUANTIZER_OPS:
        if "n_thresholds" in c:
            cost = m.thresholds(c["n"], c["n_thresholds"], _width(node.inputs[0]), _width(node.outputs[0]))
        else:  # the output type's cast: rounding and saturation logic
            cost = m.elementwise(node.outputs[0].type.numel, _width(node.outputs[0]), "add")
        trips = 1
    elif op in WIRES:  # layout copies and constant-index data movement: wiring
        cost, trips = m.Cost(), 1
    elif op == "MatMul":  # ag::matmul: a row per iteration, the row loop as Dense's token loop
        a_w, b_w = _width(node.inputs[0]), _width(node.inputs[1])
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
    return m.binary(out.type.numel, _width(a), _width(b), _width(out), kind, constant)


def _compare_select(node) -> m.Cost:
    """Clip, Abs, Neg, Max, Min, the comparisons, Where and Sum, at the width of the type the kernel computes in
    (Max, Min, Sum of k inputs: k - 1 steps per element, chained)."""
    n = node.outputs[0].type.numel
    kind = node.op_type.lower()
    types = [value_type(v) for v in node.inputs if v is not None]
    if node.op_type == "Clip":
        return m.compare_select(n, clip_type(types[0], value_type(node.outputs[0])).width, kind)
    if node.op_type == "Where":
        return m.compare_select(n, _width(node.outputs[0]), "select")
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
        return m.scaled_select(n, x.width, value_type(slope).width, _width(out), raw)
    scale = q.param("sixth" if node.op_type == "HardSwish" else "slope")
    raw = np.full(n, _constant_raw(scale.constant), np.int64)
    pre_w = (scale.pre or scale.x_type).width
    if node.op_type == "LeakyRelu":
        return m.scaled_select(n, pre_w, scale.constant.type.width, _width(out), raw)
    clamp_w = pre_w + scale.constant.type.width + 2
    gate_w = q.param("gate").width if node.op_type == "HardSwish" else 0
    return m.scaled_select(n, pre_w, scale.constant.type.width, _width(out), raw, gate_w=gate_w, clamp_w=clamp_w)


def _batchnorm(node, timing) -> m.Cost:
    x, op = node.inputs[0], node.op.op
    multiplier = node.op.param("multiplier")
    shape = tuple(x.shape)
    inner = 1 if not op.spatial else int(np.prod(shape[2:], dtype=np.int64))
    raw = np.repeat(np.round(multiplier.array.reshape(-1) / multiplier.type.lsb).astype(np.int64), inner)
    sum_w = max(_width(x) + multiplier.type.width, _width(node.outputs[0])) + 1
    return m.scale_shift(shape[0], raw, _width(x), multiplier.type.width, sum_w, timing)


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
    n, out_w = out.type.numel, _width(out)
    if op == "Trunc":
        return m.thresholds(c["n"], c["n_thresholds"], _width(node.inputs[0]), out_w)
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
    num_w = _width(node.inputs[0]) if op == "Div" else 0
    return m.normalized_function(n, mag_w, table.size, table.out.width, num_w, out_w,
                                 mag_w // 2 + 1 if op == "Sqrt" else mag_w, timing)


def _refuse_unsupported(graph: Graph) -> None:
    check_supported(graph)


def _synthetic_calibration(graph: Graph) -> dict[str, np.ndarray]:
    """Seeded unit-normal samples (zeros for integer inputs): with a uniform precision every activation and
    weight width is fixed by the precision itself; the few range-derived internal widths (variance, table index
    types) then follow unit-scale activations."""
    rng = np.random.default_rng(0)
    data = {}
    for v in graph.inputs:
        batch, rest = (v.shape[0], tuple(v.shape[1:])) if v.shape else (1, ())
        shape = (SYNTHETIC_SAMPLES * batch, *rest)
        data[v.name] = (rng.standard_normal(shape).astype(np.float32) if is_float(v.dtype)
                        else np.zeros(shape, np.int64))
    return data


def _quantized(graph: Graph, precision, calibration, overrides) -> tuple[Graph, str]:
    """The quantized graph and a line saying where its widths came from."""
    from accelgen.backends.hls.flow import _calibration_data, _is_quantized

    if _is_quantized(graph):
        if precision is not None:
            raise OptionError("the graph is already quantized; drop --precision (or pass the float graph)")
        return graph, "quantized graph as given"
    import accelgen

    optimized = accelgen.optimize(graph)
    _refuse_unsupported(optimized)
    data = _calibration_data(calibration, graph)
    source = "calibration data"
    if data is None:
        if not (isinstance(precision, str) and UNIFORM.fullmatch(precision.strip())):
            raise OptionError("a float model needs calibration data to choose the fixed-point widths the estimate "
                              "depends on: pass --calibration DATA.npz (calibration={input: samples}), or a uniform "
                              "--precision such as fixed<16,6>")
        data = _synthetic_calibration(optimized)
        source = (f"uniform {precision.strip()}, no calibration data: internal ranges from {SYNTHETIC_SAMPLES} "
                  "unit-normal samples")
    return accelgen.quantize(optimized, data, precision or "auto", overrides=overrides or None), source


def estimate(graph: Graph, target: str = "hls", *, part="xcvu13p-flga2577-2-e", clock_ns=5.0, reuse_factor=1,
             strategy=None, io="parallel", precision=None, calibration=None, config=None,
             **unknown) -> Report:
    """Latency (cycles, worst case) and resources of the HLS design `compile` would generate for `graph`.
    A float graph is quantized first: from `calibration`, or with a uniform `precision` ("fixed<16,6>") alone."""
    if target != "hls":
        raise OptionError(f"the HLS backend estimates target 'hls', not {target!r}")
    if "csim" in unknown:
        raise OptionError("option --csim means nothing for estimate")
    opts = parse_options(part=part, clock_ns=clock_ns, reuse_factor=reuse_factor, strategy=strategy, io=io,
                         config=config, **unknown)
    q, source = _quantized(graph, precision, calibration, opts.precision_overrides)
    report = estimate_quantized(q, opts)
    report.config["precision"] = source
    return report


def pipelined_top(q: Graph, opts: HlsOptions) -> bool:
    """Whether the generated top function is one PIPELINE (II=1) rather than a DATAFLOW of the layer kernels.

    Only when every layer uses the latency strategy and no kernel loops (one token, one pixel, one row: MLP-like
    designs): a PIPELINE over a loop would unroll it, one copy of the hardware per iteration (15x the DSPs of a
    15-token transformer). Otherwise each kernel pipelines its own loop inside a DATAFLOW region."""
    layers = [_describe(n, opts.choice_for(n)) for n in q.nodes]
    return _pipelined_top(q, opts, layers, m.Timing(opts.clock_ns, opts.part.speed_grade))


def _pipelined_top(q: Graph, opts: HlsOptions, layers, timing) -> bool:
    if opts.io == "stream" or not all(opts.choice_for(n).strategy == "latency" for n in q.nodes):
        return False
    for layer, node in zip(layers, q.nodes):
        _, trips = _kernel_cost(layer, node, opts.choice_for(node), timing, unrolled=True)
        if trips > 1 or _self_unrolled_copies(node, layer) > 1:
            return False
    return True


def estimate_quantized(q: Graph, opts: HlsOptions) -> Report:
    """The report for a quantized graph and parsed options (what compile() holds when it writes the project)."""
    _refuse_unsupported(q)
    layers = [_describe(n, opts.choice_for(n)) for n in q.nodes]
    timing = m.Timing(opts.clock_ns, opts.part.speed_grade)
    stream = opts.io == "stream"
    pipelined = _pipelined_top(q, opts, layers, timing)
    rows, warnings, costs = [], [], []
    for layer, node in zip(layers, q.nodes):
        cost, _ = _kernel_cost(layer, node, opts.choice_for(node), timing, unrolled=pipelined)
        costs.append(cost)
        _clock_risk(node, layer, cost, opts, timing, warnings)
    if pipelined:
        latency, ii = m.pipeline_latency(costs, timing), 1
        each = [timing.stages(c.delay_ns) + c.cycles for c in costs]
        intervals = [1] * len(costs)
    else:
        latency, each = m.dataflow_latency(costs, timing)
        latency += 1  # interface register
        intervals = each
        ii = max(each, default=1)
    extra_rows = []
    if stream:
        latency, ii, each, intervals, extra_rows = _stream_composition(q, costs, each)
    for layer, node, cost, lat, interval in zip(layers, q.nodes, costs, each, intervals):
        rows.append(LayerEstimate(node.name, node.op_type, layer.kernel or node.op_type.lower(), int(lat),
                                  int(interval), int(cost.dsp), int(cost.lut), int(cost.ff), int(cost.bram18),
                                  cost.notes))
    rows = extra_rows + rows
    io_ff = 0 if stream else sum(v.type.numel * _width(v) for v in (*q.inputs, *q.outputs))
    totals = {k: sum(getattr(r, k) for r in rows) for k in ("dsp", "lut", "ff", "bram18")}
    totals["ff"] += io_ff
    capacity = {"dsp": opts.part.dsp, "lut": opts.part.lut, "ff": opts.part.ff, "bram18": opts.part.bram18}
    _budget_warnings(rows, totals, capacity, opts.part.name, warnings)
    top = "PIPELINE (II=1)" if pipelined else "DATAFLOW of FIFO-linked processes" if stream else "DATAFLOW"
    config_out = {"strategy": opts.strategy, "reuse factor": opts.reuse_factor, "io": opts.io, "top level": top,
                  "speed grade": opts.part.speed_grade}
    if opts.per_layer:
        config_out["per layer"] = opts.per_layer
    return Report(q.name, "hls", opts.part.name, opts.clock_ns, int(latency), int(ii), totals["dsp"],
                  totals["lut"], totals["ff"], totals["bram18"], rows, capacity, config_out, warnings)


def _stream_composition(q: Graph, costs: list[m.Cost], kernel_cycles: list[int]):
    """io stream: the stages stream.plan_stream lays out for this graph, scheduled with their FIFO transfers.
    Returns (latency, interval, per-layer latency, per-layer interval, rows for the input fan-out processes);
    each layer's local arrays and output FIFOs are added to its cost."""
    values = {v.name: v for v in q.values()}
    names = {name: f"t{i}" for i, name in enumerate(values)}
    tensor_of = {c: values[name] for name, c in names.items()}
    plan = plan_stream(q, names, [SimpleNamespace(cname=f"l{i}", call="", kernel="", line_buffer=None)
                                 for i in range(len(q.nodes))])
    frame_bits = {f"{c}_frame_t": _width(v) * frame_size(v) for c, v in tensor_of.items() if not v.is_constant}
    fifos = {f.name: (f.depth, frame_bits[f.frame_t]) for f in plan.fifos}
    layer_of = {f"l{i}_stage": i for i in range(len(q.nodes))}
    timings, fanouts = [], []
    for stage in plan.stages:
        i = layer_of.get(stage.name)
        cost = costs[i] if i is not None else m.Cost()
        for a in stage.arrays:
            v = tensor_of[a.cname]
            ff, bram = st.local_array_cost(a.size, _width(v), frame_size(v))
            cost.ff, cost.bram18 = cost.ff + ff, cost.bram18 + bram
        for t in stage.writes:
            if t.fifo in fifos:
                lut, ff, bram = st.fifo_cost(*fifos[t.fifo])
                cost.lut, cost.ff, cost.bram18 = cost.lut + lut, cost.ff + ff, cost.bram18 + bram
        timing = st.StageTiming(stage.name, kernel_cycles[i] if i is not None else 0,
                                [st.Transfer(t.fifo, t.size // t.frame) for t in stage.reads],
                                [st.Transfer(t.fifo, t.size // t.frame) for t in stage.writes])
        timings.append(timing)
        if i is None:
            fanouts.append(LayerEstimate(stage.name, "fan-out", "copies an input stream to each reader", timing.busy,
                                         timing.busy, cost.dsp, cost.lut, cost.ff, cost.bram18))
    ports = {port_stream(names[v.name]): v.type.numel // frame_size(v) for v in q.inputs}
    latency, _ = st.schedule(timings, ports)
    busy = {t.name: t.busy for t in timings}
    each = [busy[f"l{i}_stage"] for i in range(len(q.nodes))]
    return latency, max(busy.values(), default=1), each, each, fanouts


def _self_unrolled_copies(node, layer) -> int:
    """Loop iterations the transformer kernels' models unroll themselves under a pipelined top."""
    if node.op_type == "MultiHeadAttention":
        return node.inputs[node.op.op.X_Q].shape[1]
    if node.op_type == "LayerNormalization":
        return layer.config["rows"]
    if node.op_type in REDUCING:
        outer, _, inner = reduction_layout(node, node.op.op)
        return outer * inner
    return 1


def _budget_warnings(rows, totals, capacity, part: str, warnings: list[str]) -> None:
    for k, v in totals.items():
        if capacity[k] and v > capacity[k]:
            warnings.append(f"{k.upper()} over budget: {v} of {capacity[k]} on {part}")
        elif capacity[k] and v > 0.8 * capacity[k]:
            warnings.append(f"{k.upper()} at {v / capacity[k]:.0%} of {part}: routing may fail")
    for r in rows:
        over = [f"{getattr(r, k)} {k.upper()}" for k in capacity if capacity[k] and getattr(r, k) > capacity[k]]
        if over:
            warnings.append(f"layer {r.name} ({r.op}) alone needs {', '.join(over)}, more than {part} has")


def _clock_risk(node, layer, cost, opts, timing, warnings) -> None:
    """Paths HLS cannot cut with registers: a LUT multiply or wide mux longer than one cycle by itself, and
    adder trees so deep that HLS's own timing estimate usually exceeds the target."""
    c = layer.config
    if node.op_type == "Dense" and opts.choice_for(node).strategy == "latency":
        fan_in = math.ceil(len(_raw_weights(node)) / max(c["n_out"], 1))
        _deep_tree(node.name, fan_in + 1, "products per output", opts, warnings)
    if node.op_type == "MultiHeadAttention":  # the resource form sums a projection over cycles; P.V stays a tree
        op = node.op.op
        if opts.choice_for(node).strategy == "latency":
            _deep_tree(node.name, node.inputs[op.X_Q].shape[2] + 1, "products per projected value", opts, warnings)
        _deep_tree(node.name, node.inputs[op.X_KV].shape[1], "probability x value products per output", opts,
                   warnings)
    if node.op_type == "LayerNormalization":
        _deep_tree(node.name, c["n"], "squares per variance", opts, warnings)
    if node.op_type in ("Dense", "Conv", "FusedConv"):
        x_w, w_w = _width(node.inputs[0]), _width(node.inputs[1])
        if not m.dsp_per_product(x_w, w_w) and m.t_lut_mul(x_w, w_w) > timing.budget:
            warnings.append(f"clock risk: {node.name} multiplies {x_w}x{w_w} bits in LUTs, a chain longer than "
                            f"one {opts.clock_ns:g} ns cycle")


def _deep_tree(name: str, inputs: int, what: str, opts, warnings: list[str]) -> None:
    if m.tree_depth(inputs) >= 9:
        warnings.append(f"clock risk: {name} sums {inputs} {what} (adder tree depth {m.tree_depth(inputs)}); "
                        f"HLS may miss {opts.clock_ns:g} ns")


def write_project_report(path, q: Graph, opts: HlsOptions) -> Report | None:
    """estimate.json, estimate.md and estimate.html in a generated project's `report/` folder. A design the
    estimator cannot model still gets its project: the Markdown file then says why there is no estimate."""
    folder = Path(path) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        report = estimate_quantized(q, opts)
    except AccelgenError as e:
        for name in REPORT_FILES:
            (folder / name).unlink(missing_ok=True)
        (folder / "estimate.md").write_text(f"# Estimate: {q.name}\n\nNo estimate for this design: {e}\n")
        return None
    report.config["precision"] = "quantized graph as compiled"
    report.to_json(folder / "estimate.json")
    (folder / "estimate.md").write_text(report.to_markdown())
    report.to_html(folder / "estimate.html")
    return report
