"""compile and estimate: the backends (HLS projects, TVM libraries) and their latency/resource reports."""

from __future__ import annotations

from pathlib import Path

import accelgen
from accelgen.backends import TARGETS
from accelgen.cli.common import input_shapes, output_path
from accelgen.cli.prune import add_compile_prune_flags, prune_for_backend
from accelgen.errors import OptionError
from accelgen.report import Report

# flag name -> backend option name; only the flags the user gave are passed on, so each backend can refuse the
# ones that mean nothing for its target.
BACKEND_FLAGS = {
    "part": "part", "clock": "clock_ns", "reuse_factor": "reuse_factor", "strategy": "strategy", "io": "io",
    "precision": "precision", "calibration": "calibration", "config": "config", "csim": "csim",
    "tune_trials": "tune_trials", "threads": "threads", "per_channel": "per_channel",
}


def backend_options(args) -> dict:
    given = {}
    for flag, option in BACKEND_FLAGS.items():
        value = getattr(args, flag, None)
        if value not in (None, False):
            given[option] = value
    return given


def add_backend_flags(s) -> None:
    s.add_argument("--target", default="hls", choices=sorted(TARGETS), help="what to generate (default hls)")
    s.add_argument("--part", help="FPGA part, e.g. xcvu13p-flga2577-2-e (hls)")
    s.add_argument("--clock", type=float, metavar="NS", help="clock period in ns (hls, default 5)")
    s.add_argument("--reuse-factor", type=int, metavar="R",
                   help="each Dense multiplier used R times; R > 1 implies --strategy resource (hls)")
    s.add_argument("--strategy", choices=["latency", "resource"],
                   help="Dense kernels fully parallel or sharing multipliers (hls, default latency)")
    s.add_argument("--io", choices=["parallel", "stream"],
                   help="arrays between layers, or hls::stream FIFOs between DATAFLOW processes (hls, default "
                        "parallel)")
    s.add_argument("--precision", metavar="auto|fixed<W,I>", help="quantize a float model first (hls)")
    s.add_argument("--calibration", metavar="DATA.npz", help="calibration samples for the precision (hls)")
    s.add_argument("--config", metavar="LAYERS.yaml", help="per-layer precision/reuse/strategy (hls)")
    s.add_argument("--per-channel", action="store_true",
                   help="per-output-channel weight scales for Dense and Conv when quantizing (hls)")
    s.add_argument("--tune-trials", type=int, metavar="N", help="MetaSchedule tuning trials (tvm)")
    s.add_argument("--threads", type=int, metavar="N", help="CPU threads (tvm)")
    add_compile_prune_flags(s)


def add_report_flags(s) -> None:
    s.add_argument("--json", metavar="REPORT.json", help="also write the report as JSON")
    s.add_argument("--html", metavar="REPORT.html", help="also write the report as one self-contained HTML page")
    s.add_argument("--force", action="store_true", help="overwrite --json / --html files")


def cmd_compile(args) -> int:
    graph = accelgen.load(args.model, input_shapes=input_shapes(args))
    if not args.out:
        raise OptionError("--out DIR is required: the folder to write the project into")
    graph = prune_for_backend(args, graph)
    project = accelgen.backends.compile(graph, target=args.target, out_dir=args.out, force=args.force,
                                        **backend_options(args))
    print(project.summary() if hasattr(project, "summary") else f"wrote {args.out}")
    estimate = Path(args.out) / "report" / "estimate.json"
    if args.target == "hls" and estimate.is_file():
        report = Report.from_json(estimate)
        print(f"estimate: {report.summary()}")
        for w in report.warnings:
            print(f"  warning: {w}")
        print(f"  per-layer report: {estimate.parent / 'estimate.html'} (also .md, .json)")
    return 0


def cmd_estimate(args) -> int:
    # output files are checked before the (possibly long) quantization runs
    json_path = output_path(args.json, args.force) if args.json else None
    html_path = output_path(args.html, args.force) if args.html else None
    graph = prune_for_backend(args, accelgen.load(args.model, input_shapes=input_shapes(args)))
    report = accelgen.backends.estimate(graph, target=args.target, **backend_options(args))
    print(report.to_text() if hasattr(report, "to_text") else report, end="")
    if json_path is not None:
        report.to_json(json_path)
        print(f"wrote {json_path}")
    if html_path is not None:
        report.to_html(html_path)
        print(f"wrote {html_path}")
    return 0
