"""What one of our scheduled CPU kernels costs, from its TIR and the decisions our schedules make (schedules.py).

A roofline with a single peak FLOP/s misses by 2-7x on kernels whose shape keeps our schedule off that peak: a
matmul with one output row has one accumulator per vector, so every FMA waits for the previous one (latency, not
throughput); a convolution's three short reduction loops cost more per FMA than a matmul's long one; a softmax is
exp and divide work, not bytes. So each kernel is counted the way our schedule runs it:

- contraction blocks (matmul, convolution): register blocks of `rows x vectors` accumulators (schedules.
  register_tile); one reduction step of a block issues that many vector FMAs, and takes
      max(FMA latency, accumulators x FMA issue time of the class)
  (a dependency chain per accumulator, or the FMA ports). Classes: one reduction loop (matmul) or several (conv);
- other blocks: vector instructions (float operations in the block's expression, per element, divided by the
  lanes when our schedule vectorizes the block); a max/sum reduction our schedule leaves scalar is one dependency
  chain (FMA latency per element), a vectorized one a chain per `lanes` elements;
- memory: the kernel's arguments, in bytes, at the cache or memory bandwidth;
    time = max(compute, memory) / parallel cores + call overhead.
The machine constants (FMA latency, FMA issue time per class, time per vector instruction, bandwidths, overhead)
are measured by micro-benchmarks of our own schedules on shapes of their own (roofline.machine_peaks); this module
only counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tvm import s_tir

from accelgen.backends.tvm.schedules import (
    PARALLEL_MIN_WORK,
    _is_contraction,
    _iter_kinds,
    reduction_vectorized,
    register_tile,
)

COUNTED_OPS = {"Add", "Sub", "Mul", "Max", "Min", "Select", "Call", "FloorDiv", "FloorMod"}


@dataclass
class KernelWork:
    """Counts for one kernel: the inputs of `kernel_seconds`."""

    fma_steps: dict = field(default_factory=dict)  # class -> list of (register-block steps, accumulators)
    vector_ops: float = 0.0  # independent vector (or scalar) instructions
    div_ops: float = 0.0  # vector (or scalar) divisions: several times an add's cost
    gathers: float = 0.0  # elements loaded one by one into a vector (strided reads of a transpose)
    reduce_vector_steps: float = 0.0  # steps of max/sum reductions our schedule vectorizes (rfactor)
    reduce_scalar_steps: float = 0.0  # elements of max/sum reductions it leaves scalar
    bytes: int = 0  # arguments read and written
    parallel_work: int = 0  # largest loop nest, to decide whether the schedule runs it on all cores
    empty: bool = False  # a reshape: the VM turns it into a view and never calls it


def count_ops(expr, inner_var: str | None = None) -> dict:
    """Arithmetic operations in an expression, by kind ("div" or "op"), and "gather": loads whose contiguous (last)
    index does not follow the innermost loop while another index does (a transpose's strided reads). Buffer index
    arithmetic is not counted."""
    counts = {"op": 0, "div": 0, "gather": 0}
    _count(expr, counts, inner_var)
    return counts


def _count(expr, counts: dict, inner_var: str | None) -> None:
    kind = type(expr).__name__
    if kind in ("TensorLoad", "BufferLoad"):
        indices = [str(i) for i in expr.indices]
        if inner_var and indices and inner_var not in indices[-1] and any(inner_var in i for i in indices[:-1]):
            counts["gather"] += 1
        return
    if kind in ("IntImm", "FloatImm", "Var", "StringImm"):
        return
    if kind == "Div":
        counts["div"] += 1
    elif kind in COUNTED_OPS:
        counts["op"] += 1
    for attr in ("a", "b", "value", "condition", "true_value", "false_value"):
        child = getattr(expr, attr, None)
        if child is not None and hasattr(child, "same_as"):
            _count(child, counts, inner_var)
    for arg in getattr(expr, "args", None) or []:
        _count(arg, counts, inner_var)


def _extents(block) -> list[int]:
    return [int(iv.dom.extent) for iv in block.iter_vars]


def _product(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _buffer_bytes(buffer) -> int:
    dtype = str(buffer.dtype)
    bits = int("".join(c for c in dtype if c.isdigit()) or 32)
    return _product(int(d) for d in buffer.shape) * max(bits // 8, 1)


def kernel_work(func, lanes: int) -> KernelWork:
    """Count the work of one legalized (unscheduled) kernel as our schedule will run it."""
    sch = s_tir.Schedule(func)
    root = sch.get_sblock("root")
    internal = {str(b.name) for b in sch.get(root).alloc_buffers}
    work = KernelWork()
    blocks = sch.get_child_blocks(root)
    names = [str(sch.get(b).name_hint) for b in blocks]
    work.empty = all(n.startswith("T_reshape") for n in names)
    arguments = {}
    for block_rv in blocks:
        block = sch.get(block_rv)
        for region in list(block.reads) + list(block.writes):
            if str(region.source.name) not in internal:
                arguments[str(region.source.name)] = _buffer_bytes(region.source)
        kinds, extents = _iter_kinds(sch, block_rv), _extents(block)
        elements = _product(extents)
        work.parallel_work = max(work.parallel_work, elements)
        value = getattr(block.body, "value", None)
        inner_var = str(block.iter_vars[-1].var) if block.iter_vars else None
        ops = count_ops(value, inner_var) if value is not None else {"op": 1, "div": 0, "gather": 0}
        if 2 in kinds and _is_contraction(sch, block_rv):
            spatial = [e for e, k in zip(extents, kinds) if k == 0]
            rows, vec, col_vectors = register_tile(spatial, lanes)
            accumulators = max(rows, 1) * max(col_vectors, 1)
            steps = elements / (accumulators * max(vec, 1))
            kind = "conv" if kinds.count(2) > 1 else "matmul"
            work.fma_steps.setdefault(kind, []).append((steps, accumulators))
        elif 2 in kinds:
            if reduction_vectorized(kinds, extents, lanes):
                work.reduce_vector_steps += elements / lanes + _product(extents[:-1]) * lanes
            else:
                work.reduce_scalar_steps += elements
        else:
            width = lanes if extents and extents[-1] % lanes == 0 else 1
            work.vector_ops += elements * max(ops["op"], 1) / width
            work.div_ops += elements * ops["div"] / width
            work.gathers += elements * ops["gather"]
    work.bytes = sum(arguments.values())
    return work


def parallel_cores(work: KernelWork, cores: int) -> int:
    """Cores our schedule spreads this kernel over (schedules.PARALLEL_MIN_WORK)."""
    return cores if cores > 1 and work.parallel_work >= PARALLEL_MIN_WORK else 1


def compute_seconds(work: KernelWork, machine: dict) -> float:
    """The compute side of one kernel on one core."""
    ns = 1e-9
    latency = machine["fma_latency_ns"] * ns
    fma = 0.0
    for kind, blocks in work.fma_steps.items():
        issue = machine[f"fma_issue_{kind}_ns"] * ns
        fma += sum(steps * max(latency, accumulators * issue) for steps, accumulators in blocks)
    other = (work.vector_ops * machine["vector_op_ns"] + work.div_ops * machine["vector_div_ns"]
             + work.gathers * machine["gather_ns"])
    reduce = (work.reduce_vector_steps * machine["reduce_vector_step_ns"]
              + work.reduce_scalar_steps * machine["reduce_scalar_step_ns"])
    return fma + (other + reduce) * ns


def kernel_seconds(work: KernelWork, machine: dict, cores: int = 1) -> tuple[float, str]:
    """(seconds, what bounds it: compute | latency | memory | overhead) of one kernel call."""
    if work.empty:
        return 0.0, "view"
    compute = compute_seconds(work, machine)
    bandwidth = machine["cache_gbs"] if work.bytes <= machine["l2_bytes"] else machine["dram_gbs"]
    memory = work.bytes / (bandwidth * 1e9)
    compute, memory = compute / parallel_cores(work, cores), memory / parallel_cores(work, cores)
    overhead = machine["call_overhead_us"] * 1e-6
    bound = "memory" if memory > compute else "compute"
    if overhead > max(compute, memory):
        bound = "overhead"
    return max(compute, memory) + overhead, bound
