"""quantize: precision inference from calibration data, with the accuracy report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import accelgen
from accelgen.cli.common import input_shapes, output_path, read_arrays
from accelgen.errors import OptionError, ShapeError
from accelgen.ir.graph import Graph

MAX_CHUNK = 256  # calibration runs in batches of up to this many samples


def read_samples(path_text: str, flag: str) -> dict[str, np.ndarray]:
    """A .npz archive of arrays named by graph input, samples stacked along the leading (batch) axis."""
    path = Path(path_text)
    if not path.is_file():
        raise OptionError(f"{flag} {path_text!r}: no such file" if not path.is_dir() else
                          f"{flag} {path_text!r} is a folder, not a .npz file")
    data = read_arrays(path, f"{flag} {path_text!r}")
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


