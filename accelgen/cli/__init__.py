"""The `accelgen` command line. Thin: parses flags, calls the public API, prints.

User errors (accelgen.errors.*, bad flags, unreadable files) print one line and exit with status 2;
`--debug` shows the traceback instead.
"""


from __future__ import annotations

import argparse
import os
import sys

import accelgen
from accelgen.cli.backend import (
    add_backend_flags,
    add_report_flags,
    cmd_compile,
    cmd_estimate,
)
from accelgen.cli.basic import cmd_inspect, cmd_ops, cmd_optimize, cmd_run
from accelgen.cli.common import USER_ERROR, input_shapes, load_inputs, parse_shape
from accelgen.cli.prune import add_prune_flags, cmd_prune
from accelgen.cli.quantize import cmd_quantize
from accelgen.errors import AccelgenError

__all__ = ["USER_ERROR", "build_parser", "input_shapes", "load_inputs", "main", "parse_shape"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="accelgen", description="Compile ONNX models to FPGA HLS projects and TVM kernels.")
    p.add_argument("--version", action="version", version=f"accelgen {accelgen.__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    # --debug also after the subcommand; SUPPRESS keeps a --debug given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)

    def model_command(name, help):
        s = sub.add_parser(name, help=help, parents=[common])
        s.add_argument("model", help="ONNX model file")
        s.add_argument("--input-shape", action="append", metavar="NAME=DxD", help="static shape of an input, e.g. x=1x16")
        return s

    s = model_command("inspect", "print the imported graph: nodes, shapes, parameters, MACs")
    s.add_argument("--ir", action="store_true", help="print the IR text instead of the table")
    s.set_defaults(func=cmd_inspect)
    s = model_command("run", "run the model with accelgen's reference interpreter")
    s.add_argument("--input", action="append", metavar="NAME=FILE.npy|FILE.npz", help="input data")
    s.add_argument("--output", metavar="OUT.npz", help="save outputs to a .npz file")
    s.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    s.set_defaults(func=cmd_run)
    s = model_command("optimize", "run an optimization pipeline and show what it did")
    s.add_argument("--pipeline", default="default", help="named pipeline (default, cleanup, none)")
    s.add_argument("--passes", metavar="A,B,...", help="run these passes in order instead of a pipeline")
    s.add_argument("--print-ir", action="store_true", help="print the optimized IR")
    s.add_argument("--explain", action="store_true", help="list rules that matched but refused, with the reason")
    s.add_argument("--verify-each", action="store_true",
                   help="verify the IR and check the outputs are unchanged after every pass")
    s.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass")
    s.set_defaults(func=cmd_optimize)
    s = model_command("quantize", "quantize to fixed point from calibration data and report the accuracy")
    s.add_argument("--calibration", required=True, metavar="DATA.npz",
                   help="calibration samples: one array per graph input, samples along the first axis")
    s.add_argument("--eval", metavar="DATA.npz", help="held-out samples to report on (default: the calibration data)")
    s.add_argument("--precision", metavar="auto|fixed<W,I>", help="auto (types from calibration, the default) or "
                   "one type for everything, e.g. fixed<16,6>")
    s.add_argument("--weight-bits", type=int, metavar="N", help="weight width for auto precision (default 16)")
    s.add_argument("--activation-bits", type=int, metavar="N", help="activation width for auto precision (default 16)")
    s.add_argument("--margin", type=float, metavar="M", help="widen calibrated ranges by this factor (>= 1)")
    s.add_argument("--per-channel", action="store_true", help="per-output-channel weight scales (Dense, Conv)")
    s.add_argument("--config", metavar="LAYERS.yaml", help="per-layer settings (accelgen or hls4ml form)")
    s.add_argument("--search", action="store_true", help="search per-layer widths for the fewest bits within the bound (types --config fixes are kept)")
    s.add_argument("--min-agreement", type=float, metavar="A",
                   help="search bound: argmax agreement with float on the calibration data (default 0.99)")
    s.add_argument("--min-cosine", type=float, metavar="C", help="search bound: cosine similarity with float instead")
    s.add_argument("--max-evaluations", type=int, default=200, metavar="N", help="search budget (default 200)")
    s.add_argument("--report", action="store_true", help="print the per-tensor table: types, ranges, overflows")
    s.add_argument("--print-ir", action="store_true", help="print the quantized IR")
    s.add_argument("--json", metavar="REPORT.json", help="write the report (and search results) as JSON")
    s.add_argument("--save-config", metavar="LAYERS.yaml", help="write the chosen per-layer settings for --config")
    s.add_argument("--force", action="store_true", help="overwrite --json / --save-config files")
    s.set_defaults(func=cmd_quantize)
    s = model_command("prune", "zero the least important weights, report the accuracy, write the pruned ONNX")
    add_prune_flags(s)
    s.set_defaults(func=cmd_prune)
    s = model_command("compile", "generate an HLS project (--target hls) or a TVM library (--target tvm-cpu)")
    add_backend_flags(s)
    s.add_argument("--out", metavar="DIR", help="output folder (refused if it exists, unless --force)")
    s.add_argument("--csim", action="store_true", help="build and run the C simulation (hls)")
    s.add_argument("--force", action="store_true", help="write into an existing output folder")
    s.set_defaults(func=cmd_compile)
    s = model_command("estimate", "latency and resource estimate without synthesis (--target hls)")
    add_backend_flags(s)
    add_report_flags(s)
    s.set_defaults(func=cmd_estimate)
    s = sub.add_parser("ops", help="list the supported ONNX op types", parents=[common])
    s.set_defaults(func=cmd_ops)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AccelgenError as e:
        if args.debug:
            raise
        print(f"accelgen: error: {e}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (accelgen inspect ... | head): stop quietly
        try:  # and keep Python from complaining when it flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
