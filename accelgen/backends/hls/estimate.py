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
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from accelgen.backends.hls import estimate_model as m
from accelgen.backends.hls import estimate_stream as st
from accelgen.backends.hls import estimate_transformer as tr
from accelgen.backends.hls.estimate_kernels import (
    REDUCING,
    attention_model,
    bit_width,
    describe,
    kernel_cost,
    raw_weights,
)
from accelgen.backends.hls.layers import check_supported
from accelgen.backends.hls.layers_elementwise import reduction_layout
from accelgen.backends.hls.layers_transformer import streams_tokens
from accelgen.backends.hls.options import HlsOptions, parse_options
from accelgen.backends.hls.rows import row_plan
from accelgen.backends.hls.stream import frame_size, plan_stream, port_stream
from accelgen.errors import AccelgenError, OptionError
from accelgen.ir.graph import Graph
from accelgen.ir.types import is_float
from accelgen.report import LayerEstimate, Report

UNIFORM = re.compile(r"u?fixed<\s*\d+\s*,\s*-?\d+\s*>")
SYNTHETIC_SAMPLES = 4
REPORT_FILES = ("estimate.json", "estimate.md", "estimate.html")


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


def _quantized(graph: Graph, precision, calibration, overrides, per_channel: bool = False) -> tuple[Graph, str]:
    """The quantized graph and a line saying where its widths came from."""
    from accelgen.backends.hls.flow import _calibration_data, _is_quantized

    if _is_quantized(graph):
        if precision is not None or per_channel:
            raise OptionError("the graph is already quantized; drop --precision and --per-channel (or pass the float "
                              "graph)")
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
    return accelgen.quantize(optimized, data, precision or "auto", overrides=overrides or None,
                             per_channel=per_channel), source


def estimate(graph: Graph, target: str = "hls", *, part="xcvu13p-flga2577-2-e", clock_ns=5.0, reuse_factor=1,
             strategy=None, io="parallel", precision=None, calibration=None, config=None, per_channel=False,
             **unknown) -> Report:
    """Latency (cycles, worst case) and resources of the HLS design `compile` would generate for `graph`.
    A float graph is quantized first: from `calibration`, or with a uniform `precision` ("fixed<16,6>") alone."""
    if target != "hls":
        raise OptionError(f"the HLS backend estimates target 'hls', not {target!r}")
    if "csim" in unknown:
        raise OptionError("option --csim means nothing for estimate")
    opts = parse_options(part=part, clock_ns=clock_ns, reuse_factor=reuse_factor, strategy=strategy, io=io,
                         config=config, **unknown)
    q, source = _quantized(graph, precision, calibration, opts.precision_overrides, per_channel)
    report = estimate_quantized(q, opts)
    report.config["precision"] = source
    return report


def pipelined_top(q: Graph, opts: HlsOptions) -> bool:
    """Whether the generated top function is one PIPELINE (II=1) rather than a DATAFLOW of the layer kernels.

    Only when every layer uses the latency strategy and no kernel loops (one token, one pixel, one row: MLP-like
    designs): a PIPELINE over a loop would unroll it, one copy of the hardware per iteration (15x the DSPs of a
    15-token transformer). Otherwise each kernel pipelines its own loop inside a DATAFLOW region."""
    layers = [describe(n, opts.choice_for(n)) for n in q.nodes]
    return _pipelined_top(q, opts, layers, m.Timing(opts.clock_ns, opts.part.speed_grade))


def _pipelined_top(q: Graph, opts: HlsOptions, layers, timing) -> bool:
    if opts.io == "stream" or not all(opts.choice_for(n).strategy == "latency" for n in q.nodes):
        return False
    for layer, node in zip(layers, q.nodes):
        _, trips = kernel_cost(layer, node, opts.choice_for(node), timing, unrolled=True)
        if trips > 1 or _self_unrolled_copies(node, layer) > 1:
            return False
    return True


