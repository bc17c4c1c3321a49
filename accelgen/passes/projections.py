"""split-projections: a projection with a constant weight whose output is only ever used in column blocks becomes
one projection per block, with the weight (and bias) sliced.

A fused QKV projection computes y = x @ W + b with W [K, 3E] and then cuts y into Q, K and V through layout ops.
Exporters spell the cut many ways: Split or Slice on the last axis (hand-written blocks), or, for PyTorch's
nn.MultiheadAttention, Reshape(..., 3, E) -> Unsqueeze -> Transpose -> Squeeze -> Gather(i). Rather than matching
each spelling, the pass follows y through every layout and selection op (Reshape, Transpose, Squeeze, Unsqueeze,
Flatten, Identity, Split, Slice, Gather with constant indices), running them on an index array that numbers y's
elements. A value whose elements are exactly the block y[..., lo:hi] (in any arrangement) is a *part*: it is
rebuilt as x @ W[:, lo:hi] + b[lo:hi], followed by the fewest Reshape/Transpose ops that arrange the block as the
part was arranged (planned and checked on the index array, as canonicalize-layout does). Each output element is
the same dot product as before, so the numbers are unchanged.

It refuses when a value mixing several blocks (or y itself) is used by anything but those layout ops, when parts
overlap, or when a part's arrangement is not a Reshape/Transpose of its block.
"""

from __future__ import annotations

import itertools

import numpy as np

from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.ops.elementwise import Add
from accelgen.ir.ops.linear import Gemm, MatMul
from accelgen.passes import register_pass
from accelgen.passes.base import Pass, PassResult
from accelgen.passes.cleanup import is_output, refuse
from accelgen.passes.layout import plan_layout
from accelgen.passes.trace import MOVES, bounded_index_array, emit, movement_step, only_use, replace, run_node

SELECTION_OPS = MOVES | {"Identity"}
MAX_REGION_NODES = 64
RULE = "split-projection"


def _projection(graph: Graph, node: Node):
    """(y, bias or None, bias first?) for a MatMul/Gemm with a constant weight: y is its output, or that of the Add
    of a constant that does not broadcast it (its columns are sliced with the weight's); None if `node` is not such
    a projection."""
    if node.op_type not in ("MatMul", "Gemm"):
        return None
    x, w = node.inputs[:2]
    if not w.is_constant or x.is_constant or w.type.rank != 2:
        return None
    y = node.outputs[0]
    n = y.shape[-1] if y.type.rank else 0
    if node.op_type == "Gemm" and len(node.inputs) > 2:
        c = node.inputs[2]
        if c is not None and not c.is_constant and c.type.rank and c.shape[-1] == n > 1:
            return None  # a per-column C computed at run time cannot be sliced here
    use = only_use(graph, y)
    if use is not None and use[0].op_type == "Add":
        add = use[0]
        b = add.inputs[1] if add.inputs[0] is y else add.inputs[0]
        if b.is_constant and add.outputs[0].type == y.type and (b.type.rank == 0 or b.shape[-1] in (1, n)):
            return add.outputs[0], b, add.inputs[0] is b
    return y, None, False


def _follow(graph: Graph, y: Value, index: np.ndarray):
    """Follow `y`, numbered by `index`, through selection ops. Returns (parts, region, problem): parts = [(value,
    lo, hi, index array)], region the selection ops passed, problem the first reason the projection cannot be split
    (or None)."""
    n = y.shape[-1]
    rows = y.type.numel // n
    parts, region, problem = [], [], None
    stack = [(y, index)]
    while stack:
        v, idx = stack.pop()
        if v is not y and idx.size:
            cols = idx % n
            lo, hi = int(cols.min()), int(cols.max()) + 1
            if hi - lo < n and idx.size == rows * (hi - lo) and np.unique(idx).size == idx.size:
                if v.uses or is_output(graph, v):
                    parts.append((v, lo, hi, idx))
                continue
        if is_output(graph, v):
            problem = problem or f"{v.name!r}, which holds more than one column block, is a graph output"
        for user in v.users:
            if user.inputs[0] is not v or movement_step(user, 0, kinds=SELECTION_OPS) is None:
                problem = problem or (f"{v.name!r}, which holds more than one column block, is used by "
                                      f"{user.name!r} ({user.op_type})")
                continue
            if user in region:
                continue
            region.append(user)
            if len(region) > MAX_REGION_NODES:
                return parts, region, f"more than {MAX_REGION_NODES} layout ops follow the projection"
            stack.extend(zip(user.outputs, run_node(user, idx)))
    return parts, region, problem


