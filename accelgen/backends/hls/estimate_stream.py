"""The io stream composition (accelgen/backends/hls/stream.py): a DATAFLOW region of one process per layer, each
reading its input FIFOs into local arrays (one frame per cycle), running its kernel, then writing its output to
one FIFO per reader (one frame per cycle, reader after reader). Pure functions; equations in docs/estimator.md.

A reader's copy loop runs alongside its producer's write loop (the FIFO passes each frame on at once), so the
chain's latency counts each transfer about once; a process's interval is its own busy time, reads, kernel and
writes back to back, since it cannot start on the next input before it has written its last frame. Layers that run
frame by frame (rows.py) start on their inputs' first frames and overlap their producers and consumers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

TRANSFER_DEPTH = 2  # a copy loop's pipeline depth plus its entry state
SRL_MAX_DEPTH = 32  # FIFOs this shallow are shift-register LUTs (SRLC32E), deeper ones block RAM
REGISTER_MAX_DEPTH = 2
COMPLETE_PARTITION_MAX = 1024  # as stream.py: local arrays up to this size are registers


@dataclass
class Transfer:
    fifo: str
    frames: int


@dataclass
class StageTiming:
    name: str
    kernel_cycles: int
    reads: list[Transfer] = field(default_factory=list)
    writes: list[Transfer] = field(default_factory=list)
    rows: int = 0  # > 0: the stage runs frame by frame (rows.py); kernel_cycles are then its whole-tensor kernel's
    pipelined: bool = False  # whether that frame loop pipelines at II=1
    # a kernel that moves its own frames (the token-by-token attention): the depths of its input loop (one frame
    # in per iteration) and of its output loop (one frame out per iteration), which runs after the input loop
    phases: tuple[int, int] | None = None

    @property
    def row_ii(self) -> int:
        """Cycles between frames of a frame-by-frame stage: 1 when its loop pipelines, else the kernel's share."""
        return 1 if self.pipelined else max(1, math.ceil(self.kernel_cycles / self.rows))

    @property
    def row_depth(self) -> int:
        """Cycles from a frame in to the same frame out: the kernel's pipeline depth plus a read and a write."""
        return max(1, self.kernel_cycles - (self.rows - 1) * self.row_ii) + 2 * TRANSFER_DEPTH

    @property
    def busy(self) -> int:
        if self.phases:
            return sum(t.frames for t in (*self.reads, *self.writes)) + sum(self.phases)
        if self.rows:
            return self.rows * self.row_ii + self.row_depth
        moves = sum(t.frames + TRANSFER_DEPTH for t in (*self.reads, *self.writes))
        return moves + self.kernel_cycles


def schedule(stages: list[StageTiming], port_frames: dict[str, int]) -> tuple[int, dict[str, int]]:
    """(latency, the cycle each stage finishes) for stages in dependency order; `port_frames` gives the frames of
    each top-level input stream, which arrive one per cycle from cycle 0.

    A whole-tensor stage copies each input in as it arrives, runs its kernel, then writes reader after reader.
    A frame-by-frame stage starts when every input has its first frame and emits frame r `row_depth` cycles after
    taking it, at most one frame per `row_ii`, and no earlier than its inputs' frame r (they arrive one per
    cycle), so its output follows its slowest input's last frame by `row_depth`."""
    first = {fifo: 1 for fifo in port_frames}  # FIFO -> cycle its first frame is in
    last = dict(port_frames)  # FIFO -> cycle its last frame is in
    finish = {}
    for s in stages:
        if s.phases:  # in: a frame per cycle as they arrive; out: a frame per cycle once every input is in
            (r,), (w,) = s.reads, s.writes
            inputs_done = max(first.get(r.fifo, 0) + r.frames - 1, last.get(r.fifo, 0)) + s.phases[0]
            first[w.fifo] = inputs_done + s.phases[1]
            last[w.fifo] = finish[s.name] = first[w.fifo] + w.frames - 1
            continue
        if s.rows:
            start = max((first.get(r.fifo, 0) for r in s.reads), default=0)
            out_first = start + s.row_depth
            out_last = max([out_first + (s.rows - 1) * s.row_ii] +
                           [last.get(r.fifo, 0) + s.row_depth for r in s.reads])
            for w in s.writes:
                first[w.fifo], last[w.fifo] = out_first, out_last
            finish[s.name] = out_last
            continue
        t = 0
        for r in s.reads:
            t = max(t + r.frames, last.get(r.fifo, 0)) + TRANSFER_DEPTH
        t += s.kernel_cycles
        for w in s.writes:
            first[w.fifo] = t + TRANSFER_DEPTH
            t += w.frames + TRANSFER_DEPTH
            last[w.fifo] = t
        finish[s.name] = t
    return max(finish.values(), default=0) + 1, finish


def fifo_cost(depth: int, width: int) -> tuple[int, int, int]:
    """(LUT, FF, BRAM18) of an hls::stream FIFO of `depth` frames of `width` bits: registers when tiny,
    shift-register LUTs up to 32 deep, block RAM beyond (512 x 36 or 1024 x 18 per BRAM18)."""
    control = 2 * math.ceil(math.log2(depth + 1)) + 8  # counters and full/empty flags
    if depth <= REGISTER_MAX_DEPTH:
        return control, depth * width, 0
    if depth <= SRL_MAX_DEPTH:
        return width + control, width, 0
    per = math.ceil(width / 36) * math.ceil(depth / 512) if width > 18 else math.ceil(depth / 1024)
    return control, width, max(per, 1)


def local_array_cost(size: int, width: int, frame: int) -> tuple[int, int]:
    """(FF, BRAM18) of a stage's local array: registers when completely partitioned, else `frame` banks."""
    if size <= COMPLETE_PARTITION_MAX:
        return size * width, 0
    depth = math.ceil(size / frame)
    return 0, frame * max(1, math.ceil(depth * width / 18432))
