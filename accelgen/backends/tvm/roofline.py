"""`estimate(graph, target="tvm-cpu")`: a per-op estimate next to the measured profile of the same build.

Estimate: each IR op's row sums the cost model (cost_model.py) over the kernels the op was fused into. The model
counts each kernel the way our schedules run it (register-block FMA steps against the FMA latency or issue rate,
vector and division instructions, transposed loads, vectorized and scalar reduction steps, argument bytes against
the cache or memory bandwidth), and prices the counts with machine constants that micro-benchmarks of our own
schedules measure, on shapes of their own, once per CPU, thread count and TVM version; they are cached in
`~/.cache/accelgen/` (ACCELGEN_CACHE_DIR overrides it). The MACs and bytes columns are the op registry's
(`Op.cost`), for reference.

Measured: the model is built exactly as `compile` builds it and run under the Relax VM profiler; each profiled
kernel is attributed to the IR ops it was fused from (FuseOps groups are tracked by name), and ops that share a
kernel (a Dense and the residual Add fused into its epilogue) share one row. A row is "large" when it takes at
least LARGE_SHARE of the measured total; the report says whether every large row is within 2x of its estimate,
and how much slower a reference kernel ran during the profile than at calibration (a busy shared machine).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accelgen.errors import OptionError
from accelgen.ir.graph import Graph
from accelgen.report import LayerEstimate, Report

LARGE_SHARE = 0.10
TARGET_RATIO = 2.0
PEAKS_FORMAT = 4
PEAK_RUNS = 3
BUSY_FACTOR = 1.25


@dataclass
class KernelRow(LayerEstimate):
    """One row: IR ops fused into the same kernels. latency_cycles holds the estimate in ns (clock_ns = 1)."""

    macs: int = 0
    bytes: int = 0
    bound: str = ""  # compute | memory | overhead
    kernels: int = 0
    estimate_us: float = 0.0
    measured_us: float | None = None
    ratio: float | None = None  # measured / estimate
    large: bool = False


@dataclass
class RooflineReport(Report):
    """The FPGA report's fields (latency in ns, no FPGA resources) plus the measured side."""

    measured_us: float | None = None
    peaks: dict | None = None
    large_within_target: bool | None = None
    load_factor: float | None = None  # reference kernel now / when the peaks were measured (1: as quiet)

    def summary(self) -> str:
        est = self.latency_cycles / 1e3
        text = f"{self.model} on {self.part}: roofline estimate {est:.1f} us"
        if self.measured_us is not None:
            text += f", measured {self.measured_us:.1f} us (sum of kernels, ratio {self.measured_us / est:.2f})"
            large = [r for r in self.layers if r.large]
            verdict = "all within" if self.large_within_target else "NOT all within"
            text += (f"; large kernels (>= {LARGE_SHARE:.0%} of the time): {len(large)}, {verdict} "
                     f"{TARGET_RATIO:g}x of the estimate")
            if self.load_factor is not None:
                text += f"; machine load factor {self.load_factor:.2f} (1 = as quiet as at calibration)"
        return text

    def to_markdown(self) -> str:
        p = self.peaks or {}
        machine = (f"Machine: {p.get('gflops', 0):.1f} GFLOP/s peak, {p.get('cache_gbs', 0):.1f} GB/s in cache, "
                   f"{p.get('dram_gbs', 0):.1f} GB/s from memory, {p.get('call_overhead_us', 0):.2f} us per "
                   f"kernel call ({self.config.get('threads')} thread(s)).")
        lines = [f"# Estimate: {self.model} ({self.target})", "", self.summary(), "", machine, "",
                 "| ops | kind | MACs | bytes | bound | kernels | estimate (us) | measured (us) | measured/estimate |",
                 "|---|---|---:|---:|---|---:|---:|---:|---:|"]
        for r in self.layers:
            measured = "" if r.measured_us is None else f"{r.measured_us:.2f}"
            ratio = "" if r.ratio is None else f"{r.ratio:.2f}" + (" **large**" if r.large else "")
            lines.append(f"| {r.name} | {r.op} | {r.macs} | {r.bytes} | {r.bound} | {r.kernels} | "
                         f"{r.estimate_us:.2f} | {measured} | {ratio} |")
        if self.warnings:
            lines += ["", "Warnings:", *[f"- {w}" for w in self.warnings]]
        return "\n".join(lines) + "\n"

    def to_text(self, width: int = 48) -> str:
        """An aligned table for the terminal (what `accelgen estimate` prints)."""
        head = ("ops", "kind", "MACs", "bytes", "bound", "kernels", "estimate us", "measured us", "ratio")
        body = [(r.name if len(r.name) <= width else "..." + r.name[-(width - 3):], r.op[:24], r.macs, r.bytes,
                 r.bound, r.kernels, f"{r.estimate_us:.2f}",
                 "" if r.measured_us is None else f"{r.measured_us:.2f}",
                 "" if r.ratio is None else f"{r.ratio:.2f}" + (" large" if r.large else ""))
                for r in self.layers]
        table = [head, *body]
        cols = [max(len(str(row[i])) for row in table) for i in range(len(head))]

        def line(row):
            return "  ".join(str(v).ljust(cols[i]) if i in (0, 1, 4) else str(v).rjust(cols[i])
                             for i, v in enumerate(row))

        lines = [self.summary(), "", line(head), "  ".join("-" * c for c in cols), *map(line, body)]
        if self.warnings:
            lines += ["", f"warnings ({len(self.warnings)}):", *[f"  - {w}" for w in self.warnings]]
        return "\n".join(lines) + "\n"

    def to_html(self, path=None) -> str:
        from html import escape

        from accelgen.report.html import STYLE, _bar_chart

        names = [r.name for r in self.layers]
        rows = "".join(
            f"<tr><td>{escape(r.name)}</td><td>{escape(r.op)}</td><td>{r.macs}</td><td>{r.bytes}</td>"
            f"<td>{r.bound}</td><td>{r.kernels}</td><td>{r.estimate_us:.2f}</td>"
            f"<td>{'' if r.measured_us is None else f'{r.measured_us:.2f}'}</td>"
            f"<td>{'' if r.ratio is None else f'{r.ratio:.2f}'}{' (large)' if r.large else ''}</td></tr>"
            for r in self.layers)
        charts = _bar_chart("estimate (us)", names, [round(r.estimate_us, 2) for r in self.layers], "#4c78a8")
        if self.measured_us is not None:
            charts += _bar_chart("measured (us)", names, [round(r.measured_us or 0, 2) for r in self.layers],
                                 "#f58518")
        warnings = "".join(f'<li class="warn">{escape(w)}</li>' for w in self.warnings)
        peaks = "".join(f"<tr><td>{escape(str(k))}</td><td>{v:.4g}</td></tr>" if isinstance(v, float) else
                        f"<tr><td>{escape(str(k))}</td><td>{escape(str(v))}</td></tr>" for k, v in self.peaks.items())
        text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>accelgen estimate: {escape(self.model)}</title>
