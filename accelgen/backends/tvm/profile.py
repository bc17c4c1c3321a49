"""Measured time per IR op group: build the graph as `compile` does, record every kernel call the VM makes, time
each kernel on the arguments it really received, and attribute it to the IR ops it was fused from.

Attribution: before FuseOps, each TIR call in `main` belongs to the IR node whose output binding (named after the
IR value) closes it; FuseOps turns runs of those calls into one fused function whose inner calls name the same
kernels, which we check while walking both lists in order; FuseTIR keeps the order. This TVM release's VM has no
profiler, so each recorded call is timed with the kernel library's time_evaluator (no Python in the loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from accelgen.backends.tvm.lower import _safe, to_relax
from accelgen.ir.graph import Graph


@dataclass
class NodeGroup:
    nodes: list  # IR nodes whose work shares kernels
    kernels: list[str] = field(default_factory=list)  # kernel calls, in order
    seconds: float = 0.0  # measured, summed over the calls
    calls: list[int] = field(default_factory=list)  # indices into the module's kernel calls
    funcs: list = field(default_factory=list)  # the unscheduled kernel (PrimFunc) of each of `calls`
    executed: list[bool] = field(default_factory=list)  # per call: False when the VM made it a view (measured only)


def _calls(func: relax.Function) -> list[tuple[str, str]]:
    """(bound var name, callee name) of every call to a module function in `func`, in order."""
    out = []
    for block in func.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if not isinstance(value, relax.Call):
                continue
            if isinstance(value.op, tvm.ir.GlobalVar):
                out.append((binding.var.name, value.op.name_hint))
            elif getattr(value.op, "name", "") == "relax.call_tir":
                out.append((binding.var.name, value.args[0].name_hint))
    return out


def _node_ranges(graph: Graph, calls) -> list[tuple[int, int]]:
    """For each pre-fusion call, the range of IR node indices it belongs to (inclusive)."""
    closing = {_safe(n.outputs[0].name, 0): i for i, n in enumerate(graph.nodes)}
    ranges, pending, lo = [], 0, 0
    for var, _ in calls:
        pending += 1
        j = closing.get(var)
        if j is not None and j >= lo:
            ranges += [(lo, j)] * pending
            pending, lo = 0, j + 1
    last = len(graph.nodes) - 1
    ranges += [(min(lo, last), last)] * pending
    return ranges


def _fused_ranges(pre_calls, ranges, fused: tvm.IRModule) -> list[tuple[int, int]] | None:
    """Node range of each call in the fused module's main, or None if the groups cannot be matched. A group need
    not be contiguous (a key's transpose fuses with its reshape emitted earlier), so each inner call takes the first
    not yet matched pre-fusion call of that kernel, after the group's previous one."""
    out, used = [], [False] * len(pre_calls)
    for _, callee in _calls(fused["main"]):
        func = fused[callee]
        inner = [name for _, name in _calls(func)] if isinstance(func, relax.Function) else [callee]
        taken, start = [], 0
        for name in inner:
            i = next((i for i in range(start, len(pre_calls)) if not used[i] and pre_calls[i][1] == name), None)
            if i is None:
                return None
            used[i] = True
            taken.append(i)
            start = i + 1
        out.append((min(ranges[i][0] for i in taken), max(ranges[i][1] for i in taken)))
    return out if all(used) else None


def kernel_node_ranges(graph: Graph, target, lanes: int):
    """The legalized, fused module and the IR node range of each kernel call in its main, in order."""
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    from accelgen.backends.tvm.build import FAST_MATH

    mod = to_relax(graph, lanes=lanes)
    with target:
        passes = cpu.library_dispatch_passes(target) + [relax.transform.LegalizeOps(FAST_MATH)]
        passes += [relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant()]
        pre = tvm.transform.Sequential(passes)(mod)
        fused = relax.transform.FuseOps()(pre)
        final = relax.transform.FuseTIR()(fused)
    pre_calls = _calls(pre["main"])
    ranges = _fused_ranges(pre_calls, _node_ranges(graph, pre_calls), fused)
    final_calls = [name for _, name in _calls(final["main"])]
    if ranges is None or len(ranges) != len(final_calls):
        ranges = [(0, len(graph.nodes) - 1)] * len(final_calls)  # unmatched: one row for the whole graph
    return final, list(zip(final_calls, ranges))


def timed_calls(lib, inputs, repeat: int = 10) -> list[tuple[str, float]]:
    """(kernel, median seconds) of every kernel call `main` makes on `inputs`, in order. `lib` is a jitted VM
    module; each call is recorded with copies of its arguments, then timed alone on them."""
    vm = relax.VirtualMachine(lib, tvm.cpu())
    kernels_lib = lib.imports[0]
    calls = []

    def instrument(func, symbol, before, ret, *call_args):
        name = str(symbol)
        if before and not name.startswith("vm.builtin."):
            calls.append((name, [tvm.runtime.tensor(a.numpy(), tvm.cpu()) if hasattr(a, "numpy") else a
                                 for a in call_args]))
        return 0

    vm.set_instrument(instrument)
    vm["main"](*inputs)
    timed = []
    for name, call_args in calls:
        timer = kernels_lib.time_evaluator(name, tvm.cpu(), number=1, repeat=repeat, min_repeat_ms=2)
        timed.append((name, float(np.median(timer(*call_args).results))))
    return timed


def profile_by_node(graph: Graph, target, repeat: int = 10, seed: int = 0) -> list[NodeGroup]:
    """Groups of IR nodes in graph order, each with its kernel calls and (repeat > 0) their measured time."""
    from accelgen.backends.tvm.build import _finalize
    from accelgen.backends.tvm.schedules import schedule_module, simd_lanes

    legal, call_ranges = kernel_node_ranges(graph, target, simd_lanes(target))
    scheduled = schedule_module(legal.clone(), target)
    groups = _merge(graph, call_ranges)
    for group in groups:
        group.funcs = [legal[call_ranges[i][0]] for i in group.calls]
    if repeat <= 0:
        return groups
    lib = tvm.compile(scheduled, target=target, relax_pipeline=_finalize(target)).jit()
    rng = np.random.default_rng(seed)
    inputs = [tvm.runtime.tensor(_sample(v, rng), tvm.cpu()) for v in graph.inputs]
    # the executed calls are a subsequence of call_ranges, in the same order (reshapes became views)
    position = 0
    by_call = [0.0] * len(call_ranges)
    executed = [False] * len(call_ranges)
    for name, seconds in timed_calls(lib, inputs, repeat):
        while position < len(call_ranges) and call_ranges[position][0] != name:
            position += 1
        if position == len(call_ranges):
            break
        by_call[position], executed[position] = seconds, True
        position += 1
    for group in groups:
        group.kernels = [call_ranges[i][0] for i in group.calls if executed[i]]
        group.executed = [executed[i] for i in group.calls]
        group.seconds = sum(by_call[i] for i in group.calls)
    return groups


def _sample(value, rng) -> np.ndarray:
    dtype = np.dtype(value.dtype.np_dtype)
    if dtype.kind == "f":
        return rng.standard_normal(value.shape).astype(dtype)
    return rng.integers(0, 2, value.shape).astype(dtype)


def _merge(graph: Graph, call_ranges) -> list[NodeGroup]:
    """Merge calls with overlapping node ranges into rows; nodes no kernel covers get a row of their own."""
    spans: list[list] = []  # [lo, hi, call indices]
    for i, (_, (lo, hi)) in enumerate(call_ranges):
        if spans and lo <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], hi)
            spans[-1][2].append(i)
        else:
            spans.append([lo, hi, [i]])
    groups, next_node = [], 0
    for lo, hi, calls in spans:
        for j in range(next_node, lo):
            groups.append(_group([graph.nodes[j]], []))
        groups.append(_group(graph.nodes[lo:hi + 1], calls))
        next_node = hi + 1
    for j in range(next_node, len(graph.nodes)):
        groups.append(_group([graph.nodes[j]], []))
    return groups


def _group(nodes, calls) -> NodeGroup:
    return NodeGroup(nodes=list(nodes), calls=list(calls))
