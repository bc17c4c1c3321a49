"""fuse-attention: scaled-dot-product attention with constant projections -> one MultiHeadAttention.

Exporters spell attention many ways: a fused QKV projection split by Split, Gather or Slice, sequence-first
Transposes around it, heads made by Reshape/Transpose in 3-D or 4-D, the scale as Mul or Div on the scores or on
q and k, an additive mask. Rather than one pattern per spelling, the matcher anchors on each Softmax (and on each
ONNX Attention node), finds the two MatMuls around it, and walks from each of Q, K, V back through data-movement
ops and constant additions/scalings to a projection with a constant weight. It then runs that chain of ops on an
array of element indices: the result says, for every element of Q (per head, token and channel), which element of
the projection's output it is. The pattern fires only if that is exactly a multi-head split (each head a block of
projection columns, each row one token of a batch-first or sequence-first layout) and the output side, traced the
same way, is exactly the matching merge into an output projection. Everything the rewrite needs (weights per
head, biases, the token layout to restore) is read off those index arrays, so any plumbing that computes the same
thing fuses and anything else is left alone with a reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.ops.attention import MultiHeadAttention, merge_heads, split_heads
from accelgen.ir.ops.elementwise import Where
from accelgen.ir.ops.shape import Reshape, Transpose
from accelgen.ir.types import BOOL, F32, F64
from accelgen.passes import register_pass
from accelgen.passes.base import Pass, PassResult
from accelgen.passes.cleanup import refuse
from accelgen.passes.fuse_dense import per_feature
from accelgen.passes.pattern import escaping_use, remove_dead
from accelgen.passes.trace import (MOVES, Step, chain_back, chain_forward, emit, index_array, movement_step, only_use,
                                   replace)

PASS_THROUGH = {"Identity", "Dropout", "Cast"}  # move nothing (Cast only when it keeps the element type)
AFFINE = {"Add", "Sub", "Mul", "Div"}  # with a constant: a bias (Add/Sub) or a scalar scale (Mul/Div)
MAX_CHAIN = 64  # ops followed from an anchor to a projection (or a layout)


class Refused(Exception):
    """The anchor looks like attention but the match is not exact; the message says why."""


# -- chains of data movement -----------------------------------------------------------------------------------
def _step(node: Node, slot: int, out: int = 0) -> Step | None:
    """`node` as a chain step taking its data at input `slot`, or None if it is not a movement/affine op."""
    t = node.op_type
    others = [v for i, v in enumerate(node.inputs) if i != slot and v is not None]
    data = node.inputs[slot]
    if t in MOVES or t in PASS_THROUGH:
        if t == "Cast" and node.outputs[0].dtype != data.dtype:
            return None
        return movement_step(node, slot, out, MOVES | PASS_THROUGH)
    if t in AFFINE and len(node.inputs) == 2 and out == 0 and others and others[0].is_constant:
        c = others[0]
        if data.is_constant or c.dtype not in (F32, F64) or node.outputs[0].shape != data.shape:
            return None
        if t in ("Sub", "Div") and slot != 0:
            return None  # c - x or c / x is not a bias or a scale of x
        if t in ("Mul", "Div") and (c.data.size != 1 or float(c.data.reshape(-1)[0]) == 0.0):
            return None
        return Step(node, slot, out)
    return None


def run_chain(chain: list[Step], array: np.ndarray, values: bool) -> tuple[np.ndarray, float]:
    """Push `array` through the chain; return it and the product of the scalar scales met on the way.

    Movement ops run their own compute on the array. With `values` the additions and scales apply too (float64),
    so running zeros gives the constant part of an affine chain; otherwise they leave the array alone, and an
    array of element indices comes out telling where each element came from."""
    scale = 1.0
    for s in chain:
        t = s.node.op_type
        if t in PASS_THROUGH:
            continue
        if t in AFFINE:
            c = s.node.inputs[1 - s.slot].data.astype(np.float64)
            if t in ("Mul", "Div"):
                factor = float(c.reshape(-1)[0]) if t == "Mul" else 1.0 / float(c.reshape(-1)[0])
                scale *= factor
                array = array * factor if values else array
            elif values:
                array = array + c if t == "Add" else array - c
            continue
        array = s.run(array)
    return array, scale


def _step_back(v: Value) -> Step | None:
    """The step making `v` from the one computed input of its producer, or None."""
    node = v.producer
    slots = [i for i, u in enumerate(node.inputs) if u is not None and not u.is_constant] if node else []
    return _step(node, slots[0], node.outputs.index(v)) if len(slots) == 1 else None


def _moving(step: Step | None, one_output: bool = True) -> Step | None:
    """`step` if it only moves data (no bias or scale) and, with `one_output`, is not a Split into several."""
    if step is None or step.node.op_type in AFFINE or (one_output and len(step.node.outputs) != 1):
        return None
    return step


# -- projections -------------------------------------------------------------------------------------------------
@dataclass
class Projection:
    """x @ W + b with constant W [E, N] and b [N] (zeros when absent), made by `nodes`, output `out`."""

    x: Value
    weight: np.ndarray
    bias: np.ndarray
    out: Value
    nodes: list[Node]


def _projection(node: Node, slot: int = 0) -> Projection | None:
    """The projection computed by `node` when its data input is at `slot`, else None."""
    if slot != 0 or len(node.outputs) != 1 or node.inputs[0] is None or node.inputs[0].is_constant:
        return None
    x, w = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None
    if w is None or not w.is_constant or w.type.rank != 2 or x.type.rank < 1:
        return None
    n = node.outputs[0].shape[-1]
    bias = None
    if node.op_type == "MatMul":
        weight = w.data
    elif node.op_type == "Gemm":
        op = node.op
        c = node.inputs[2] if len(node.inputs) > 2 else None
        if op.transA or op.alpha != 1.0 or (c is not None and (op.beta != 1.0 or not c.is_constant)):
            return None
        weight = w.data.T if op.transB else w.data
        bias = per_feature(c, node.outputs[0].shape) if c is not None else None
        if isinstance(bias, str):
            return None  # a bias that varies per row is not a projection bias
    elif node.op_type == "Dense":
        b = node.inputs[2] if len(node.inputs) > 2 else None
        if node.op.activation is not None or (b is not None and not b.is_constant):
            return None
        weight, bias = w.data, (b.data if b is not None else None)
    else:
        return None
    bias = np.zeros(n, weight.dtype) if bias is None else np.asarray(bias)
    return Projection(x, weight, bias, node.outputs[0], [node])


def _walk_back(v: Value, what: str) -> tuple[Projection, list[Step]]:
    """From `v` back through movement/affine steps to the projection that makes it."""
    chain = chain_back(v, _step_back, MAX_CHAIN - 1)  # (a projection is never a step)
    v = chain[0].input if chain else v
    node = v.producer
    if node is None:
        raise Refused(f"{what} is {'a constant' if v.is_constant else 'a graph input'}, not a projection")
    proj = _projection(node)
    if proj is not None:
        return proj, chain
    if _step_back(v) is None:
        raise Refused(f"{what} comes from {node.op_type} {node.name!r}, which is neither data movement, a "
                      "constant bias or scalar scale, nor a projection with a constant weight")
    raise Refused(f"{what}: no projection within {MAX_CHAIN} ops")


# -- what the anchor says ----------------------------------------------------------------------------------------
@dataclass
class Operand:
    value: Value
    to_heads: Callable[[np.ndarray], np.ndarray]  # an array shaped like value -> [*lead, seq, head_dim]


@dataclass
class Core:
    """An attention computation found at an anchor, before its operands are traced."""

    anchor: Node
    rule: str
    q: Operand
    k: Operand
    v: Operand
    lead: tuple[int, ...]  # leading (batch/head) dims of the scores
    out: Value  # the attention output, where the output side starts
    from_heads: Callable[[np.ndarray], np.ndarray]  # [*lead, S, head_dim] -> shaped like `out`
    scale: float
    nodes: list[Node]
    seq: int  # query length S
    kv_seq: int  # key length Skv
    head_dim: int
    v_head_dim: int
    mask: Value | None = None
    causal: bool = False
    zero_masked_rows: bool = False


def _peel_scale(v: Value, nodes: list[Node]) -> tuple[Value, float]:
    """Follow Mul/Div by scalar constants (and Identity-like ops) back from `v`; return the value before them and
    the product of the scales."""
    scale = 1.0
    while (node := v.producer) is not None and node.op_type in ("Mul", "Div", *PASS_THROUGH):
        slots = [i for i, u in enumerate(node.inputs) if not u.is_constant]
        step = _step(node, slots[0]) if len(slots) == 1 else None
        if step is None:
            break
        scale *= run_chain([step], np.zeros(()), False)[1]
        nodes.append(node)
        v = node.inputs[step.slot]
    return v, scale


def softmax_core(softmax: Node) -> Core | None:
    """Softmax(QK^T * scale [+ mask]) feeding MatMul(., V); None when the Softmax feeds no such MatMul (not
    attention at all); Refused when it looks like attention but is not exactly."""
    probs, nodes = softmax.outputs[0], [softmax]
    while len(probs.uses) == 1 and probs.uses[0][0].op_type in PASS_THROUGH and _step(*probs.uses[0]) is not None:
        nodes.append(probs.uses[0][0])  # inference Dropout, Identity
        probs = nodes[-1].outputs[0]
    pv_uses = [(n, i) for n, i in probs.uses if n.op_type == "MatMul" and i == 0]
    if not pv_uses:
        return None
    logits, scale = _peel_scale(softmax.inputs[0], nodes)
    mask = None
    if logits.producer is not None and logits.producer.op_type == "Add":
        add = logits.producer
        for scores_side, mask_side in (add.inputs, add.inputs[::-1]):
            inner_nodes: list[Node] = []
            inner, inner_scale = _peel_scale(scores_side, inner_nodes)
            if inner.producer is not None and inner.producer.op_type == "MatMul" and not any(
                    u.is_constant for u in inner.producer.inputs):
                if scale != 1.0:
                    raise Refused("the mask is added before the scale (it would be scaled too)")
                nodes += [add, *inner_nodes]
                logits, scale, mask = inner, inner_scale, mask_side
                break
    qk = logits.producer
    if qk is None or qk.op_type != "MatMul" or any(u.is_constant for u in qk.inputs):
        what = "a graph input" if qk is None else f"{qk.op_type} {qk.name!r}"
        raise Refused(f"the scores come from {what}, not from a MatMul of Q and K^T (with at most scalar scales "
                      "and an additive mask)")
    pv = pv_uses[0][0]
    q, kt, v = qk.inputs[0], qk.inputs[1], pv.inputs[1]
    if v.is_constant:
        raise Refused("the values multiplying the probabilities are a constant")
    if min(q.type.rank, kt.type.rank, v.type.rank) < 2:
        raise Refused("Q, K or V has rank 1")
    scores = logits.shape
    axis = softmax.op.axis % len(scores) if -len(scores) <= softmax.op.axis < len(scores) else None
    if axis != len(scores) - 1:
        raise Refused(f"Softmax normalizes axis {softmax.op.axis} of the scores {list(scores)}, not the keys (last)")
    if mask is not None and softmax.inputs[0].shape != scores:
        raise Refused(f"the mask of shape {list(mask.shape)} widens the scores {list(scores)}")
    lead, (s, skv) = scores[:-2], scores[-2:]
    if pv.outputs[0].shape[:-2] != lead:
        raise Refused(f"the values {list(v.shape)} widen the batch of the scores {list(scores)}")
    hd, hdv = q.shape[-1], v.shape[-1]
    return Core(
        anchor=softmax, rule="mha_from_softmax",
        q=Operand(q, lambda a: np.broadcast_to(a, lead + (s, hd))),
        k=Operand(kt, lambda a: np.broadcast_to(np.swapaxes(a, -1, -2), lead + (skv, hd))),
        v=Operand(v, lambda a: np.broadcast_to(a, lead + (skv, hdv))),
        lead=lead, out=pv.outputs[0], from_heads=lambda a: a, scale=scale,
        nodes=[*nodes, qk, pv], seq=s, kv_seq=skv, head_dim=hd, v_head_dim=hdv, mask=mask)


def attention_core(node: Node, graph: Graph) -> Core:
    """An ONNX Attention node, when it is plain multi-head (or grouped-query) attention."""
    op = node.op
    q, k, v = node.inputs[:3]
    extra = list(node.inputs[3:]) + [None] * 4
    mask = extra[0]
    if any(u is not None for u in extra[1:4]):
        raise Refused("Attention with past key/value or nonpad_kv_seqlen (a KV cache) is not fused")
    if any(o.uses or o in graph.outputs for o in node.outputs[1:]):
        raise Refused("Attention's present key/value or qk_matmul_output outputs are used")
    if op.softcap > 0 or op.left_window_size >= 0 or op.right_window_size >= 0:
        raise Refused("Attention with softcap or a sliding window has no MultiHeadAttention equivalent")
    if op.softmax_precision not in (None, 1, 11) or q.dtype not in (F32, F64):
        raise Refused(f"only float32/float64 attention is fused ({q.dtype}, softmax_precision "
                      f"{op.softmax_precision})")
    d = op.dims([u.type if u is not None else None for u in node.inputs])
    if mask is not None and mask.shape[-1] != d["total"]:
        raise Refused(f"the mask's last dimension {mask.shape[-1]} is padded to {d['total']} keys with -inf")
    groups = d["Hq"] // d["Hkv"]
    three_d = q.type.rank == 3

    def heads(count: int, repeat: int) -> Callable[[np.ndarray], np.ndarray]:
        def f(a):
            a = split_heads(a, count) if three_d else a
            return np.repeat(a, repeat, axis=1)
        return f

    root = float(np.sqrt(op.scale if op.scale is not None else 1 / np.sqrt(d["hd"])).astype(q.dtype.np_dtype))
    return Core(anchor=node, rule="mha_from_attention", q=Operand(q, heads(d["Hq"], 1)),
                k=Operand(k, heads(d["Hkv"], groups)), v=Operand(v, heads(d["Hkv"], groups)),
                lead=(d["B"], d["Hq"]), out=node.outputs[0], from_heads=merge_heads if three_d else (lambda a: a),
                scale=root * root, nodes=[node], seq=d["S"], kv_seq=d["total"], head_dim=d["hd"],
                v_head_dim=d["hdv"], mask=mask, causal=bool(op.is_causal),
                zero_masked_rows=mask is not None)


# -- tracing the operands and the output -------------------------------------------------------------------------
@dataclass
class Path:
    """How Q, K or V is made: `blocks[l]` is the first projection column of row l (one batch and head),
    `tokens[l, s]` the projection row (token) of position s, `bias` the effective bias of every column."""

    proj: Projection
    chain: list[Step]
    blocks: np.ndarray
    tokens: np.ndarray
    bias: np.ndarray
    scale: float


def trace_operand(operand: Operand, name: str, rows: int, seq: int, head_dim: int) -> Path:
    proj, chain = _walk_back(operand.value, name)
    shape = proj.out.shape
    index, scale = run_chain(chain, index_array(shape), values=False)
    offset, _ = run_chain(chain, np.zeros(shape), values=True)
    index = operand.to_heads(index).reshape(rows, seq, head_dim)
    offset = operand.to_heads(np.broadcast_to(offset, operand.value.shape)).reshape(rows, seq, head_dim)
    width = shape[-1]
    cols, tokens = index % width, index // width
    blocks = cols[:, 0, 0]
    if not (cols == blocks[:, None, None] + np.arange(head_dim)).all():
        raise Refused(f"{name}: its heads are not blocks of {head_dim} consecutive columns of the projection "
                      f"{proj.out.name!r}")
    if not (tokens == tokens[:, :, :1]).all():
        raise Refused(f"{name}: a row of a head mixes tokens of the projection {proj.out.name!r}")
    per_column = offset / scale
    extra = np.zeros(width)
    extra[cols] = per_column
    if not np.array_equal(extra[cols], per_column):
        raise Refused(f"{name}: the constant added after the projection is not one bias per column")
    return Path(proj, chain, blocks, tokens[:, :, 0], proj.bias.astype(np.float64) + extra, scale)


def _layout(tokens: np.ndarray, batch: int, seq: int, count: int, what: str) -> tuple[str, np.ndarray]:
    """Whether projection rows are tokens batch-first ("bs": b*seq + s) or sequence-first ("sb": s*batch + b);
    returns it and the batch of every head row."""
    if count != batch * seq:
        raise Refused(f"{what}: the projection has {count} tokens, not batch {batch} x length {seq}")
    s = np.arange(seq)
    for layout in ("bs", "sb"):
        b = tokens[:, 0] // seq if layout == "bs" else tokens[:, 0] % batch
        if (tokens == (b[:, None] * seq + s if layout == "bs" else s * batch + b[:, None])).all():
            return layout, b
    raise Refused(f"{what}: the tokens are neither batch-first nor sequence-first rows of the projection")


def _token_index(layout: str, batch: int, seq: int, width: int) -> np.ndarray:
    """For rows laid out as `layout`, the flat index in a batch-first [batch, seq, width] tensor of each element."""
    t = np.arange(batch * seq)
    b, s = (t // seq, t % seq) if layout == "bs" else (t % batch, t // batch)
    return ((b * seq + s) * width)[:, None] + np.arange(width)


def _per_head(blocks: np.ndarray, head_of: np.ndarray, heads: int, what: str) -> np.ndarray:
    out = np.full(heads, -1)
    out[head_of] = blocks
    if not np.array_equal(out[head_of], blocks):
        raise Refused(f"{what}: one query head meets different {what} columns in different batches")
    return out


def _columns(blocks: np.ndarray, head_dim: int) -> np.ndarray:
    return (blocks[:, None] + np.arange(head_dim)).reshape(-1)


@dataclass
class OutputSide:
    proj: Projection
    chain: list[Step]
    layout: str
    weight: np.ndarray  # Wo with rows in MultiHeadAttention's head order
    bias: np.ndarray
    result: Value  # the projection's output after its bias
    nodes: list[Node]


def trace_output(graph: Graph, core: Core, head_of: np.ndarray, batch_of: np.ndarray, heads: int,
                 batch: int) -> OutputSide:
    chain = chain_forward(graph, core.out, lambda n, i: _moving(_step(n, i), False), MAX_CHAIN - 1)
    v = chain[-1].output if chain else core.out
    if (use := only_use(graph, v)) is None:
        raise Refused(f"the attention output reaches {'graph output' if v in graph.outputs else 'the fork'} "
                      f"{v.name!r}, not an output projection")
    proj = _projection(*use)  # (a projection is never a step)
    if proj is None:
        if _moving(_step(*use), False) is None:
            raise Refused(f"the attention output reaches {use[0].op_type} {use[0].name!r}, not an output "
                          "projection with a constant weight")
        raise Refused(f"no output projection within {MAX_CHAIN} ops")
    seq, hd = core.seq, core.head_dim
    rows = len(head_of)
    index, _ = run_chain(chain, core.from_heads(index_array(core.lead + (seq, hd))), False)
    width = proj.weight.shape[0]
    if width != heads * hd or index.size != rows * seq * hd or np.unique(index).size != index.size:
        raise Refused(f"the output projection's input {proj.x.name!r} is not exactly the {heads} merged heads")
    index = index.reshape(-1, width)
    row, pos, d = index // (seq * hd), index // hd % seq, index % hd
    starts = np.arange(width) - d
    blocks = _per_head(starts, head_of[row], heads, "output projection")
    token = np.broadcast_to(np.arange(index.shape[0])[:, None], index.shape)
    where = np.zeros((rows, seq), np.int64)
    where[row, pos] = token
    layout, b = _layout(where, batch, seq, index.shape[0], "output projection")
    if not (np.array_equal(where[row, pos], token) and np.array_equal(b, batch_of)):
        raise Refused("the merged heads do not put each batch's rows at that batch's tokens")
    nodes, result = list(proj.nodes), proj.out
    bias = proj.bias.astype(np.float64)
    while (use := only_use(graph, result)) is not None:  # the bias Add(s) after a MatMul projection
        node, slot = use
        c = node.inputs[1 - slot] if node.op_type == "Add" and len(node.inputs) == 2 else None
        c_bias = per_feature(c, result.shape) if c is not None and c.is_constant and c.dtype in (F32, F64) else ""
        if isinstance(c_bias, str):
            break
        bias = bias + c_bias.astype(np.float64)
        nodes.append(node)
        result = node.outputs[0]
    return OutputSide(proj, chain, layout, proj.weight[_columns(blocks, hd)], bias, result, nodes)


def _furthest_forward(graph: Graph, start: Value, index: np.ndarray, shape: tuple[int, ...]):
    """The last value on the single-use movement chain from `start` that holds the batch-first tensor of `shape`
    whose flat indices `index` (shaped like `start`) gives, else the last holding it sequence-first; returns the
    value, the chain's nodes up to it and whether it is sequence-first. (start, [], False) if there is neither."""
    canonical = index_array(shape)
    found = {False: None, True: None}
    chain = chain_forward(graph, start, lambda n, i: _moving(_step(n, i)), MAX_CHAIN)
    for k in range(1, len(chain) + 1):
        v, moved = chain[k - 1].output, run_chain(chain[:k], index, False)[0]
        for seq_first, want in ((False, canonical), (True, canonical.transpose(1, 0, 2))):
            if v.shape == want.shape and np.array_equal(moved, want):
                found[seq_first] = (v, [s.node for s in chain[:k]], seq_first)
    return found[False] or found[True] or (start, [], False)