<style>{STYLE}</style></head><body>
<h1>Estimate: {escape(self.model)} ({escape(self.target)})</h1>
<p>{escape(self.summary())}</p>
<h2>Machine (measured once by micro-benchmarks, cached)</h2><table>{peaks}</table>
<h2>Per op</h2><table><tr><th>ops</th><th>kind</th><th>MACs</th><th>bytes</th><th>bound</th><th>kernels</th>
<th>estimate (us)</th><th>measured (us)</th><th>measured/estimate</th></tr>{rows}</table>
<div>{charts}</div><ul>{warnings}</ul>
<p><small>Roofline estimate by accelgen; see docs/backends.md.</small></p></body></html>
"""
        if path is not None:
            Path(path).write_text(text)
        return text


# -- machine peaks --------------------------------------------------------------------------------------------------
def _cache_dir() -> Path:
    return Path(os.environ.get("ACCELGEN_CACHE_DIR") or Path.home() / ".cache" / "accelgen")


def _l2_bytes() -> int:
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip()
        return int(text[:-1]) * 1024 if text.endswith("K") else int(text)
    except (OSError, ValueError):
        return 1 << 20


def machine_peaks(target, threads: int) -> dict:
    """Measured once per (CPU, threads, TVM version) and cached as JSON."""
    import tvm

    key = f"{target.attrs.get('mcpu', 'cpu')}-{threads}t-tvm{tvm.__version__}-{platform.node()}"
    path = _cache_dir() / "tvm_cpu_peaks.json"
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    entry = cached.get(key)
    if entry and entry.get("format") == PEAKS_FORMAT:
        return entry
    # peaks are best cases: keep the best of a few runs, so a moment of load on a shared machine does not stick
    runs = [_measure_peaks(target) for _ in range(PEAK_RUNS)]
    best = {k: (min if k.endswith(("_ns", "_us")) else max)(r[k] for r in runs) for k in runs[0]}
    entry = {"format": PEAKS_FORMAT, **best, "l2_bytes": _l2_bytes(), "threads": threads}
    cached[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cached, indent=2) + "\n")
    except OSError:
        pass  # a read-only home: measure again next time
    return entry


def _time_kernel(mod, target, args) -> float:
    """Median seconds of the one kernel `mod`'s main calls, timed as the profile times kernels."""
    import tvm

    from accelgen.backends.tvm.build import build
    from accelgen.backends.tvm.profile import timed_calls

    calls = timed_calls(build(mod, target).jit(), [tvm.runtime.tensor(a, tvm.cpu()) for a in args], repeat=9)
    return min(seconds for _, seconds in calls)


