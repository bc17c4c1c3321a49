"""`estimate(graph, target="hls", ...)`: the latency/resource report of the HLS project `compile` would write,
from the same layer decisions (accelgen/backends/hls/layers.py) and the kernel model in estimate_model.py.

Composition follows the generated top function: when every layer uses the latency strategy the top is one
PIPELINE (II=1; every loop below is unrolled, so loop bodies are replicated and combinational paths chain across
layers); otherwise it is a DATAFLOW region of one process per layer (latency = sum, interval = slowest process).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from accelgen.backends.hls import estimate_model as m
from accelgen.backends.hls.layers import check_supported, value_type
from accelgen.backends.hls.options import parse_options
from accelgen.errors import OptionError
from accelgen.ir.graph import Graph
from accelgen.ir.ops.fixed_math import sum_type
from accelgen.report import LayerEstimate, Report

TRANSFORMER_OPS = ("MultiHeadAttention", "Attention", "LayerNormalization", "Gelu")


def _width(v) -> int:
    return value_type(v).width


def _config(layer) -> dict:
    return layer.config


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
            total, rf = n_in * n_out, choice.reuse_factor
            if total % rf:
                raise OptionError(f"{node.name}: reuse factor {rf} does not divide its {total} multiplications "
                                  f"({n_in}x{n_out}); choose a divisor of {total}")
            k.kernel = f"dense resource, reuse {rf}, {total // rf} multipliers"
        else:
            k.kernel = f"dense latency, {int(np.count_nonzero(node.inputs[1].data))} multipliers (zeros skipped)"
    elif op in ("Conv", "FusedConv"):
        conv = inner.conv if op == "FusedConv" else inner
        x_shape, w_shape = node.inputs[0].shape, node.inputs[1].shape
        if len(x_shape) != 4 or x_shape[0] != 1 or conv.group != 1:
            raise OptionError(f"{node.name}: only 2-D convolutions with batch 1 and group 1 have an HLS kernel")
        g = conv.geometry(x_shape[2:], w_shape[2:])
        k.config = {"in_c": x_shape[1], "in_h": x_shape[2], "in_w": x_shape[3], "out_c": w_shape[0],
                    "out_h": g.out[0], "out_w": g.out[1], "k_h": w_shape[2], "k_w": w_shape[3]}
        k.kernel = f"conv2d parallel over output pixels, {int(np.prod(w_shape))} multipliers per pixel"
    elif op == "MaxPool":
        shape = node.inputs[0].shape
        g = inner.geometry(shape)
        k.config = {"channels": shape[1], "in_h": shape[2], "in_w": shape[3], "out_h": g.out[0],
                    "out_w": g.out[1], "k_h": g.kernel[0], "k_w": g.kernel[1]}
        k.kernel = f"maxpool {g.kernel[0]}x{g.kernel[1]}"
    elif op == "Softmax":
        shape = node.inputs[0].shape
        if inner.axis % len(shape) != len(shape) - 1:
            raise OptionError(f"{node.name}: Softmax along axis {inner.axis} of {shape}; the HLS kernel needs the "
                              "last axis")
        exp = q.param("exp")
        k.config = {"rows": int(np.prod(shape[:-1], dtype=np.int64)), "n": shape[-1],
                    "sum_width": sum_type(exp.result, shape[-1]).width}
        k.kernel = (f"softmax, exp table {1 << exp.index_bits}, reciprocal table "
                    f"{1 << q.param('reciprocal').index_bits}")
    elif op not in ("Add", "Relu"):
        k.kernel = "copy (layout unchanged)"
    table = q.param("activation_table") if op in ("Dense", "Conv", "FusedConv") else None
    if table is not None:
        k.table = {"size": table.size}
    return k


def _raw_weights(node) -> np.ndarray:
    w = np.asarray(node.inputs[1].data, np.float64)
    t = value_type(node.inputs[1])
    nz = w[w != 0]
    return np.round(nz / t.lsb).astype(np.int64)


def _kernel_cost(layer, node, choice, timing) -> tuple[m.Cost, int]:
    """The cost of one generated kernel and its loop trip count (what a top-level PIPELINE unrolls)."""
    op = node.op_type
    c = _config(layer)
    if op == "Dense":
        x_w, w_w, acc_w = _width(node.inputs[0]), _width(node.inputs[1]), node.op.param("accum").width
        raw = _raw_weights(node)
        if choice.strategy == "latency":
            cost = m.dense_latency(c["n_in"], c["n_out"], c["tokens"], raw, x_w, w_w, acc_w, timing)
            trips = c["tokens"]
        else:
            cost = m.dense_reuse(c["n_in"], c["n_out"], c["tokens"], len(raw), choice.reuse_factor, x_w, w_w,
                                 acc_w, timing)
            trips = 1
    elif op in ("Conv", "FusedConv"):
        x_w, w_w, acc_w = _width(node.inputs[0]), _width(node.inputs[1]), node.op.param("accum").width
        trips = c["out_h"] * c["out_w"]
        cost = m.conv2d(trips, c["in_h"] * c["in_w"], c["in_c"] * c["k_h"] * c["k_w"], c["out_c"],
                        _raw_weights(node), x_w, w_w, acc_w, timing)
    elif op == "MaxPool":
        trips = c["channels"] * c["out_h"] * c["out_w"]
        cost = m.maxpool(c["channels"], c["out_h"] * c["out_w"], c["k_h"] * c["k_w"], _width(node.inputs[0]),
                         c["in_h"] * c["in_w"], timing)
    elif op == "Softmax":
        q = node.op
        exp, recip = q.param("exp"), q.param("reciprocal")
        trips = c["rows"]
        cost = m.softmax(c["rows"], c["n"], _width(node.inputs[0]), exp.scale.out.width,
                         exp.scale.constant.type.width, 1 << exp.index_bits, exp.out.width, exp.result.width,
                         c["sum_width"], 1 << recip.index_bits, recip.out.width, timing)
    elif op == "Add":
        cost, trips = m.elementwise(node.outputs[0].type.numel, _width(node.outputs[0]) + 1, "add"), 1
    elif op == "Relu":
        cost, trips = m.elementwise(node.outputs[0].type.numel, _width(node.outputs[0]), "relu"), 1
    else:  # layout copies: wires
        cost, trips = m.Cost(), 1
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


def _refuse_transformer(graph: Graph) -> None:
    transformer = sorted({n.op_type for n in graph.nodes if n.op_type in TRANSFORMER_OPS})
    if transformer:
        raise OptionError(f"no HLS estimate for {', '.join(transformer)}: the HLS backend does not generate "
                          "transformer kernels yet, so there is no design to estimate")


def _refuse_unsupported(graph: Graph) -> None:
    _refuse_transformer(graph)
    check_supported(graph)


def _quantized(graph: Graph, precision, calibration, overrides):
    from accelgen.backends.hls.flow import _calibration_data, _is_quantized

    if _is_quantized(graph):
        if precision is not None:
            raise OptionError("the graph is already quantized; drop --precision (or pass the float graph)")
        return graph
    import accelgen

    optimized = accelgen.optimize(graph)
    _refuse_unsupported(optimized)
    data = _calibration_data(calibration, graph)
    if data is None:
        raise OptionError("a float model needs calibration data to choose the fixed-point widths the estimate "
                          "depends on: pass --calibration DATA.npz (calibration={input: samples})")
    return accelgen.quantize(optimized, data, precision or "auto", overrides=overrides or None)


def estimate(graph: Graph, target: str = "hls", *, part="xcvu13p-flga2577-2-e", clock_ns=5.0, reuse_factor=1,
             strategy="latency", io="parallel", precision=None, calibration=None, config=None,
             **unknown) -> Report:
    """Latency (cycles, worst case) and resources of the HLS design `compile` would generate for `graph`."""
    if target != "hls":
        raise OptionError(f"the HLS backend estimates target 'hls', not {target!r}")
    if "csim" in unknown:
        raise OptionError("option --csim means nothing for estimate")
    opts = parse_options(part=part, clock_ns=clock_ns, reuse_factor=reuse_factor, strategy=strategy, io=io,
                         config=config, **unknown)
    _refuse_transformer(graph)
    q = _quantized(graph, precision, calibration, opts.precision_overrides)
    _refuse_unsupported(q)
    layers = [_describe(n, opts.choice_for(n)) for n in q.nodes]
    timing = m.Timing(opts.clock_ns, opts.part.speed_grade)
    pipelined = all(opts.choice_for(n).strategy == "latency" for n in q.nodes)
    rows, warnings, costs = [], [], []
    for layer, node in zip(layers, q.nodes):
        cost, trips = _kernel_cost(layer, node, opts.choice_for(node), timing)
        if pipelined and trips > 1:  # every loop unrolled: `trips` copies of the body, side by side
            cost.dsp, cost.lut, cost.ff, cost.bram18 = (v * trips for v in (cost.dsp, cost.lut, cost.ff,
                                                                               cost.bram18))
            cost.cycles -= trips - 1  # what is left: registered reads
            cost.notes.append(f"top-level PIPELINE unrolls its {trips} iterations")
            warnings.append(f"{node.name}: the top-level PIPELINE (all layers latency strategy) unrolls its "
                            f"{trips} loop iterations; use strategy resource for a DATAFLOW top that loops")
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
    for layer, node, cost, lat, interval in zip(layers, q.nodes, costs, each, intervals):
        rows.append(LayerEstimate(node.name, node.op_type, layer.kernel or node.op_type.lower(), int(lat),
                                  int(interval), int(cost.dsp), int(cost.lut), int(cost.ff), int(cost.bram18),
                                  cost.notes))
    io_ff = sum(v.type.numel * _width(v) for v in (*q.inputs, *q.outputs))
    totals = {k: sum(getattr(r, k) for r in rows) for k in ("dsp", "lut", "ff", "bram18")}
    totals["ff"] += io_ff
    capacity = {"dsp": opts.part.dsp, "lut": opts.part.lut, "ff": opts.part.ff, "bram18": opts.part.bram18}
    for k, v in totals.items():
        if capacity[k] and v > capacity[k]:
            warnings.append(f"{k.upper()} over budget: {v} of {capacity[k]} on {opts.part.name}")
        elif capacity[k] and v > 0.8 * capacity[k]:
            warnings.append(f"{k.upper()} at {v / capacity[k]:.0%} of {opts.part.name}: routing may fail")
    config_out = {"strategy": opts.strategy, "reuse factor": opts.reuse_factor, "io": opts.io,
                  "top level": "PIPELINE (II=1)" if pipelined else "DATAFLOW", "speed grade": opts.part.speed_grade}
    if opts.per_layer:
        config_out["per layer"] = opts.per_layer
    return Report(q.name, "hls", opts.part.name, opts.clock_ns, int(latency), int(ii), totals["dsp"],
                  totals["lut"], totals["ff"], totals["bram18"], rows, capacity, config_out, warnings)


def _clock_risk(node, layer, cost, opts, timing, warnings) -> None:
    """Paths HLS cannot cut with registers: a LUT multiply or wide mux longer than one cycle by itself, and
    adder trees so deep that HLS's own timing estimate usually exceeds the target."""
    c = _config(layer)
    if node.op_type == "Dense" and opts.choice_for(node).strategy == "latency":
        fan_in = math.ceil(len(_raw_weights(node)) / max(c["n_out"], 1))
        if m.tree_depth(fan_in + 1) >= 9:
            warnings.append(f"clock risk: {node.name} sums {fan_in} products per output (adder tree depth "
                            f"{m.tree_depth(fan_in + 1)}); HLS may miss {opts.clock_ns:g} ns")
    if node.op_type == "Dense" and opts.choice_for(node).strategy == "resource":
        sources = min(opts.choice_for(node).reuse_factor, c["n_out"])
        if sources >= 16:
            warnings.append(f"{node.name}: the resource kernel routes each product to one of {sources} "
                            "accumulators (index k % n_out); that crossbar dominates its LUTs")
    if node.op_type in ("Dense", "Conv", "FusedConv"):
        x_w, w_w = _width(node.inputs[0]), _width(node.inputs[1])
        if not m.dsp_per_product(x_w, w_w) and m.t_lut_mul(x_w, w_w) > timing.budget:
            warnings.append(f"clock risk: {node.name} multiplies {x_w}x{w_w} bits in LUTs, a chain longer than "
                            f"one {opts.clock_ns:g} ns cycle")
