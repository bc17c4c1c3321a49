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

__all__ = ["TvmModule", "compile", "estimate", "load_compiled"]

OUR_FILES = (LIBRARY, MANIFEST, RUNNER, "kernels.cu", "tuning")


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
    from accelgen.backends.tvm.fixed_lower import fixed_spec
    from accelgen.ir.types import FixedType

    return [{"name": v.name, "shape": list(v.shape),
             **(fixed_spec(v) if isinstance(v.dtype, FixedType) else {"dtype": str(np.dtype(v.dtype.np_dtype))})}
            for v in values]


def compile(graph: Graph, target: str = "tvm-cpu", out_dir=None, force: bool = False, threads: int | None = None,
            tune_trials: int | None = None, **options) -> TvmModule:
    """Optimize `graph`, lower it to Relax, build for `target` and export to `out_dir`."""
    import accelgen

    cuda_arch = options.pop("cuda_arch", None) if target == "tvm-cuda" else None
    if options:
        raise OptionError(f"option(s) {', '.join(sorted(options))} mean nothing for target {target!r}")
    if target not in ("tvm-cpu", "tvm-cuda"):
        raise OptionError(f"target {target!r} is not a TVM target (tvm-cpu and tvm-cuda are)")
    if tune_trials and target == "tvm-cuda":
        raise OptionError("--tune-trials: MetaSchedule tuning is available for tvm-cpu only in this version "
                          "(tvm-cuda kernels take TVM's DLight GPU schedules)")
    if tune_trials is not None and tune_trials < 1:
        raise OptionError(f"tune_trials must be >= 1, got {tune_trials}")
    if threads is not None and threads < 1:
        raise OptionError(f"threads must be >= 1, got {threads}")
    set_threads(threads)  # before tvm loads, so the thread pool starts with this size

    from accelgen.backends.tvm.build import build, make_target
    from accelgen.backends.tvm.fixed_lower import is_fixed_graph
    from accelgen.backends.tvm.lower import check_lowerable, to_relax
    from accelgen.backends.tvm.schedules import UNSCHEDULED, simd_lanes
    from accelgen.ir.types import FixedType

    # a quantized graph is compiled as quantized: each node carries its precision decisions, which re-fusing
    # (optimize) would not keep
    optimized = graph if is_fixed_graph(graph) else accelgen.optimize(graph)
    check_lowerable(optimized)  # refuse before touching the output folder
    if target == "tvm-cuda" and any(isinstance(v.dtype, FixedType) for v in optimized.values()):
        raise OptionError("quantized (fixed-point) graphs compile for tvm-cpu only in this version")
    if tune_trials:
        from accelgen.backends.tvm.tune import Tuner, check_tuning_dependencies

        check_tuning_dependencies()
    tvm_target = make_target(target, threads, cuda_arch)  # refuses a bad cuda_arch before writing anything
    out = _prepare_out_dir(out_dir, force)
    target_info = {"name": target, "kind": str(tvm_target.kind.name), "tvm": _tvm_version()}
    if target == "tvm-cuda":
        from accelgen.backends.tvm import cuda

        UNSCHEDULED.clear()
        executable = cuda.build_cuda(to_relax(optimized, lanes=0), tvm_target)
        (out / cuda.SOURCE).write_text(cuda.kernel_source(executable))
        target_info.update(arch=str(tvm_target.attrs["arch"]), mcpu=str(tvm_target.host.attrs.get("mcpu", "")),
                           nvcc_check=cuda.check_with_nvcc(out / cuda.SOURCE, str(tvm_target.attrs["arch"])))
        tuner = None
    else:
        tuner = Tuner(out, tune_trials, threads) if tune_trials else None
        executable = build(to_relax(optimized, lanes=simd_lanes(tvm_target)), tvm_target, tuner=tuner)
        target_info["mcpu"] = str(tvm_target.attrs.get("mcpu", ""))
    executable.export_library(str(out / LIBRARY))
    manifest = {
        "format": FORMAT, "accelgen_version": accelgen.__version__, "graph": graph.name,
        "target": target_info,
        "threads": threads, "inputs": _specs(optimized.inputs), "outputs": _specs(optimized.outputs),
        "unscheduled_kernels": list(UNSCHEDULED),  # kept TVM's plain loops: correct, slower
        "tuning": tuner.summary() if tuner else None,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (out / RUNNER).write_text(RUNNER_SOURCE)
    module = TvmModule(out, manifest)
    if target == "tvm-cpu":
        module.load()  # a CUDA library loads on first use: this machine may have no GPU
    return module


def estimate(graph: Graph, target: str = "tvm-cpu", **options):
    """Per-op roofline estimate next to the measured profile (roofline.py); tvm is imported only now."""
    from accelgen.backends.tvm.roofline import estimate as roofline

    return roofline(graph, target=target, **options)


def _tvm_version() -> str:
    import tvm

    return tvm.__version__