def _one_op_module(make, shapes):
    from tvm import relax

    bb = relax.BlockBuilder()
    params = [relax.Var(f"x{i}", relax.TensorType(shape=s, dtype="float32")) for i, s in enumerate(shapes)]
    with bb.function("main", params):
        with bb.dataflow():
            out = bb.emit_output(make(bb, *params))
        bb.emit_func_output(out)
    return bb.get()


def _kernel_work(mod, target, lanes):
    """The cost model's counts for the one kernel of a one-op module (what cost_model sees for a model's)."""
    from accelgen.backends.tvm.build import legalize
    from accelgen.backends.tvm.cost_model import kernel_work

    (func,) = [f for f in legalize(mod, target).functions.values() if type(f).__name__ == "PrimFunc"]
    return kernel_work(func, lanes)


REFERENCE_MATMUL = (64, 512, 512)  # weights 1 MiB: in cache


def _matmul_issue_ns(target) -> float:
    """Issue time per vector FMA of our matmul schedule with 8 rows x 2 vectors = 16 accumulators, where the FMA
    ports, not the latency, are the limit. Also timed after a profile, to see how busy the machine was."""
    from accelgen.backends.tvm.cost_model import parallel_cores
    from accelgen.backends.tvm.lower import _const, _packed_matmul
    from accelgen.backends.tvm.schedules import simd_lanes

    rng = np.random.default_rng(0)
    lanes, (m, k, n) = simd_lanes(target), REFERENCE_MATMUL
    w = rng.standard_normal((n // lanes, k, lanes)).astype("float32")
    mod = _one_op_module(lambda bb, x: bb.call_te(_packed_matmul, x, _const(w)), [(m, k)])
    work = _kernel_work(mod, target, lanes)
    (steps, acc), = work.fma_steps["matmul"]
    seconds = _time_kernel(mod, target, [rng.standard_normal((m, k)).astype("float32")])
    return seconds * parallel_cores(work, int(target.attrs.get("num-cores", 1))) / (steps * acc) * 1e9


def _measure_peaks(target) -> dict:
    """Machine constants of the cost model, each from one micro-benchmark of our own schedule on a shape of its own
    (none is a layer of the benchmark models): seconds measured / work counted by cost_model, per core."""
    from tvm import relax

    from accelgen.backends.tvm.cost_model import compute_seconds, parallel_cores
    from accelgen.backends.tvm.lower import _const, _packed_conv2d, _packed_matmul
    from accelgen.backends.tvm.schedules import simd_lanes

    rng = np.random.default_rng(0)
    lanes = simd_lanes(target)
    cores = int(target.attrs.get("num-cores", 1))

    def per_core(mod, shapes):
        work = _kernel_work(mod, target, lanes)
        args = [rng.standard_normal(s).astype("float32") for s in shapes]
        return _time_kernel(mod, target, args) * parallel_cores(work, cores), work

    def matmul(m, k, n):
        w = rng.standard_normal((n // lanes, k, lanes)).astype("float32")
        return _one_op_module(lambda bb, x: bb.call_te(_packed_matmul, x, _const(w)), [(m, k)])

    # one output row: one accumulator per vector, every FMA waits for the previous one -> the FMA latency
    seconds, work = per_core(matmul(1, 512, 128), [(1, 512)])
    (steps, _), = work.fma_steps["matmul"]
    latency_ns = seconds / steps * 1e9
    matmul_ns = _matmul_issue_ns(target)
    wc = rng.standard_normal((32 // lanes, 8, 3, 3, lanes)).astype("float32")
    conv = _one_op_module(lambda bb, x: bb.call_te(_packed_conv2d, x, _const(wc), (1, 1), (1, 1), (24, 24)),
                          [(1, 8, 26, 26)])
    seconds, work = per_core(conv, [(1, 8, 26, 26)])
    conv_ns = seconds / sum(s * a for s, a in work.fma_steps["conv"]) * 1e9
    machine = {"fma_latency_ns": latency_ns, "fma_issue_matmul_ns": matmul_ns, "fma_issue_conv_ns": conv_ns,
               "vector_op_ns": 0.0, "vector_div_ns": 0.0, "gather_ns": 0.0, "reduce_vector_step_ns": 0.0,
               "reduce_scalar_step_ns": 0.0}
    # the rest, each from the time its kernel spends beyond the work already priced
    for name, make, shapes, count in [
            ("vector_op_ns", lambda bb, x: relax.op.exp(x), [(48, 256)], lambda w: w.vector_ops),
            ("vector_div_ns", lambda bb, x, y: relax.op.divide(x, y), [(48, 256)] * 2, lambda w: w.div_ops),
            ("gather_ns", lambda bb, x: relax.op.permute_dims(x), [(64, 48)], lambda w: w.gathers),
            ("reduce_vector_step_ns", lambda bb, x: relax.op.max(x, axis=-1, keepdims=True), [(96, 128)],
             lambda w: w.reduce_vector_steps),
            ("reduce_scalar_step_ns", lambda bb, x: relax.op.max(x, axis=[-2, -1]), [(512, 3, 3)],
             lambda w: w.reduce_scalar_steps)]:
        seconds, work = per_core(_one_op_module(make, shapes), shapes)
        machine[name] = max(seconds - compute_seconds(work, machine), 0.0) / count(work) * 1e9

    def stream(size):
        mod = _one_op_module(lambda bb, x: relax.op.add(x, relax.const(1.0, "float32")), [(size,)])
        return 2 * 4 * size / _time_kernel(mod, target, [np.zeros(size, "float32")])

    tiny = _one_op_module(lambda bb, x: relax.op.add(x, relax.const(1.0, "float32")), [(1,)])
    return {"gflops": 2 * lanes / matmul_ns * cores,
            **machine, "cache_gbs": stream(16 * 1024) / 1e9,
            "dram_gbs": stream(16 * 1024 * 1024) / 1e9,
            "call_overhead_us": _time_kernel(tiny, target, [np.zeros(1, "float32")]) * 1e6}


# -- the estimate ---------------------------------------------------------------------------------------------------
def _group_seconds(group, peaks: dict, lanes: int, cores: int) -> tuple[float, str]:
    """(seconds, what bounds most of it) of one row: the cost model summed over the row's kernel calls."""
    from accelgen.backends.tvm.cost_model import kernel_seconds, kernel_work

    total, by_bound = 0.0, {}
    for i, func in enumerate(group.funcs):
        if group.executed and not group.executed[i]:
            continue  # the VM made it a view
        seconds, bound = kernel_seconds(kernel_work(func, lanes), peaks, cores)
        total += seconds
        by_bound[bound] = by_bound.get(bound, 0.0) + seconds
    return total, max(by_bound, key=by_bound.get) if by_bound else "none"


def estimate(graph: Graph, target: str = "tvm-cpu", threads: int | None = None, measure: bool = True,
             repeat: int = 10, **options) -> RooflineReport:
    """Roofline estimate per op for `target`, with the measured profile of the same build next to it."""
    import accelgen

    if options:
        raise OptionError(f"option(s) {', '.join(sorted(options))} mean nothing for estimate on {target!r}")
    if target != "tvm-cpu":
        raise OptionError(f"estimate for target {target!r} is not available (tvm-cpu is)")
    if threads is not None and threads < 1:
        raise OptionError(f"threads must be >= 1, got {threads}")
    from accelgen.backends.tvm.module import set_threads

    set_threads(threads)
    from accelgen.backends.tvm.build import make_target
    from accelgen.backends.tvm.fixed_lower import is_fixed_graph
    from accelgen.backends.tvm.lower import check_lowerable
    from accelgen.backends.tvm.profile import profile_by_node
    from accelgen.backends.tvm.schedules import simd_lanes

    if is_fixed_graph(graph):
        raise OptionError("estimate on tvm-cpu covers float graphs; estimate the graph before accelgen.quantize")
    optimized = accelgen.optimize(graph)
    check_lowerable(optimized)
    tvm_target = make_target(target, threads)
    n_threads = int(tvm_target.attrs.get("num-cores", 1))
    peaks = machine_peaks(tvm_target, n_threads)
    lanes = simd_lanes(tvm_target)
    groups = profile_by_node(optimized, tvm_target, repeat=repeat if measure else 0)

    rows: list[KernelRow] = []
    for group in groups:
        nodes = group.nodes
        macs = bytes_ = 0
        for node in nodes:
            cost = node.op.cost([None if v is None else v.type for v in node.inputs], [v.type for v in node.outputs])
            macs, bytes_ = macs + cost.macs, bytes_ + cost.bytes
        seconds, bound = _group_seconds(group, peaks, lanes, n_threads)
        row = KernelRow(name=" + ".join(n.name for n in nodes), op="+".join(n.op_type for n in nodes),
                        kernel=", ".join(group.kernels), latency_cycles=round(seconds * 1e9), ii=0, macs=macs,
                        bytes=bytes_, bound=bound, kernels=len(group.kernels if measure else group.calls), estimate_us=seconds * 1e6)
        if measure:
            row.measured_us = group.seconds * 1e6
            row.ratio = row.measured_us / row.estimate_us if row.estimate_us else None
        rows.append(row)

    total_ns = sum(r.latency_cycles for r in rows)
    report = RooflineReport(model=graph.name, target=target, part=str(tvm_target.attrs.get("mcpu", "cpu")),
                            clock_ns=1.0, latency_cycles=total_ns, ii=total_ns, dsp=0, lut=0, ff=0, bram18=0,
                            layers=rows, capacity={}, peaks=peaks,
                            config={"threads": n_threads, "time unit": "latency_cycles are ns (clock_ns = 1)",
                                    "large kernel share": LARGE_SHARE, "target ratio": TARGET_RATIO})
    if measure:
        total = sum(r.measured_us for r in rows)
        report.measured_us = total
        for r in rows:
            r.large = total > 0 and r.measured_us >= LARGE_SHARE * total
        outside = [r for r in rows if r.large and r.ratio is not None
                   and not 1 / TARGET_RATIO <= r.ratio <= TARGET_RATIO]
        report.large_within_target = not outside
        # the peaks are a quiet machine's; on a shared one the profile runs slower, and says how much slower
        report.load_factor = _matmul_issue_ns(tvm_target) / peaks["fma_issue_matmul_ns"]
        if report.load_factor > BUSY_FACTOR:
            report.warnings.append(f"the machine was busy: the reference matmul ran {report.load_factor:.2f}x "
                                   "slower than when the peaks were measured, and so do the measured kernels")
        report.warnings += [f"{r.name}: measured {r.measured_us:.1f} us is {r.ratio:.2f}x the estimate "
                            f"({r.estimate_us:.1f} us), outside {TARGET_RATIO:g}x" for r in outside]
    return report
