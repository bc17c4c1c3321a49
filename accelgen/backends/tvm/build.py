"""Targets and the build pipeline: Relax module -> VM executable for the host CPU.

The default CPU pipeline of this TVM release legalizes and fuses but leaves every kernel unscheduled (serial
loops, no vectorization). We run the same legalization and then schedule each fused kernel ourselves
(schedules.py) before the VM lowering passes.
"""

from __future__ import annotations

import os

import tvm
import tvm.topi
from tvm import relax

from accelgen.backends.tvm.schedules import schedule_module
from accelgen.errors import OptionError


def cpu_target(threads: int | None = None) -> tvm.target.Target:
    """The host CPU as an llvm target. Flag strings ("llvm -mcpu=native") are rejected by this release and
    "native" silently falls back to generic, so the CPU name is detected and passed in the dict form."""
    spec = {"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(),
            "num-cores": int(threads or os.cpu_count() or 1)}
    return tvm.target.Target(spec)


def make_target(target: str, threads: int | None = None, cuda_arch: str | None = None) -> tvm.target.Target:
    if target == "tvm-cpu":
        return cpu_target(threads)
    if target == "tvm-cuda":
        from accelgen.backends.tvm.cuda import cuda_target

        return cuda_target(cuda_arch, host=cpu_target(threads))
    raise OptionError(f"target {target!r} is not a TVM target (tvm-cpu and tvm-cuda are)")


def _fast(topi_fn):
    return lambda bb, call: bb.call_te(topi_fn, call.args[0])


# exp/erf/tanh as TOPI's polynomial forms, which vectorize (libm calls do not); their error (~1e-7 relative) is far
# inside the 1e-4 agreement we test. The CPU pipeline is otherwise TVM's own.
FAST_MATH = {"relax.exp": _fast(tvm.topi.fast_exp), "relax.erf": _fast(tvm.topi.fast_erf),
             "relax.tanh": _fast(tvm.topi.fast_tanh)}


def legalize(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """Relax -> fused, unscheduled TIR kernels called from Relax (TVM's CPU legalization with our fast math)."""
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    with target:
        legal = [relax.transform.LegalizeOps(FAST_MATH)] + cpu.legalize_passes(target)[1:]
        return tvm.transform.Sequential(cpu.library_dispatch_passes(target) + legal)(mod)


def _finalize(target: tvm.target.Target):
    """The rest of TVM's CPU pipeline, for a module whose kernels are already scheduled."""
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    @tvm.transform.module_pass(opt_level=0)
    def run(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        with target:
            return tvm.transform.Sequential(cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target))(mod)

    return run


def build(mod: tvm.IRModule, target: tvm.target.Target, schedule: bool = True, tuner=None):
    """Compile to a relax VM executable (exportable with .export_library). With a tuner (tune.Tuner), each kernel
    takes our schedule or the tuned one, whichever measured faster."""
    legal = legalize(mod, target)
    scheduled = schedule_module(legal.clone(), target) if schedule else legal
    if tuner is not None:
        scheduled = tuner.apply(legal, scheduled, target)
    return tvm.compile(scheduled, target=target, relax_pipeline=_finalize(target))
