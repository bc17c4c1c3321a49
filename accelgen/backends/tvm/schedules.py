"""Our CPU schedules, applied to every fused TIR kernel after legalization, with no tuning.

TVM's default CPU pipeline leaves kernels as serial scalar loop nests. Each kernel here gets:
- its intermediate elementwise stages inlined (the epilogue of a Dense: bias, activation) so a value is written
  once;
- contractions (matmul, batched matmul, convolution: `C += A * B` reductions) tiled into a register block of
  `ROWS` x `lanes` outputs (lanes = the SIMD width in floats), the reduction loops between the tile loops and the
  register block, the accumulator in a local buffer, the epilogue computed per tile, and the outer tile loops
  parallel over the cores;
- max/sum reductions (softmax, norms) over an innermost axis the lanes divide: split into one vector of partial
  results (rfactor), so they run as vector instructions, not one scalar dependency chain;
- every other stage (elementwise, pads, transposes, pools) vectorized on its innermost axis where the lanes divide
  it, and its outer loops parallel when there is enough work.
A kernel whose shape defeats a rule keeps TVM's plain loop nest for that stage (correct, only slower).
"""

from __future__ import annotations

import os

import tvm
from tvm import s_tir

ROWS = (8, 4, 2)  # output rows per register block, the first that divides (8 x 16 lanes: 8 vector accumulators)
COL_VECTORS = 2  # vectors of columns per register block, when the width allows (rows x 2 accumulators)
PARALLEL_MIN_WORK = 1 << 14  # multiply-adds (or elements) under which threads cost more than they save


def simd_lanes(target) -> int:
    """float32 lanes of the widest vector unit the llvm target enables."""
    features = " ".join(str(a) for a in (target.attrs.get("mattr") or []))
    mcpu = str(target.attrs.get("mcpu", ""))
    avx512 = ("avx512" in features or any(k in mcpu for k in ("skylake-avx512", "cascadelake", "icelake",
                                                               "rocketlake", "tigerlake", "sapphirerapids",
                                                               "znver4", "znver5", "cooperlake")))
    return 16 if avx512 else 8


UNSCHEDULED: list[str] = []  # kernels of the last build left unscheduled, with the reason


