"""prune: zero the least important weights (magnitude, N:M or block structure, optionally with OBS reconstruction
from calibration data), report the sparsity and accuracy, and write the pruned model as ONNX."""

from __future__ import annotations

from pathlib import Path

import accelgen
from accelgen.cli.common import input_shapes
from accelgen.cli.quantize import load_for_samples, read_samples
from accelgen.errors import OptionError
from accelgen.passes.prune import prune_report

CALIBRATION_CAVEAT = ("(errors measured on the calibration samples the reconstruction fitted; with few samples they "
                      "flatter the pruned model: check on held-out data, e.g. accelgen quantize/run)")


def add_prune_flags(s) -> None:
    s.add_argument("--sparsity", type=float, metavar="S", help="fraction of weights zeroed, in [0, 1) (default 0.75; "
                   "--method nm: fixed by N:M)")
    s.add_argument("--method", default="magnitude", choices=("magnitude", "nm", "block"), help="what is removed")
    s.add_argument("--n-m", default="2:4", metavar="N:M", help="--method nm: keep N of every M inputs (default 2:4)")
    s.add_argument("--block", default="4x4", metavar="RxC", help="--method block: block of the [inputs, outputs] "
                   "weight matrix (default 4x4)")
    s.add_argument("--scope", default="global", choices=("global", "layer"),
                   help="magnitude/block: rank weights over all layers (global) or within each layer")
    s.add_argument("--heads", action="store_true", help="remove whole attention heads (a --sparsity fraction of them)")
    s.add_argument("--calibration", metavar="DATA.npz", help="samples for second-order reconstruction (and the report)")
    s.add_argument("--layers", metavar="A,B,...", help="prune only these layers (node names; node.Wq for one "
                   "attention projection)")
    s.add_argument("--out", metavar="PRUNED.onnx", help="write the pruned model as ONNX")
    s.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def _pair(text: str, flag: str, seps: str) -> tuple[int, int]:
    parts = text.replace(seps[0], " ").replace(seps[1], " ").split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise OptionError(f"{flag} {text!r}: expected two integers, e.g. {'2:4' if flag == '--n-m' else '4x4'}")
    return int(parts[0]), int(parts[1])


def add_compile_prune_flags(s) -> None:
    """compile/estimate: prune the float model first (reconstructing from --calibration when given)."""
    s.add_argument("--prune", type=float, metavar="S", help="prune first: fraction of weights zeroed, in [0, 1) "
                   "(with --prune-method nm the N:M ratio fixes it)")
    s.add_argument("--prune-method", choices=("magnitude", "nm", "block"), help="what pruning removes (default "
                   "magnitude; giving it turns pruning on)")
    s.add_argument("--prune-n-m", default="2:4", metavar="N:M", help="--prune-method nm: keep N of every M inputs")
    s.add_argument("--prune-block", default="4x4", metavar="RxC", help="--prune-method block: block of the "
                   "[inputs, outputs] weight matrix")


def _request(method: str, sparsity, n_m_text: str, block_text: str, heads: bool, flags: tuple[str, str, str]):
    """(sparsity, n_m, block) from the flags; `flags` names the sparsity, N:M and block flags for errors."""
    n_m = _pair(n_m_text, flags[1], ":x")
    block = _pair(block_text, flags[2], "x:")
    if method == "nm" and not heads:
        implied = 1 - n_m[0] / n_m[1] if n_m[1] else 0.0
        if sparsity is not None and abs(sparsity - implied) > 1e-9:
            raise OptionError(f"{flags[0]} {sparsity} contradicts {flags[1]} {n_m_text} (which zeroes "
                              f"{implied:.0%}); give one")
        sparsity = 0.0 if sparsity is None else sparsity
    return (0.75 if sparsity is None else sparsity), n_m, block


def prune_for_backend(args, graph):
    """The graph compile/estimate work on: pruned first when --prune/--prune-method is given (the pruning report
    goes to the terminal), else unchanged."""
    if args.prune is None and args.prune_method is None:
        return graph
    method = args.prune_method or "magnitude"
    sparsity, n_m, block = _request(method, args.prune, args.prune_n_m, args.prune_block, False,
                                    ("--prune", "--prune-n-m", "--prune-block"))
    calibration = read_samples(args.calibration, "--calibration") if getattr(args, "calibration", None) else None
    dense = accelgen.optimize(graph)
    pruned = accelgen.prune(dense, sparsity=sparsity, method=method, n_m=n_m, block=block, calibration=calibration)
    print(prune_report(dense, pruned, calibration).text())
    if calibration is not None:
        print(CALIBRATION_CAVEAT)
    return pruned


def cmd_prune(args) -> int:
    from accelgen.frontend.onnx.exporter import export

    sparsity, n_m, block = _request(args.method, args.sparsity, args.n_m, args.block, args.heads,
                                    ("--sparsity", "--n-m", "--block"))
    out = Path(args.out) if args.out is not None else None
    if out is not None:
        if out.is_dir():
            raise OptionError(f"--out {args.out!r} is a folder; give a file name such as pruned.onnx")
        if out.exists() and not args.force:
            raise OptionError(f"--out {args.out!r} exists; pass --force to overwrite it")
        if not out.parent.is_dir():
            raise OptionError(f"--out {args.out!r}: the folder {str(out.parent)!r} does not exist")
    calibration = read_samples(args.calibration, "--calibration") if args.calibration is not None else None
    graph = load_for_samples(args, calibration) if calibration is not None else \
        accelgen.load(args.model, input_shapes=input_shapes(args))
    graph = accelgen.optimize(graph)
    pruned = accelgen.prune(graph, sparsity=sparsity, method=args.method, n_m=n_m, block=block,
                            calibration=calibration, layers=args.layers, scope=args.scope, heads=args.heads)
    print(prune_report(graph, pruned, calibration).text())
    print(CALIBRATION_CAVEAT if calibration is not None else
          "(give --calibration to measure the output error and to reconstruct the remaining weights)")
    if out is not None:
        export(pruned, out, force=args.force)
        print(f"wrote the pruned model to {out}")
    return 0