def _batch_first_source(x: Value, want: np.ndarray, shape: tuple[int, ...]) -> Value | None:
    """A value, `x` or one it is moved from, that is the batch-first tensor of `shape` whose flat indices `want`
    (shaped like x) gives; None if there is none."""
    chain = chain_back(x, lambda v: _moving(_step_back(v)), MAX_CHAIN - 1)
    for k in range(len(chain) + 1):  # the furthest back first
        v = chain[k].input if k < len(chain) else x
        if v.shape == shape and np.array_equal(run_chain(chain[k:], index_array(shape), False)[0], want):
            return v
    return None


# -- the rewrite ---------------------------------------------------------------------------------------------------
def _private(graph: Graph, nodes: list[Node], keep: Value) -> None:
    """Refuse if a value made inside the pattern (other than `keep`, the one replaced) is used outside it."""
    if (escape := escaping_use(graph, nodes, keep)) is not None:
        n, o, user = escape
        use = "is a graph output" if user is None else f"is also used by {user.op_type} {user.name!r}"
        raise Refused(f"{o.name!r} ({n.op_type} inside the attention) {use}")


def _mask_layout(core: Core, head_of: np.ndarray, batch_of: np.ndarray, heads: int, batch: int):
    """How to give the scores' mask to MultiHeadAttention: None (as it is), or a shape to reshape it to."""
    mask, lead = core.mask, core.lead
    full = (1,) * max(len(lead) + 2 - mask.type.rank, 0) + mask.shape
    mask_lead, tail = full[: len(full) - 2], full[-2:]
    target = (batch, heads, core.seq, core.kv_seq)
    if all(d == 1 for d in mask_lead):
        shape = None if mask.type.rank <= 4 else tail
    else:
        rows = np.arange(len(head_of))
        if not (np.array_equal(batch_of, rows // heads) and np.array_equal(head_of, rows % heads)):
            raise Refused("the mask varies over batch or heads, whose order here differs from [B, heads]")
        if lead == (batch, heads) and mask.type.rank <= 4:
            shape = None
        elif len(lead) == 1 and mask_lead[-1] == batch * heads:
            shape = (batch, heads, *tail)
        else:
            raise Refused(f"the mask of shape {list(mask.shape)} does not map onto [B, heads, S, Skv]")
    got = shape if shape is not None else mask.shape
    if len(got) > 4 or not all(g in (1, t) for g, t in zip(got[::-1], target[::-1])):
        raise Refused(f"the mask of shape {list(mask.shape)} does not broadcast to [B, heads, S, Skv] = "
                      f"{list(target)}")
    return shape


def fuse(graph: Graph, core: Core) -> None:
    """Check the match at `core` completely (raising Refused), then rewrite."""
    if core.v_head_dim != core.head_dim:
        raise Refused(f"V heads have {core.v_head_dim} channels, Q/K heads {core.head_dim}; MultiHeadAttention "
                      "has one head_dim")
    if core.out.dtype not in (F32, F64):
        raise Refused(f"only float32/float64 attention is fused, not {core.out.dtype}")
    rows, seq, kv_seq, hd = math.prod(core.lead), core.seq, core.kv_seq, core.head_dim
    q = trace_operand(core.q, "Q", rows, seq, hd)
    k = trace_operand(core.k, "K", rows, kv_seq, hd)
    v = trace_operand(core.v, "V", rows, kv_seq, hd)
    if v.scale != 1.0:
        raise Refused(f"V is scaled by {v.scale:g} (a scale belongs on the scores)")
    if k.proj.x is not v.proj.x:
        raise Refused("K and V are projections of different inputs")
    starts = np.unique(q.blocks)
    heads, head_of = len(starts), np.searchsorted(starts, q.blocks)
    if rows % heads:
        raise Refused(f"{rows} score rows do not split into {heads} heads")
    batch = rows // heads
    xq, xkv = q.proj.x, k.proj.x
    q_layout, batch_of = _layout(q.tokens, batch, seq, xq.type.numel // xq.shape[-1], "Q")
    if len(set(zip(batch_of.tolist(), head_of.tolist()))) != rows:
        raise Refused("two score rows compute the same batch and head")
    kv_layout, k_batch = _layout(k.tokens, batch, kv_seq, xkv.type.numel // xkv.shape[-1], "K")
    v_layout, v_batch = _layout(v.tokens, batch, kv_seq, xkv.type.numel // xkv.shape[-1], "V")
    if not (np.array_equal(k_batch, batch_of) and np.array_equal(v_batch, batch_of)) or v_layout != kv_layout:
        raise Refused("K or V rows pair queries with keys of another batch")
    q_cols = _columns(starts, hd)
    k_cols = _columns(_per_head(k.blocks, head_of, heads, "K"), hd)
    v_cols = _columns(_per_head(v.blocks, head_of, heads, "V"), hd)
    out = trace_output(graph, core, head_of, batch_of, heads, batch)
    mask_shape = _mask_layout(core, head_of, batch_of, heads, batch) if core.mask is not None else None
    e_out = out.result.shape[-1]
    replaced, after, seq_first = _furthest_forward(graph, out.result, _token_index(out.layout, batch, seq, e_out)
                                                   .reshape(out.result.shape), (batch, seq, e_out))
    nodes = [*core.nodes, *out.nodes, *after]
    for path in (q, k, v):
        nodes += [*path.proj.nodes, *(s.node for s in path.chain)]
    nodes += [s.node for s in out.chain]
    nodes = list({id(n): n for n in nodes}.values())
    _private(graph, nodes, replaced)
    if core.mask is not None and core.mask.producer is not None and core.mask.producer in nodes:
        raise Refused("the mask is computed from the attention itself")

    # -- rewrite: everything is checked --
    before = out.proj.nodes[0]
    dtype = core.out.dtype.np_dtype

    def const(name, array):
        return graph.add_constant(f"{core.anchor.name}/{name}", np.ascontiguousarray(array, dtype=dtype))

    def batch_first(x: Value, layout: str, length: int) -> Value:
        width = x.shape[-1]
        want = _token_index(layout, batch, length, width).reshape(x.shape)
        found = _batch_first_source(x, want, (batch, length, width))
        if found is not None:
            return found
        if layout == "bs":
            return emit(graph, x, [Reshape(shape=(batch, length, width))], before)
        to_rows = [Reshape(shape=(length, batch, width))] if x.shape != (length, batch, width) else []
        return emit(graph, x, [*to_rows, Transpose(perm=(1, 0, 2))], before)

    x_q = batch_first(xq, q_layout, seq)
    x_kv = x_q if xkv is xq and kv_layout == q_layout else batch_first(xkv, kv_layout, kv_seq)
    mask = core.mask
    if mask is not None and mask.dtype == BOOL:
        mask = graph.add_node(Where(), [mask, const("mask_zero", 0.0), const("mask_neg_inf", -np.inf)],
                              before=before).outputs[0]
    if mask is not None and mask_shape is not None:
        mask = emit(graph, mask, [Reshape(shape=mask_shape)], before)
    weights = [const("Wq", q.proj.weight[:, q_cols]), const("Wk", k.proj.weight[:, k_cols]),
               const("Wv", v.proj.weight[:, v_cols]), const("bq", q.bias[q_cols]), const("bk", k.bias[k_cols]),
               const("bv", v.bias[v_cols]), const("Wo", out.weight), const("bo", out.bias)]
    op = MultiHeadAttention(num_heads=heads, head_dim=hd, scale=float(core.scale * q.scale * k.scale),
                            causal=core.causal, zero_masked_rows=core.zero_masked_rows)
    y = graph.add_node(op, [x_q, x_kv, mask, *weights], name=f"{core.anchor.name}/mha", before=before).outputs[0]
    if seq_first:
        y = emit(graph, y, [Transpose(perm=(1, 0, 2))], before)
    elif replaced is out.result:
        if out.layout == "sb":
            y = emit(graph, y, [Transpose(perm=(1, 0, 2))], before)
        if y.shape != replaced.shape:
            y = emit(graph, y, [Reshape(shape=replaced.shape)], before)
    replace(graph, replaced, y)


class FuseAttention(Pass):
    """Replace each exactly-matching attention (Softmax-anchored or ONNX Attention) with MultiHeadAttention."""

    name = "fuse-attention"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult(graph)
        for node in list(graph.nodes):
            if node.graph is not graph or node.op_type not in ("Softmax", "Attention"):
                continue
            rule = "mha_from_softmax" if node.op_type == "Softmax" else "mha_from_attention"
            try:
                core = softmax_core(node) if node.op_type == "Softmax" else attention_core(node, graph)
                if core is None:
                    continue
                fuse(graph, core)
            except Refused as e:
                refuse(result, rule, node, str(e))
                continue
            result.record(rule)
        if result.changed:
            remove_dead(graph)
        return result


register_pass(FuseAttention)
