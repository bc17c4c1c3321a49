"""io stream, row by row: a layer whose every output frame (a row of the last axis: one token's features) depends
only on the same frame of each of its streamed inputs runs its kernel once per frame inside its DATAFLOW process,
reading and writing one frame per iteration. It then starts on its producer's first frame instead of its last, so
consecutive such layers overlap token by token (attention, which needs every key first, and reductions still wait
for the whole tensor). Decided here once, for the generator (stream.py, generate.py) and the estimator.

Forms: Dense, LayerNormalization and Softmax (over the last axis) keep their kernel call and run it with the
config's token or row count set to 1; Add, Sub, Mul of same-shape streamed operands and Relu call their
elementwise kernel on one frame."""

from __future__ import annotations

from dataclasses import dataclass

from accelgen.backends.hls.layers_elementwise import BINARY_OPS

ROW_COUNT = {"Dense": "tokens", "LayerNormalization": "rows", "Softmax": "rows"}  # the config entry set to 1


@dataclass(frozen=True)
class RowPlan:
    rows: int  # frames of the output, and of every streamed input
    frame: int  # values per output frame
    pipelined: bool  # the frame loop pipelines at II=1 (a resource Dense spends its reuse factor per frame)


def row_plan(node, choice) -> RowPlan | None:
    """The row form of `node` (with its layer's strategy `choice`), or None when it has none."""
    if len(node.outputs) != 1 or node.outputs[0] is None or len(node.outputs[0].shape) < 2:
        return None
    out = node.outputs[0]
    frame = int(out.shape[-1])
    rows = out.type.numel // frame
    inputs = [v for v in node.inputs if v is not None]
    streamed = [v for v in inputs if not v.is_constant]
    op = node.op_type
    if rows < 2 or not streamed or any(v.type.numel // max(int(v.shape[-1]), 1) != rows for v in streamed):
        return None
    if op == "Dense":
        fits = streamed == [node.inputs[0]]
    elif op in ("LayerNormalization", "Softmax"):
        fits = len(streamed) == 1 and node.op.op.axis % len(out.shape) == len(out.shape) - 1
    elif op in BINARY_OPS or op == "Relu":
        fits = len(streamed) == len(inputs) and all(tuple(v.shape) == tuple(out.shape) for v in streamed)
    else:
        fits = False
    return RowPlan(rows, frame, op != "Dense" or choice.strategy == "latency") if fits else None


def row_call(node, names: dict[str, str], config_name: str, layer_call: str) -> str:
    """The kernel call of one frame: the layer's own call (its config then counts one row), or the elementwise
    kernel on frame-sized arrays (the local arrays keep the tensors' C names)."""
    if node.op_type in ROW_COUNT:
        return layer_call
    frame = int(node.outputs[0].shape[-1])
    args = ", ".join(names[v.name] for v in (*node.inputs, node.outputs[0]))
    if node.op_type == "Relu":
        return f"ag::relu<{frame}>({args});"
    return f"ag::elementwise<{BINARY_OPS[node.op_type]}, {frame}>({args});"