def schedule_module(mod: tvm.IRModule, target) -> tvm.IRModule:
    UNSCHEDULED.clear()
    lanes = simd_lanes(target)
    cores = int(target.attrs.get("num-cores", 1))
    updates = {}
    for gvar, func in mod.functions.items():
        if type(func).__name__ != "PrimFunc" or func.attrs is not None and "schedule_rule" in func.attrs:
            continue
        try:
            updates[gvar] = _schedule(func, lanes, cores)
        except Exception as e:
            # unscheduled kernel (correct, only slower) and is recorded for the build summary
            UNSCHEDULED.append(f"{gvar.name_hint}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            if os.environ.get("ACCELGEN_TVM_SCHEDULE_DEBUG"):
                raise
    for gvar, func in updates.items():
        mod[gvar] = func
    return mod


def _iter_kinds(sch, block) -> list[int]:
    return [int(iv.iter_type) for iv in sch.get(block).iter_vars]  # 0 spatial, 2 reduction


def _is_reduction(sch, block) -> bool:
    return any(k == 2 for k in _iter_kinds(sch, block))


def _is_contraction(sch, block) -> bool:
    """C = C + A * B: a matmul or convolution, not a max or a plain sum."""
    body = sch.get(block).body
    value = getattr(body, "value", None)
    if type(value).__name__ != "Add":
        return False
    return any(type(side).__name__ == "Mul" for side in (value.a, value.b))


def _extent(sch, loop) -> int:
    return int(sch.get(loop).extent)


def _schedule(func, lanes: int, cores: int):
    sch = s_tir.Schedule(func)
    root = sch.get_sblock("root")
    outputs = {str(sch.get(b).name_hint) for b in sch.get_output_blocks(root)}
    for block in reversed(sch.get_child_blocks(root)):  # inline consumers-first so chains collapse
        name = str(sch.get(block).name_hint)
        if name in outputs or _is_reduction(sch, block) or "pad" in name or _feeds_requantize(sch, block):
            continue
        try:
            sch.compute_inline(block)
        except s_tir.ScheduleError:
            pass
    done: set[str] = set()  # blocks already placed inside a contraction's tiles
    for name in [str(sch.get(b).name_hint) for b in sch.get_child_blocks(root)]:
        if name in done or name not in {str(sch.get(b).name_hint) for b in sch.get_child_blocks(root)}:
            continue  # scheduled with its producer, or folded into it
        block = sch.get_sblock(name)
        if _is_reduction(sch, block) and _is_contraction(sch, block):
            done |= _contraction(sch, block, lanes, cores)
        elif not _is_reduction(sch, block):
            _elementwise(sch, block, lanes, cores)
        else:
            _other_reduction(sch, block, lanes, cores)
    return sch.mod["main"]


def _feeds_requantize(sch, block) -> bool:
    """A fixed-point requantization (fixed_lower.py) reads its input several times in a tree of selects; with its
    producers inlined, TVM's simplifier and LLVM take minutes on it, so its inputs stay in buffers."""
    names = [str(sch.get(b).name_hint) for b in sch.get_consumers(block)]
    return str(sch.get(block).name_hint).startswith("requant") or any(n.startswith("requant") for n in names)


def _divisor(n: int, choices) -> int:
    return next((c for c in choices if c > 1 and n % c == 0), 0)


def _work(sch, loops) -> int:
    total = 1
    for loop in loops:
        total *= _extent(sch, loop)
    return total


def register_tile(spatial: list[int], lanes: int) -> tuple[int, int, int]:
    """(rows, vector width, vectors of columns) of the register block `_contraction` gives an output of extents
    `spatial` (0 rows or width: that axis is not split). Shared with the cost model (cost_model.py)."""
    col = spatial[-1]
    vec = _divisor(col, (lanes, lanes // 2, 4))
    wide = vec and col % (COL_VECTORS * vec) == 0 and len(spatial) >= 2 and spatial[-2] > 1
    rows = _divisor(spatial[-2], ROWS) if len(spatial) >= 2 else 0
    return rows, vec, (COL_VECTORS if wide else 1 if vec else 0)


def reduction_vectorized(kinds: list[int], extents: list[int], lanes: int) -> bool:
    """Whether `_other_reduction` splits this max/sum into vector partial results."""
    return (kinds == sorted(kinds) and kinds.count(2) == 1 and kinds.count(0) > 0
            and extents[-1] % lanes == 0 and extents[-1] > lanes)


def _contraction(sch, block, lanes: int, cores: int) -> set[str]:
    kinds = _iter_kinds(sch, block)
    loops = sch.get_loops(block)
    if kinds != sorted(kinds) or len(loops) != len(kinds):  # expect spatial loops, then reduction loops
        raise ValueError("unexpected loop order")
    spatial, reduce = loops[:kinds.count(0)], loops[kinds.count(0):]
    work = _work(sch, loops)
    col = spatial[-1]
    rows, vec, col_vectors = register_tile([_extent(sch, loop) for loop in spatial], lanes)
    col_o, col_m, col_i = col, None, None
    if col_vectors > 1:
        col_o, col_m, col_i = sch.split(col, [None, col_vectors, vec])
    elif vec:
        col_o, col_i = sch.split(col, [None, vec])
    row_o = row_i = None
    if rows:
        row_o, row_i = sch.split(spatial[-2], [None, rows])
    # column tiles outside row tiles: a weight panel (K x vec x COL_VECTORS floats) stays in cache while every
    # row block streams past it, instead of the whole weight matrix streaming once per row block
    rows_loop = [row_o] if row_o is not None else list(spatial[-2:-1])
    tiles = list(spatial[:-2]) + [col_o] + rows_loop
    inner = [loop for loop in (row_i, col_m, col_i) if loop is not None]
    sch.reorder(*tiles, *reduce, *inner)
    if col_i is not None:  # before decompose_reduction: the update block must still be a reduction block
        sch.vectorize(col_i)
    for loop in (row_i, col_m):
        if loop is not None:
            sch.unroll(loop)
    # the accumulator tile lives in a local buffer (registers) and is written back, with the epilogue, per tile
    sch.cache_write(block, 0, "local")
    names = set()
    while True:  # the write-back block is the compute block's only consumer; fold the epilogue chain into it
        (writeback,) = sch.get_consumers(block)
        consumers = sch.get_consumers(writeback)
        if len(consumers) != 1 or _feeds_requantize(sch, consumers[0]):
            break
        try:
            sch.reverse_compute_inline(consumers[0])
        except s_tir.ScheduleError:
            break
    (writeback,) = sch.get_consumers(block)
    sch.reverse_compute_at(writeback, tiles[-1], preserve_unit_loops=True)
    for c in sch.get_consumers(writeback):
        try:
            sch.reverse_compute_at(c, tiles[-1], preserve_unit_loops=True)
            names.add(str(sch.get(c).name_hint))
        except s_tir.ScheduleError:
            pass
    if col_i is not None:
        sch.vectorize(sch.get_loops(writeback)[-1])
    if cores > 1 and work >= PARALLEL_MIN_WORK:
        sch.parallel(sch.fuse(*tiles) if len(tiles) > 1 else tiles[0])
    sch.decompose_reduction(block, reduce[0])
    return names


def _elementwise(sch, block, lanes: int, cores: int) -> None:
    """Vectorize the innermost axis when the lanes divide it, parallel over the outer axes. Loops are not fused
    into one flat index: a flat index needs a division and a modulo per element to address a pad or a transpose,
    which costs more than the copy itself."""
    loops = sch.get_loops(block)
    if not loops:
        return
    n = _work(sch, loops)
    inner = loops[-1]
    outer = list(loops[:-1])
    source_axis = _transposed_axis(sch, block)
    if source_axis is not None and _extent(sch, inner) % lanes == 0 and _extent(sch, loops[source_axis]) % lanes == 0:
        # a transpose: lanes x lanes tiles, so the strided reads of one tile come from a few cache lines already in
        # L1 instead of one pass over the whole input per output row
        src_o, src_i = sch.split(loops[source_axis], [None, lanes])
        o, i = sch.split(inner, [None, lanes])
        outer = [loop for k, loop in enumerate(loops[:-1]) if k != source_axis] + [src_o, o]
        sch.reorder(*outer, src_i, i)
        sch.vectorize(i)
    elif _extent(sch, inner) % lanes == 0:
        o, i = sch.split(inner, [None, lanes])
        sch.vectorize(i)
        outer.append(o)
    if cores > 1 and n >= PARALLEL_MIN_WORK and outer:
        sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])


def _transposed_axis(sch, block) -> int | None:
    """For a block that copies one input element whose contiguous (last) index is an earlier output axis (a
    transpose), that axis; None otherwise."""
    stmt = sch.get(block)
    value = getattr(stmt.body, "value", None)
    if type(value).__name__ not in ("TensorLoad", "BufferLoad") or not value.indices:
        return None
    names = [str(iv.var) for iv in stmt.iter_vars]
    last = str(value.indices[-1])
    if last not in names or names.index(last) == len(names) - 1 or len(sch.get_loops(block)) != len(names):
        return None
    return names.index(last)


def _other_reduction(sch, block, lanes: int, cores: int) -> None:
    """A max or sum over the innermost axis (softmax, norms, pools): when the lanes divide the reduced length, it is
    split into `lanes` partial results kept in one vector register (rfactor), reduced across at the end, so the
    loads and the max/add are vector instructions instead of one scalar dependency chain."""
    kinds = _iter_kinds(sch, block)
    loops = sch.get_loops(block)
    if kinds != sorted(kinds) or len(loops) != len(kinds):
        return
    spatial = loops[:kinds.count(0)]
    work = _work(sch, loops)
    if reduction_vectorized(kinds, [_extent(sch, loop) for loop in loops], lanes):
        _, lane = sch.split(loops[-1], [None, lanes])
        partial = sch.rfactor(lane, factor_axis=len(spatial))
        (final,) = sch.get_consumers(partial)
        final_loops = sch.get_loops(final)
        sch.compute_at(partial, final_loops[len(spatial) - 1])
        sch.set_scope(partial, 0, "local")
        lane_loop, step = sch.get_loops(partial)[-2:]
        sch.reorder(step, lane_loop)
        sch.vectorize(lane_loop)
        init = sch.decompose_reduction(partial, step)
        sch.vectorize(sch.get_loops(init)[-1])
        spatial = final_loops[:len(spatial)]
    if cores > 1 and work >= PARALLEL_MIN_WORK and spatial:
        sch.parallel(sch.fuse(*spatial) if len(spatial) > 1 else spatial[0])
