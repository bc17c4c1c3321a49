"""The `accelgen` command line. Thin: parses flags, calls the public API, prints.

User errors (accelgen.errors.*, bad flags, unreadable files) print one line and exit with status 2;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

import accelgen
from accelgen.errors import AccelgenError, OptionError, ShapeError
from accelgen.ir.graph import Graph

USER_ERROR = 2
_DIM = re.compile(r"\s*[0-9]+\s*")


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """`x=1x16` -> ("x", (1, 16)); `x=` (a scalar) -> ("x", ())."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name:
        raise OptionError(f"--input-shape {text!r}: expected NAME=DxDx... e.g. x=1x16")
    parts = dims.replace(",", "x").split("x") if dims else []
    if not all(_DIM.fullmatch(d) for d in parts):
        raise OptionError(f"--input-shape {text!r}: dimensions must be non-negative integers, e.g. x=1x16")
    return name, tuple(int(d) for d in parts)


def input_shapes(args) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for text in args.input_shape or []:
        name, shape = parse_shape(text)
        if name in shapes:
            raise OptionError(f"--input-shape {text!r}: the shape of {name!r} is already given")
        shapes[name] = shape
    return shapes


def _read_arrays(path: Path, what: str) -> dict[str, np.ndarray] | np.ndarray:
    """The array of a .npy file or the arrays of a .npz archive. Never unpickles."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            return data
        with data:
            arrays = {k: data[k] for k in data.files}
    except OSError as e:
        raise OptionError(f"{what}: cannot read {str(path)!r}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - numpy reports malformed files with assorted exceptions
        if "pickle" in str(e):
            raise OptionError(f"{what}: {str(path)!r} holds pickled Python objects, which accelgen never loads; save "
                              "plain arrays with np.save or np.savez") from None
        raise OptionError(f"{what}: {str(path)!r} is not a valid .npy/.npz file ({type(e).__name__}: {e})") from None
    bad = [k for k, a in arrays.items() if not isinstance(a, np.ndarray)]
    if bad:
        raise OptionError(f"{what}: {str(path)!r} holds {bad[0]!r}, which is not a .npy array")
    return arrays


def load_inputs(specs: list[str]) -> dict[str, np.ndarray]:
    """`--input x=a.npy` binds one input (x=b.npz: the archive's array x); `--input data.npz` binds one input per
    array in the archive. A spec that is itself an existing file is a path, even if it contains '='."""
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if Path(spec).is_file():
            name, sep, file = "", "", spec
        what = f"--input {spec!r}"
        if sep and not name:
            raise OptionError(f"{what}: expected NAME=FILE.npy, NAME=FILE.npz or FILE.npz")
        path = Path(file)
        if path.is_dir():
            raise OptionError(f"{what}: {str(path)!r} is a folder, not a .npy/.npz file")
        if not path.is_file():
            raise OptionError(f"{what}: no such file {str(path)!r}")
        data = _read_arrays(path, what)
        if isinstance(data, dict):
            if sep:
                if name not in data:
                    raise OptionError(f"{what}: the archive has no array {name!r} (it has {sorted(data)})")
                data = {name: data[name]}
        elif sep:
            data = {name: data}
        else:
            raise OptionError(f"{what}: a .npy file needs a name, e.g. --input x={spec}")
        for key, array in data.items():
            if key in arrays:
                raise OptionError(f"{what}: input {key!r} is already given by an earlier --input")
            arrays[key] = array
    return arrays


def output_path(text: str, force: bool) -> Path:
    """The --output file, checked before anything runs: its folder exists and is writable; it exists only with
    --force."""
    what = f"--output {text!r}"
    if not text:
        raise OptionError("--output needs a file name, e.g. --output out.npz")
    path = Path(text)
    if path.is_dir():
        raise OptionError(f"{what} is a folder; give a file name, e.g. {str(path / 'out.npz')!r}")
    if path.exists() and not force:
        raise OptionError(f"{what} exists; pass --force to overwrite it")
    folder = path.parent
    if not folder.is_dir():
        raise OptionError(f"{what}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OptionError(f"{what}: permission denied")
    return path


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save `arrays` as an uncompressed .npz at exactly `path` (np.savez would add '.npz' to other names, and
    output names such as 'file' would clash with its parameters). Written to a temporary file first, so a failed
    write never leaves half a file or destroys the one --force replaces."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, a in arrays.items():
                with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(a), allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _params(node) -> int:
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
                     str(out.dtype) if out else "-", f"{_params(node):,}", f"{cost.macs:,}"))
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
    output = output_path(args.output, args.force) if args.output is not None else None
    inputs = load_inputs(args.input or [])
    # The data fixes the shapes --input-shape does not give (a batch of 4 rows runs as batch 4).
    given = input_shapes(args)
    from_data = {name: a.shape for name, a in inputs.items() if name not in given}
    try:
        graph = accelgen.load(args.model, input_shapes={**from_data, **given})
    except ShapeError as e:
        if not from_data:
            raise
        shown = ", ".join(f"{n}={'x'.join(map(str, s)) or 'scalar'}" for n, s in from_data.items())
        raise ShapeError(f"{e} (shapes taken from the --input data: {shown})") from e
    outputs = accelgen.run(graph, inputs)
    if output is not None:
        try:
            write_npz(output, outputs)
        except OSError as e:
            raise OptionError(f"--output {args.output!r}: cannot write it: {e.strerror or e}") from None
        print(f"wrote {', '.join(outputs)} to {output}")
    else:
        with np.printoptions(precision=6, suppress=True, threshold=200):
            for name, value in outputs.items():
                print(f"{name}: {value.dtype}{list(value.shape)}\n{value}")
    return 0


def census(graph: Graph) -> Counter:
    return Counter(n.op_type for n in graph.nodes)


def cmd_optimize(args) -> int:
    from accelgen.passes import optimize_with_report

    pipeline = args.pipeline
    if args.passes is not None:
        pipeline = [p.strip() for p in args.passes.split(",") if p.strip()]
        if not pipeline:
            raise OptionError(f"--passes {args.passes!r}: give pass names separated by commas, e.g. --passes cse,dce")
    graph = accelgen.load(args.model, input_shapes=input_shapes(args))

    def show(name, g):
        print(f"// IR after {name}\n{g}\n")

    result = optimize_with_report(graph, pipeline, verify_each=args.verify_each, check=args.verify_each,
                                  print_ir_after=show if args.print_ir_after_all else None)
    before, after = census(graph), census(result.graph)
    rows = sorted(set(before) | set(after), key=lambda op: (-after[op], -before[op], op))
    width = max(len(op) for op in rows) if rows else 2
    print(f"{'op':{width}}  before  after")
    for op in rows:
        print(f"{op:{width}}  {before[op]:6d}  {after[op]:5d}")
    print(f"{'total':{width}}  {sum(before.values()):6d}  {sum(after.values()):5d}")
    print("\nrules fired:" if result.fired else "\nno rule fired")
    for rule, count in sorted(result.fired.items()):
        print(f"  {rule}: {count}")
    if args.explain:
        print("\nrules that matched but refused:" if result.refusals else "\nno rule refused a match")
        for refusal in result.refusals:
            print(f"  {refusal}")
    if args.print_ir:
        print(f"\n{result.graph}")
    return 0


def cmd_ops(args) -> int:
    print("\n".join(sorted(accelgen.supported_ops())))
    return 0


# -- quantize -------------------------------------------------------------------------------------------------------
MAX_CHUNK = 256  # calibration runs in batches of up to this many samples


def read_samples(path_text: str, flag: str) -> dict[str, np.ndarray]:
    """A .npz archive of arrays named by graph input, samples stacked along the leading (batch) axis."""
    path = Path(path_text)
    if not path.is_file():
        raise OptionError(f"{flag} {path_text!r}: no such file" if not path.is_dir() else
                          f"{flag} {path_text!r} is a folder, not a .npz file")
    data = _read_arrays(path, f"{flag} {path_text!r}")
    if not isinstance(data, dict):
        raise OptionError(f"{flag} {path_text!r}: give a .npz archive with one array per graph input, named by the "
                          "input (np.savez(path, input_name=samples))")
    if not data:
        raise OptionError(f"{flag} {path_text!r}: the archive holds no arrays")
    counts = {name: a.shape[0] if a.ndim else None for name, a in data.items()}
    if None in counts.values() or len(set(counts.values())) != 1:
        shown = ", ".join(f"{n}: {'x'.join(map(str, a.shape)) or 'scalar'}" for n, a in data.items())
        raise OptionError(f"{flag} {path_text!r}: every array needs the same number of samples along its first "
                          f"axis ({shown})")
    return data


def chunk_batch(*counts: int) -> int:
    """The largest batch up to MAX_CHUNK that divides every sample count, so calibration runs in whole chunks."""
    n = int(np.gcd.reduce(np.array(counts, dtype=np.int64))) if counts else 1
    return max((b for b in range(1, min(n, MAX_CHUNK) + 1) if n % b == 0), default=1)


def load_for_samples(args, *datasets: dict[str, np.ndarray]) -> Graph:
    """The model with its batch set to a chunk of the sample count (--input-shape wins); if the model does not
    take that batch, its own shapes."""
    given = input_shapes(args)
    counts = [next(iter(d.values())).shape[0] for d in datasets]
    batch = chunk_batch(*counts)
    from_data = {name: (batch, *a.shape[1:]) for name, a in datasets[0].items() if name not in given}
    try:
        return accelgen.load(args.model, input_shapes={**from_data, **given})
    except ShapeError as first:
        if not from_data:
            raise
        try:  # the data or the batch does not fit: the model's own shapes, with errors named by the quantizer
            return accelgen.load(args.model, input_shapes=given)
        except ShapeError:
            raise first from None


def quantize_options(args) -> dict:
    from accelgen.quant.config import parse_precision

    options: dict = {}
    if args.precision is not None:
        options["precision"] = "auto" if args.precision == "auto" else parse_precision(args.precision, "--precision")
    for name in ("weight_bits", "activation_bits", "margin"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.per_channel:
        options["per_channel"] = True
    return options


def cmd_quantize(args) -> int:
    from accelgen.quant.config import load_config
    from accelgen.quant.search import search_precision

    json_path = output_path(args.json, args.force) if args.json is not None else None
    save_path = output_path(args.save_config, args.force) if args.save_config is not None else None
    if args.min_agreement is not None and args.min_cosine is not None:
        raise OptionError("give --min-agreement or --min-cosine, not both")
    search = args.search or args.min_agreement is not None or args.min_cosine is not None
    if save_path is not None and not search and args.config is None:
        raise OptionError("--save-config writes the overrides a --search chose (or --config read); give --search")
    calibration = read_samples(args.calibration, "--calibration")
    held_out = read_samples(args.eval, "--eval") if args.eval is not None else None
    graph = accelgen.optimize(load_for_samples(args, calibration, *([held_out] if held_out is not None else [])))
    options = quantize_options(args)
    overrides: dict = {}
    if args.config is not None:
        config = load_config(args.config, graph)
        for note in config.ignored:
            print(f"accelgen: note: {args.config}: ignored {note}", file=sys.stderr)
        if config.precision is not None:
            if "precision" in options:
                raise OptionError(f"--precision {args.precision!r} and the Model Precision of --config "
                                  f"{args.config!r} ({config.precision}) disagree; give one")
            options["precision"] = config.precision
        overrides = config.overrides
    result = None
    if search:
        metric, bound = ("cosine", args.min_cosine) if args.min_cosine is not None else \
            ("agreement", 0.99 if args.min_agreement is None else args.min_agreement)
        result = search_precision(graph, calibration, metric=metric, bound=bound, overrides=overrides,
                                  max_evaluations=args.max_evaluations, **options)
        quantized, overrides = result.graph, result.overrides
    else:
        quantized = accelgen.quantize(graph, calibration, overrides=overrides, **options)
    report = accelgen.quantization_report(graph, quantized, held_out if held_out is not None else calibration)
    if args.print_ir:
        print(f"{quantized}\n")
    print(report.text(tensors=args.report))
    print(f"measured on {'--eval' if held_out is not None else '--calibration'} data")
    if result is not None:
        print(f"\n{result.summary()}\nchosen per-layer settings (use with --config):")
        print(_overrides_text(overrides) or "  (none: every narrower width broke the bound)")
        report.extra["search"] = result.to_dict()
    if json_path is not None:
        _write_text(json_path, report.to_json() + "\n", "--json")
        print(f"wrote the report to {json_path}")
    if save_path is not None:
        start = f"--precision {options['precision']}" if options.get("precision", "auto") != "auto" else "auto precision"
        _write_text(save_path, f"# per-layer settings for accelgen quantize --config (chosen with {start})\n"
                    + _overrides_text(overrides, indent="") + "\n", "--save-config")
        print(f"wrote the per-layer settings to {save_path}")
    return 0


def _overrides_text(overrides: dict, indent: str = "  ") -> str:
    """YAML for `overrides` (flow-style settings, one layer a line), readable back by --config."""
    return "\n".join(f"{indent}{json.dumps(k)}: {{{', '.join(f'{n}: {json.dumps(v)}' for n, v in s.items())}}}"
                     for k, s in overrides.items())


def _write_text(path: Path, text: str, flag: str) -> None:
    try:
        path.write_text(text)
    except OSError as e:
        raise OptionError(f"{flag} {str(path)!r}: cannot write it: {e.strerror or e}") from None


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


if __name__ == "__main__":
    sys.exit(main())
