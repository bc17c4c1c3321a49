"""`tvm-cuda`: CUDA kernels from the same Relax lowering, scheduled by TVM's DLight GPU rules.

Code generation needs no GPU. What this TVM release exports is the CUDA C++ source of the kernels inside
`model.so` (next to the host code); the TVM runtime compiles it when the library is loaded, through
`tvm_callback_cuda_compile` (NVRTC from the cuda-python package, or nvcc with TVM_CUDA_COMPILE_MODE=nvcc).
So running needs an NVIDIA GPU with its driver and one of those compilers; `load_compiled` checks both first.
At build time, when nvcc is on this machine, the kernels are also compiled once with it (`kernels.cu` ->
fatbin, then discarded) so that a source nvcc rejects is caught here rather than on the GPU machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import tvm

from accelgen.errors import InvalidModelError, ModelLoadError, OptionError

DEFAULT_ARCH = "sm_80"
SOURCE = "kernels.cu"


def cuda_target(arch: str | None, host) -> tvm.target.Target:
    arch = arch or DEFAULT_ARCH
    if not re.fullmatch(r"sm_\d{2,3}[a-z]?", arch):
        raise OptionError(f"cuda_arch must look like sm_80 (compute capability), got {arch!r}")
    return tvm.target.Target({"kind": "cuda", "arch": arch}, host=host)


def _finalize(target):
    from tvm.relax.backend.cuda import pipeline as cu

    @tvm.transform.module_pass(opt_level=0)
    def run(mod, _ctx):
        with target:
            return tvm.transform.Sequential(cu.dataflow_lower_passes(target) + cu.finalize_passes(target))(mod)

    return run


def build_cuda(mod: tvm.IRModule, target):
    """Legalize as for the CPU, schedule every kernel with DLight's GPU rules (thread binding is what makes a
    kernel valid on a GPU; Fallback covers what the specific rules do not), then lower for the CUDA VM."""
    from tvm.s_tir import dlight as dl

    from accelgen.backends.tvm.build import legalize

    legal = legalize(mod, target)
    with target:
        scheduled = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(),
                                            dl.gpu.GeneralReduction(), dl.gpu.Fallback())(legal)
    try:
        return tvm.compile(scheduled, target=target, relax_pipeline=_finalize(target))
    except (RuntimeError, ValueError, TypeError) as e:  # TVM reports an unschedulable kernel as a verification error deep in its passes
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise InvalidModelError(f"TVM cannot build this graph for tvm-cuda: {first}") from None


def kernel_source(executable) -> str:
    """The CUDA C++ source of every kernel in the built library."""
    sources = []

    def walk(module):
        if module.kind == "cuda":
            sources.append(module.inspect_source("cuda"))
        for child in module.imports:
            walk(child)

    walk(executable.mod)
    return "\n\n".join(sources)


def find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    candidate = Path(home) / "bin" / "nvcc"
    return str(candidate) if candidate.is_file() else None


def check_with_nvcc(source_path: Path, arch: str) -> str:
    """Compile the kernels once with nvcc if it is here; returns what happened, for the manifest."""
    nvcc = find_nvcc()
    if nvcc is None:
        return "skipped: nvcc not found (the source is compiled when the library is loaded on a GPU machine)"
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([nvcc, "--fatbin", f"-arch={arch}", "-O3", "-o", str(Path(tmp) / "k.fatbin"),
                               str(source_path)], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise InvalidModelError(f"nvcc rejected the generated CUDA kernels ({source_path}):\n"
                                f"{done.stderr.strip()[-2000:]}")
    return f"passed: {nvcc} --fatbin -arch={arch}"


def cuda_device():
    """The first CUDA device, after checking everything loading a tvm-cuda library needs, with a clear error."""
    import tvm.backend.cuda

    if not tvm.runtime.enabled("cuda") or not tvm.cuda(0).exist:
        raise ModelLoadError("no CUDA device: this library holds tvm-cuda kernels and needs an NVIDIA GPU with its "
                             "driver (TVM's CUDA runtime did not find one on this machine); compile with "
                             "--target tvm-cpu to run here")
    import tvm.support.nvcc

    mode = os.environ.get("TVM_CUDA_COMPILE_MODE", "nvrtc").lower()
    if mode == "nvcc" and find_nvcc() is None:
        raise ModelLoadError("nvcc not found: TVM_CUDA_COMPILE_MODE=nvcc compiles the kernels with nvcc when the "
                             "library loads; install the CUDA toolkit or put nvcc on PATH (or unset "
                             "TVM_CUDA_COMPILE_MODE to use NVRTC from cuda-python)")
    if mode != "nvcc" and importlib.util.find_spec("cuda") is None:
        if find_nvcc() is None:
            raise ModelLoadError("no CUDA compiler: the kernels are compiled when the library loads, with NVRTC "
                                 "(pip install cuda-python) or nvcc (CUDA toolkit, TVM_CUDA_COMPILE_MODE=nvcc); "
                                 "neither was found")
        os.environ["TVM_CUDA_COMPILE_MODE"] = "nvcc"  # NVRTC's bindings are absent but nvcc is here
    return tvm.cuda(0)

