"""The `accelgen` command line. Thin: parses flags, calls the public API, prints.

User errors (accelgen.errors.*, bad flags, unreadable files) print one line and exit with status 2;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import accelgen
from accelgen.errors import AccelgenError, OptionError
from accelgen.ir.graph import Graph

USER_ERROR = 2


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """`x=1x16` -> ("x", (1, 16)); `x=` (a scalar) -> ("x", ())."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name:
        raise OptionError(f"--input-shape {text!r}: expected NAME=DxDx... e.g. x=1x16")
    try:
        shape = tuple(int(d) for d in dims.replace(",", "x").split("x")) if dims else ()
    except ValueError:
        raise OptionError(f"--input-shape {text!r}: dimensions must be integers, e.g. x=1x16") from None
    if any(d < 0 for d in shape):
        raise OptionError(f"--input-shape {text!r}: dimensions must be non-negative")
    return name, shape


def input_shapes(args) -> dict[str, tuple[int, ...]] | None:
    shapes = dict(parse_shape(s) for s in args.input_shape or [])
    return shapes or None


def load_inputs(specs: list[str]) -> dict[str, np.ndarray]:
    """`--input x=a.npy` binds one input; `--input data.npz` binds one input per array in the archive."""
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, file = spec.rpartition("=")
        path = Path(file if sep else spec)
        if not path.is_file():
            raise OptionError(f"--input {spec!r}: no such file {str(path)!r}")
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise OptionError(f"--input {spec!r}: not a .npy/.npz file ({e})") from None
        if isinstance(data, np.lib.npyio.NpzFile):
            if sep:
                if name not in data.files:
                    raise OptionError(f"--input {spec!r}: the archive has no array {name!r} (it has {data.files})")
                arrays[name] = data[name]
            else:
                arrays.update({k: data[k] for k in data.files})
        else:
            if not sep:
                raise OptionError(f"--input {spec!r}: a .npy file needs a name, e.g. --input x={spec}")
            arrays[name] = data
    return arrays


def _params(graph: Graph, node) -> int:
    return sum(v.type.numel for v in node.inputs if v is not None and v.is_constant)


def inspect_table(graph: Graph) -> str:
    rows = [("node", "op", "output shape", "dtype", "params", "MACs")]
    total_macs = 0
    for node in graph.nodes:
        ins = [v.type if v is not None else None for v in node.inputs]
        cost = node.op.cost(ins, [v.type for v in node.outputs])
        total_macs += cost.macs
        out = node.outputs[0].type if node.outputs else None
        rows.append((node.name, node.op_type, "x".join(map(str, out.shape)) if out else "-",
                     str(out.dtype) if out else "-", f"{_params(graph, node):,}", f"{cost.macs:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    numeric = {4, 5}

    def line(r):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))

    lines = [line(rows[0]), "  ".join("-" * w for w in widths), *map(line, rows[1:])]
    params = sum(v.type.numel for v in graph.constants.values())
    ins = ", ".join(f"{v.name}: {v.type}" for v in graph.inputs)
    outs = ", ".join(f"{v.name}: {v.type}" for v in graph.outputs)
    lines += ["", f"inputs:  {ins}", f"outputs: {outs}",
              f"total: {len(graph.nodes)} nodes, {params:,} parameters, {total_macs:,} MACs"]
    return "\n".join(lines)


def cmd_inspect(args) -> int:
    graph = accelgen.load(args.model, input_shapes=input_shapes(args))
    print(str(graph) if args.ir else inspect_table(graph))
    return 0


def cmd_run(args) -> int:
    inputs = load_inputs(args.input or [])
    # Without --input-shape, the data fixes the shapes (a batch of 4 rows runs as batch 4).
    shapes = input_shapes(args) or {name: a.shape for name, a in inputs.items()}
    graph = accelgen.load(args.model, input_shapes=shapes)
    if args.output and Path(args.output).exists() and not args.force:
        raise OptionError(f"--output {args.output!r} exists; pass --force to overwrite it")
    outputs = accelgen.run(graph, inputs)
    if args.output:
        np.savez(args.output, **outputs)
        print(f"wrote {', '.join(outputs)} to {args.output}")
    else:
        with np.printoptions(precision=6, suppress=True, threshold=200):
            for name, value in outputs.items():
                print(f"{name}: {value.dtype}{list(value.shape)}\n{value}")
    return 0


def cmd_ops(args) -> int:
    print("\n".join(sorted(accelgen.supported_ops())))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="accelgen", description="Compile ONNX models to FPGA HLS projects and TVM kernels.")
    p.add_argument("--version", action="version", version=f"accelgen {accelgen.__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)

    def model_command(name, help):
        s = sub.add_parser(name, help=help)
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
    s = sub.add_parser("ops", help="list the supported ONNX op types")
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


if __name__ == "__main__":
    sys.exit(main())