class SplitProjections(Pass):
    name = "split-projections"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult(graph)
        for node in list(graph.nodes):
            if node.graph is graph:
                self.split(graph, node, result)
        graph.remove_unused_constants()
        return result

    def split(self, graph: Graph, node: Node, result: PassResult) -> None:
        found = _projection(graph, node)
        if found is None:
            return
        y, bias, bias_first = found
        if y.type.rank == 0 or y.type.numel == 0 or not any(u.op_type in SELECTION_OPS for u in y.users):
            return
        index = bounded_index_array(y.shape)
        if index is None:
            refuse(result, RULE, node, f"the output has {y.type.numel} elements, too many to trace")
            return
        parts, region, problem = _follow(graph, y, index)
        if not parts:
            return  # nothing is cut out of this projection's output
        if problem:
            refuse(result, RULE, node, problem)
            return
        if len(node.inputs[1].uses) > 1:
            refuse(result, RULE, node, f"weight {node.inputs[1].name!r} is shared with other nodes; slicing it "
                                       "would store it twice")
            return
        blocks = sorted({(lo, hi) for _, lo, hi, _ in parts})
        for (lo1, hi1), (lo2, hi2) in itertools.pairwise(blocks):
            if lo2 < hi1:
                refuse(result, RULE, node, f"column blocks [{lo1}:{hi1}] and [{lo2}:{hi2}] overlap")
                return
        plans = []
        for v, lo, hi, idx in parts:
            width = hi - lo
            local = (idx // y.shape[-1]) * width + (idx % y.shape[-1] - lo)
            ops = plan_layout(y.shape[:-1] + (width,), local)
            if ops is None:
                refuse(result, RULE, node, f"{v.name!r} is not a Reshape/Transpose of its column block")
                return
            plans.append(ops)
        made = {block: self.project(graph, node, bias, bias_first, *block) for block in blocks}
        for (v, lo, hi, _), ops in zip(parts, plans):
            replace(graph, v, emit(graph, made[(lo, hi)], ops, node, f"{v.name}_layout"))
        for dead in [*reversed(region), *([y.producer] if y.producer is not node else []), node]:
            if dead.graph is graph and not any(o.uses or is_output(graph, o) for o in dead.outputs):
                graph.remove_node(dead)
        result.record(RULE if len(blocks) > 1 else "narrow-projection")

    @staticmethod
    def project(graph: Graph, node: Node, bias: Value | None, bias_first: bool, lo: int, hi: int) -> Value:
        """The projection restricted to output columns lo:hi."""
        tag = f"cols{lo}_{hi}"
        w = node.inputs[1]
        if node.op_type == "MatMul":
            part_w = graph.add_constant(f"{w.name}_{tag}", np.ascontiguousarray(w.data[:, lo:hi]))
            out = graph.add_node(MatMul(), [node.inputs[0], part_w], name=f"{node.name}_{tag}", before=node).outputs[0]
        else:
            op: Gemm = node.op
            cols = w.data[lo:hi, :] if op.transB else w.data[:, lo:hi]
            inputs = [node.inputs[0], graph.add_constant(f"{w.name}_{tag}", np.ascontiguousarray(cols))]
            if len(node.inputs) > 2 and node.inputs[2] is not None:
                inputs.append(_columns(graph, node.inputs[2], node.outputs[0].shape[-1], lo, hi, tag))
            out = graph.add_node(op, inputs, name=f"{node.name}_{tag}", before=node).outputs[0]
        if bias is None:
            return out
        b = _columns(graph, bias, node.outputs[0].shape[-1], lo, hi, tag)
        add = graph.add_node(Add(), [b, out] if bias_first else [out, b], name=f"{node.name}_bias_{tag}", before=node)
        return add.outputs[0]


def _columns(graph: Graph, c: Value, n: int, lo: int, hi: int, tag: str) -> Value:
    """Columns lo:hi of a constant broadcast along the last axis (kept whole when it has one column)."""
    if c.type.rank == 0 or c.shape[-1] != n:
        return c
    return graph.add_constant(f"{c.name}_{tag}", np.ascontiguousarray(c.data[..., lo:hi]))


register_pass(lambda: SplitProjections())
