"""Apache TVM backend (Relax): CPU kernels. The only code in accelgen that imports tvm.

    m = compile(graph, target="tvm-cpu", out_dir="build/mlp")   # optimizes, lowers, builds, exports
    m.run({"input": x}); m.benchmark(); print(m.summary())
    m = load_compiled("build/mlp")                               # later, in another process

tvm is imported only when compile/load_compiled run, so TVM_NUM_THREADS can still be set first.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from accelgen.backends.tvm.module import (
    FORMAT,
    LIBRARY,
    MANIFEST,
    RUNNER,
    RUNNER_SOURCE,
    TvmModule,
    load_compiled,
    set_threads,
)
from accelgen.errors import OptionError
from accelgen.ir.graph import Graph

__all__ = ["TvmModule", "compile", "load_compiled"]

OUR_FILES = (LIBRARY, MANIFEST, RUNNER)


def _prepare_out_dir(out_dir, force: bool) -> Path:
    if out_dir is None:
        raise OptionError("out_dir is required: the folder to write the TVM library into")
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise OptionError(f"{out} exists and is not a folder")
        if any(out.iterdir()) and not force:
            raise OptionError(f"{out} already exists; pass force=True (--force) to replace the files accelgen wrote")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _specs(values) -> list[dict]:
    return [{"name": v.name, "shape": list(v.shape), "dtype": str(np.dtype(v.dtype.np_dtype))} for v in values]


def compile(graph: Graph, target: str = "tvm-cpu", out_dir=None, force: bool = False, threads: int | None = None,
            tune_trials: int | None = None, **options) -> TvmModule:
    """Optimize `graph`, lower it to Relax, build for `target` and export to `out_dir`."""
    import accelgen

    if options:
        raise OptionError(f"option(s) {', '.join(sorted(options))} mean nothing for target {target!r}")
    if tune_trials:
        raise OptionError("--tune-trials: MetaSchedule tuning is not implemented yet in the TVM backend")
    if threads is not None and threads < 1:
        raise OptionError(f"threads must be >= 1, got {threads}")
    if target != "tvm-cpu":
        raise OptionError(f"target {target!r} is not supported by this version of the TVM backend (tvm-cpu is)")
    set_threads(threads)  # before tvm loads, so the thread pool starts with this size

    from accelgen.backends.tvm.build import build, make_target
    from accelgen.backends.tvm.lower import check_lowerable, to_relax
    from accelgen.backends.tvm.schedules import UNSCHEDULED, simd_lanes

    optimized = accelgen.optimize(graph)
    check_lowerable(optimized)  # refuse before touching the output folder
    out = _prepare_out_dir(out_dir, force)
    tvm_target = make_target(target, threads)
    executable = build(to_relax(optimized, lanes=simd_lanes(tvm_target)), tvm_target)
    executable.export_library(str(out / LIBRARY))
    manifest = {
        "format": FORMAT, "accelgen_version": accelgen.__version__, "graph": graph.name,
        "target": {"name": target, "kind": "llvm", "mcpu": str(tvm_target.attrs.get("mcpu", "")),
                   "tvm": _tvm_version()},
        "threads": threads, "inputs": _specs(optimized.inputs), "outputs": _specs(optimized.outputs),
        "unscheduled_kernels": list(UNSCHEDULED),  # kept TVM's plain loops: correct, slower
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (out / RUNNER).write_text(RUNNER_SOURCE)
    return TvmModule(out, manifest)


def _tvm_version() -> str:
    import tvm

    return tvm.__version__
