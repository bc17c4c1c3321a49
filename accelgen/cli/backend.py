"""compile and estimate: the backends (HLS projects, TVM libraries) and their latency/resource reports."""

from __future__ import annotations

import accelgen
from accelgen.backends import TARGETS
from accelgen.cli.common import input_shapes
from accelgen.errors import OptionError

# flag name -> backend option name; only the flags the user gave are passed on, so each backend can refuse the
# ones that mean nothing for its target.
BACKEND_FLAGS = {
    "part": "part", "clock": "clock_ns", "reuse_factor": "reuse_factor", "strategy": "strategy", "io": "io",
    "precision": "precision", "calibration": "calibration", "config": "config", "csim": "csim",
    "tune_trials": "tune_trials", "threads": "threads",
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
    s.add_argument("--reuse-factor", type=int, metavar="R", help="multiplier reuse factor (hls)")
    s.add_argument("--strategy", choices=["latency", "resource"], help="dense kernel strategy (hls)")
    s.add_argument("--io", choices=["parallel", "stream"], help="interface between layers (hls)")
    s.add_argument("--precision", metavar="auto|fixed<W,I>", help="quantize a float model first (hls)")
    s.add_argument("--calibration", metavar="DATA.npz", help="calibration samples for the precision (hls)")
    s.add_argument("--config", metavar="LAYERS.yaml", help="per-layer precision/reuse/strategy (hls)")
    s.add_argument("--tune-trials", type=int, metavar="N", help="MetaSchedule tuning trials (tvm)")
    s.add_argument("--threads", type=int, metavar="N", help="CPU threads (tvm)")


def cmd_compile(args) -> int:
    graph = accelgen.load(args.model, input_shapes=input_shapes(args))
    if not args.out:
        raise OptionError("--out DIR is required: the folder to write the project into")
    project = accelgen.backends.compile(graph, target=args.target, out_dir=args.out, force=args.force,
                                        **backend_options(args))
    print(project.summary() if hasattr(project, "summary") else f"wrote {args.out}")
    return 0


def cmd_estimate(args) -> int:
    graph = accelgen.load(args.model, input_shapes=input_shapes(args))
    report = accelgen.backends.estimate(graph, target=args.target, **backend_options(args))
    print(report.to_markdown() if hasattr(report, "to_markdown") else report)
    return 0