def estimate_quantized(q: Graph, opts: HlsOptions) -> Report:
    """The report for a quantized graph and parsed options (what compile() holds when it writes the project)."""
    _refuse_unsupported(q)
    layers = [describe(n, opts.choice_for(n)) for n in q.nodes]
    timing = m.Timing(opts.clock_ns, opts.part.speed_grade)
    stream = opts.io == "stream"
    pipelined = _pipelined_top(q, opts, layers, timing)
    rows, warnings, costs = [], [], []
    for layer, node in zip(layers, q.nodes):
        cost, _ = kernel_cost(layer, node, opts.choice_for(node), timing, unrolled=pipelined)
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
        latency, ii, each, intervals, extra_rows = _stream_composition(q, opts, costs, each)
    for layer, node, cost, lat, interval in zip(layers, q.nodes, costs, each, intervals):
        rows.append(LayerEstimate(node.name, node.op_type, layer.kernel or node.op_type.lower(), int(lat),
                                  int(interval), int(cost.dsp), int(cost.lut), int(cost.ff), int(cost.bram18),
                                  cost.notes))
    rows = extra_rows + rows
    io_ff = 0 if stream else sum(v.type.numel * bit_width(v) for v in (*q.inputs, *q.outputs))
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


def _stream_composition(q: Graph, opts: HlsOptions, costs: list[m.Cost], kernel_cycles: list[int]):
    """io stream: the stages stream.plan_stream lays out for this graph, scheduled with their FIFO transfers.
    Returns (latency, interval, per-layer latency, per-layer interval, rows for the input fan-out processes);
    each layer's local arrays and output FIFOs are added to its cost."""
    values = {v.name: v for v in q.values()}
    names = {name: f"t{i}" for i, name in enumerate(values)}
    tensor_of = {c: values[name] for name, c in names.items()}
    fake = [SimpleNamespace(cname=f"l{i}", call="", kernel="", line_buffer=None, config_name="",
                            stream_form=_stream_form(node, opts)) for i, node in enumerate(q.nodes)]
    timing_model = m.Timing(opts.clock_ns, opts.part.speed_grade)
    plans = {node.name: plan for node in q.nodes if (plan := row_plan(node, opts.choice_for(node))) is not None}
    plan = plan_stream(q, names, fake, plans)
    frame_bits = {f"{c}_frame_t": bit_width(v) * frame_size(v) for c, v in tensor_of.items() if not v.is_constant}
    fifos = {f.name: (f.depth, frame_bits[f.frame_t]) for f in plan.fifos}
    layer_of = {f"l{i}_stage": i for i in range(len(q.nodes))}
    timings, fanouts = [], []
    for stage in plan.stages:
        i = layer_of.get(stage.name)
        cost = costs[i] if i is not None else m.Cost()
        for a in stage.arrays:
            v = tensor_of[a.cname]
            ff, bram = st.local_array_cost(a.size, bit_width(v), frame_size(v))
            cost.ff, cost.bram18 = cost.ff + ff, cost.bram18 + bram
        for t in stage.writes:
            if t.fifo in fifos:
                lut, ff, bram = st.fifo_cost(*fifos[t.fifo])
                cost.lut, cost.ff, cost.bram18 = cost.lut + lut, cost.ff + ff, cost.bram18 + bram
        timing = st.StageTiming(stage.name, kernel_cycles[i] if i is not None else 0,
                                [st.Transfer(t.fifo, t.size // t.frame) for t in stage.reads],
                                [st.Transfer(t.fifo, t.size // t.frame) for t in stage.writes],
                                stage.rows, stage.pipelined)
        if stage.streaming:  # the attention's own token and query loops move the frames
            a = attention_model(q.nodes[i])
            d_in, d_out = tr.attention_stream_depths(a, timing_model)
            (_, fifo_in), (_, fifo_out) = stage.params
            timing.reads, timing.writes = [st.Transfer(fifo_in, a.seq_kv)], [st.Transfer(fifo_out, a.seq_q)]
            timing.phases = (d_in, d_out)
        timings.append(timing)
        if i is None:
            fanouts.append(LayerEstimate(stage.name, "fan-out", "copies an input stream to each reader", timing.busy,
                                         timing.busy, cost.dsp, cost.lut, cost.ff, cost.bram18))
    ports = {port_stream(names[v.name]): v.type.numel // frame_size(v) for v in q.inputs}
    latency, _ = st.schedule(timings, ports)
    busy = {t.name: t.busy for t in timings}
    each = [busy[f"l{i}_stage"] for i in range(len(q.nodes))]
    return latency, max(busy.values(), default=1), each, each, fanouts


def _stream_form(node, opts: HlsOptions):
    """What layers.py gives an attention that streams its tokens in io stream (only whether it has one matters)."""
    if node.op_type == "MultiHeadAttention" and streams_tokens(node, opts.choice_for(node)):
        return ("multihead_attention_stream", [])
    return None


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
        fan_in = math.ceil(len(raw_weights(node)) / max(c["n_out"], 1))
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
        x_w, w_w = bit_width(node.inputs[0]), bit_width(node.inputs[1])
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
