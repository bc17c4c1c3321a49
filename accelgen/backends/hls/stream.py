"""The io stream design: every layer a DATAFLOW process joined to the others by `hls::stream` FIFOs.

Each process reads its input streams into local arrays, runs the same kernel call as the io parallel design, and
writes its output array to one FIFO per consumer (a stream has exactly one reader). A stream element is a frame of
a tensor's last dimension (a token's features, an image row), so the top-level ports are AXI streams of frames.

A convolution or a pooling whose input comes from another layer reads it as pixel frames (the channels of one
pixel, raster order; a 1-D one's input is one row of pixels) through a line buffer instead (ag_stream_conv.h,
ag_stream_pool.h; the layer's `line_buffer` names that form): it computes each output row once the input rows it
needs have arrived, keeping only those rows. Layers that run frame by frame (rows.py) and a self-attention that
moves its own tokens (Layer.stream_form, ag_stream_attention.h) start on their producer's first frame. Each FIFO is
as deep as its tensor has frames, so a producer never waits on a reader: then no order in which the hardware runs
the processes can deadlock. Every decision is made here; top_stream.cpp.j2 only prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accelgen.backends.hls.rows import row_call
from accelgen.errors import OptionError
from accelgen.ir.graph import Graph, Value

COMPLETE_PARTITION_MAX = 1024  # local arrays up to this size are split into registers; larger ones by frame slot


@dataclass
class Fifo:
    name: str
    frame_t: str
    depth: int


@dataclass
class Transfer:
    """A whole-tensor move between a local array and a FIFO: ag::<function><size, frame>(...), function
    read_frames, write_frames or write_pixels (frame = the channel count)."""

    array: str
    fifo: str
    size: int
    frame: int
    function: str


@dataclass
class LocalArray:
    ctype: str
    cname: str
    size: int
    partition: str
    original: str


@dataclass
class Stage:
    name: str
    comment: str
    params: list[tuple[str, str]] = field(default_factory=list)  # (frame type, FIFO name), in call order
    arrays: list[LocalArray] = field(default_factory=list)
    reads: list[Transfer] = field(default_factory=list)
    call: str = ""
    writes: list[Transfer] = field(default_factory=list)
    rows: int = 0  # > 0: the stage runs frame by frame (rows.py), `rows` iterations of one frame each
    pipelined: bool = False  # that frame loop pipelines at II=1
    streaming: bool = False  # the kernel itself reads its input FIFO and writes its output FIFO (Layer.stream_form)


@dataclass
class StreamPlan:
    stages: list[Stage]
    fifos: list[Fifo]  # the internal FIFOs (ports are the top's parameters)
    frame_types: list[tuple[str, str, int, str]]  # (frame typedef, element type, frame size, tensor)


def port_stream(cname: str) -> str:
    """The top-level stream port of a graph input or output (its C name, the tensor's, names the local array)."""
    return f"{cname}_stream"


def frame_size(v: Value) -> int:
    """Values per stream element: the last dimension (the whole tensor for a scalar)."""
    return int(v.shape[-1]) if v.shape else 1


def plan_stream(graph: Graph, names: dict[str, str], layers, rows: dict | None = None) -> StreamPlan:
    """`names` maps graph values to C names; `layers` are the built Layers in node order; `rows` the row plans
    (rows.row_plan) by node name of the layers that may run frame by frame."""
    rows = rows or {}
    inputs = {v.name for v in graph.inputs}
    ports = {port_stream(names[v.name]) for v in (*graph.inputs, *graph.outputs)}
    streamed = [v for v in graph.inputs] + [v for n in graph.nodes for v in n.outputs if v is not None]
    outputs = {v.name for v in graph.outputs}
    for v in graph.inputs:
        if v.name in outputs:
            raise OptionError(f"io stream: graph input {v.name!r} is also an output; there is no layer between them")
        if not v.users:
            raise OptionError(f"io stream: graph input {v.name!r} is used by no layer, so nothing would read its "
                              "stream")

    def frame_t(v: Value) -> str:
        return f"{names[v.name]}_frame_t"

    # one FIFO per (tensor, consumer); a graph output's last consumer is its port, and a graph input read by one
    # layer is read from its port directly
    stage_names = {id(n): layer.cname for n, layer in zip(graph.nodes, layers)}
    consumers: dict[str, list[str]] = {}
    fifo_of: dict[tuple[str, str], str] = {}
    for v in streamed:
        consumers[v.name] = [stage_names[id(u)] for u in v.users] + (["port"] if v.name in outputs else [])
        direct = v.name in inputs and len(consumers[v.name]) == 1
        for c in consumers[v.name]:
            fifo_of[v.name, c] = port_stream(names[v.name]) if c == "port" or direct else f"{names[v.name]}_to_{c}"
    pixels = {fifo_of[node.inputs[0].name, layer.cname] for node, layer in zip(graph.nodes, layers)
              if _line_buffered(node, layer) and fifo_of[node.inputs[0].name, layer.cname] not in ports}
    fifos: list[Fifo] = []
    stages: list[Stage] = []
    for v in graph.inputs:  # an input read by several layers is copied to each by a fan-out process
        if len(consumers[v.name]) > 1:
            split = Stage(f"{names[v.name]}_fanout", f"copies input {v.name} to its {len(consumers[v.name])} readers",
                          call="// no kernel: the input goes to each reader")
            _read(split, v, names, frame_t(v), port_stream(names[v.name]))
            _write(split, v, names, [fifo_of[v.name, c] for c in consumers[v.name]], fifos, ports, pixels)
            stages.append(split)
    for node, layer in zip(graph.nodes, layers):
        stage = Stage(f"{layer.cname}_stage", f"{node.name} ({node.op_type}): {layer.kernel}", call=layer.call)
        if _streams_itself(node, layer, consumers, fifo_of, pixels):  # reads and writes its FIFOs in its loops
            x, y = _streamed_inputs(node)[0], node.outputs[0]
            fifo_in, (fifo_out,) = fifo_of[x.name, layer.cname], [fifo_of[y.name, c] for c in consumers[y.name]]
            kernel, args = layer.stream_form
            stage.params = [(frame_t(x), fifo_in), (frame_t(y), fifo_out)]
            stage.call = f"ag::{kernel}<{layer.config_name}>({', '.join([fifo_in, fifo_out, *args])});"
            stage.comment = f"{node.name} ({node.op_type}): token by token, {layer.kernel}"
            stage.streaming = True
            if fifo_out not in ports:
                fifos.append(Fifo(fifo_out, frame_t(y), y.type.numel // frame_size(y)))
            stages.append(stage)
            continue
        plan = rows.get(node.name)
        if plan is not None and not any(fifo_of[v.name, c] in pixels for v in node.outputs if v is not None
                                         for c in consumers.get(v.name, [])):
            stage.rows, stage.pipelined = plan.rows, plan.pipelined
            stage.call = row_call(node, names, layer.config_name, layer.call)
            stage.comment = f"{node.name} ({node.op_type}): frame by frame, {layer.kernel}"
        seen = set()
        for v in node.inputs:  # a tensor used twice by one node (self-attention's x) is read once
            if v is None or v.is_constant or v.name in seen:
                continue
            seen.add(v.name)
            fifo = fifo_of[v.name, layer.cname]
            if fifo in pixels:  # the line-buffered convolution or pooling reads the FIFO itself
                kernel, args = layer.line_buffer
                stage.params.append((pixel_t(names[v.name]), fifo))
                stage.call = f"ag::{kernel}<{layer.config_name}>({', '.join([fifo, *args])});"
                stage.comment = f"{node.name} ({node.op_type}): line-buffered, {layer.kernel}"
                continue
            _read(stage, v, names, frame_t(v), fifo)
        for v in node.outputs:
            if v is None:
                continue
            stage.arrays.append(_local(v, names, stage.rows))
            _write(stage, v, names, [fifo_of[v.name, c] for c in consumers.get(v.name, [])], fifos, ports, pixels)
        stages.append(stage)
    frame_types = [(frame_t(v), f"{names[v.name]}_t", frame_size(v), v.name) for v in streamed]
    pixel_tensors = {v.name: v for v in streamed if any(fifo_of[v.name, c] in pixels for c in consumers[v.name])}
    frame_types += [(pixel_t(names[v.name]), f"{names[v.name]}_t", int(v.shape[1]), f"{v.name}, by pixel")
                    for v in pixel_tensors.values()]
    return StreamPlan(stages, fifos, frame_types)


def _streamed_inputs(node) -> list[Value]:
    """The node's non-constant inputs, each once (self-attention names x twice)."""
    seen: dict[str, Value] = {}
    for v in node.inputs:
        if v is not None and not v.is_constant:
            seen.setdefault(v.name, v)
    return list(seen.values())


def _streams_itself(node, layer, consumers, fifo_of, pixels) -> bool:
    """A layer with a stream form (Layer.stream_form) reading one frame FIFO and writing one reader's."""
    if getattr(layer, "stream_form", None) is None or len(node.outputs) != 1:
        return False
    inputs = _streamed_inputs(node)
    readers = consumers.get(node.outputs[0].name, [])
    return (len(inputs) == 1 and len(readers) == 1 and fifo_of[inputs[0].name, layer.cname] not in pixels
            and fifo_of[node.outputs[0].name, readers[0]] not in pixels)


def pixel_t(cname: str) -> str:
    return f"{cname}_pixel_t"


def _line_buffered(node, layer) -> bool:
    """A convolution or pooling with a line-buffered form (its parallel kernel, batch 1, NCHW or NCL: a 1-D one is
    an image of height 1) can read pixel frames."""
    x = node.inputs[0]
    return getattr(layer, "line_buffer", None) is not None and len(x.shape) in (3, 4) and x.shape[0] == 1


def _local(v: Value, names: dict[str, str], rows: int = 0) -> LocalArray:
    """The stage's array of tensor v: all of it, or one frame in a stage that runs frame by frame."""
    size = frame_size(v) if rows else v.type.numel
    partition = "complete" if size <= COMPLETE_PARTITION_MAX else f"cyclic factor = {frame_size(v)}"
    return LocalArray(f"{names[v.name]}_t", names[v.name], size, partition, v.name)


def _read(stage: Stage, v: Value, names, frame_t: str, fifo: str) -> None:
    stage.params.append((frame_t, fifo))
    stage.arrays.append(_local(v, names, stage.rows))
    size = frame_size(v) if stage.rows else v.type.numel
    stage.reads.append(Transfer(names[v.name], fifo, size, frame_size(v), "read_frames"))


def _write(stage: Stage, v: Value, names, targets: list[str], fifos: list[Fifo], ports: set[str],
           pixels: set[str]) -> None:
    """Writes to each reader's FIFO, by pixel for a line-buffered convolution, by frame otherwise."""
    cname, n = names[v.name], (frame_size(v) if stage.rows else v.type.numel)
    for fifo in targets:
        by_pixel = fifo in pixels
        frame = int(v.shape[1]) if by_pixel else frame_size(v)
        kind = pixel_t(cname) if by_pixel else f"{cname}_frame_t"
        stage.params.append((kind, fifo))
        stage.writes.append(Transfer(cname, fifo, n, frame, "write_pixels" if by_pixel else "write_frames"))
        if fifo not in ports:
            fifos.append(Fifo(fifo, kind, v.type.numel // frame))  # the whole tensor: no schedule deadlocks
