"""Our CPU schedules, applied to every fused TIR kernel after legalization, with no tuning.

TVM's default CPU pipeline leaves kernels as serial scalar loop nests. Each kernel here gets:
- its intermediate elementwise stages inlined (the epilogue of a Dense: bias, activation) so a value is written
  once;
- contractions (matmul, batched matmul, convolution: `C += A * B` reductions) tiled into a register block of
  `ROWS` x `lanes` outputs (lanes = the SIMD width in floats), the reduction loops between the tile loops and the
  register block, the accumulator in a local buffer, the epilogue computed per tile, and the outer tile loops
  parallel over the cores;
- every other stage (softmax, norms, pools, data movement) vectorized on its innermost axis where that divides,
  and its outer loops parallel when there is enough work.
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
        if name in outputs or _is_reduction(sch, block) or "pad" in name:
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
            _other_reduction(sch, block, cores)
    return sch.mod["main"]


def _divisor(n: int, choices) -> int:
    return next((c for c in choices if c > 1 and n % c == 0), 0)


def _work(sch, loops) -> int:
    total = 1
    for loop in loops:
        total *= _extent(sch, loop)
    return total


def _contraction(sch, block, lanes: int, cores: int) -> set[str]:
    kinds = _iter_kinds(sch, block)
    loops = sch.get_loops(block)
    if kinds != sorted(kinds) or len(loops) != len(kinds):  # expect spatial loops, then reduction loops
        raise ValueError("unexpected loop order")
    spatial, reduce = loops[:kinds.count(0)], loops[kinds.count(0):]
    work = _work(sch, loops)
    col = spatial[-1]
    vec = _divisor(_extent(sch, col), (lanes, lanes // 2, 4))
    col_o, col_m, col_i = col, None, None
    if vec and _extent(sch, col) % (COL_VECTORS * vec) == 0 and len(spatial) >= 2 and _extent(sch, spatial[-2]) > 1:
        col_o, col_m, col_i = sch.split(col, [None, COL_VECTORS, vec])
    elif vec:
        col_o, col_i = sch.split(col, [None, vec])
    row_o = row_i = None
    rows = _divisor(_extent(sch, spatial[-2]), ROWS) if len(spatial) >= 2 else 0
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
        if len(consumers) != 1:
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
    loops = sch.get_loops(block)
    if not loops:
        return
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    n = _extent(sch, fused)
    if n % lanes == 0 and n >= lanes:
        outer, inner = sch.split(fused, [None, lanes])
        sch.vectorize(inner)
        if cores > 1 and n >= PARALLEL_MIN_WORK:
            sch.parallel(outer)
    elif cores > 1 and n >= PARALLEL_MIN_WORK:
        sch.parallel(fused)


def _other_reduction(sch, block, cores: int) -> None:
    kinds = _iter_kinds(sch, block)
    loops = sch.get_loops(block)
    if kinds != sorted(kinds) or cores <= 1 or _work(sch, loops) < PARALLEL_MIN_WORK:
        return
    spatial = loops[:kinds.count(0)]
    if spatial:
        sch.parallel(sch.fuse(*spatial) if len(spatial) > 1 else spatial[0])
