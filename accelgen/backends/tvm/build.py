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


def make_target(target: str, threads: int | None = None) -> tvm.target.Target:
    if target == "tvm-cpu":
        return cpu_target(threads)
    raise OptionError(f"target {target!r} is not supported by this version of the TVM backend (tvm-cpu is)")


def _fast(topi_fn):
    return lambda bb, call: bb.call_te(topi_fn, call.args[0])


# exp/erf/tanh as TOPI's polynomial forms, which vectorize (libm calls do not); their error (~1e-7 relative) is far
# inside the 1e-4 agreement we test. The CPU pipeline is otherwise TVM's own.
FAST_MATH = {"relax.exp": _fast(tvm.topi.fast_exp), "relax.erf": _fast(tvm.topi.fast_erf),
             "relax.tanh": _fast(tvm.topi.fast_tanh)}


def _pipeline(target: tvm.target.Target, schedule: bool):
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    @tvm.transform.module_pass(opt_level=0)
    def run(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        with target:
            legalize = [relax.transform.LegalizeOps(FAST_MATH)] + cpu.legalize_passes(target)[1:]
            mod = tvm.transform.Sequential(cpu.library_dispatch_passes(target) + legalize)(mod)
            if schedule:
                mod = schedule_module(mod, target)
            return tvm.transform.Sequential(cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target))(mod)

    return run


def build(mod: tvm.IRModule, target: tvm.target.Target, schedule: bool = True):
    """Compile to a relax VM executable (exportable with .export_library)."""
    return tvm.compile(mod, target=target, relax_pipeline=_pipeline(target, schedule))
