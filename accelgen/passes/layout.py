"""canonicalize-layout: fold Reshape/Transpose/Squeeze/Unsqueeze/Flatten chains and sink Transposes.

The canonical form after this pass:
- every shape-only change is a Reshape with an explicit shape (no 0 or -1; Squeeze, Unsqueeze and Flatten become
  Reshapes), so later patterns have one spelling to match;
- a chain of layout ops (Reshape, Transpose, Squeeze, Unsqueeze, Flatten, Identity) whose intermediate values are
  used only by the chain is at most Reshape -> Transpose -> Reshape, with as few ops as the data movement allows:
  Transpose pairs cancel, Reshape chains merge, a Transpose that only moves size-1 axes is a Reshape, and a no-op
  chain disappears; a layout op whose input comes from a shared layout op reads past it when it can do so as a
  single op;
- a Transpose sits after elementwise ops, not before: Unary(Transpose(x)) becomes Transpose(Unary(x)), and a binary
  elementwise op whose other operand is a constant (transposed to match), a one-element value, or the same
  Transpose of another value takes the Transpose after it. Transposes so meet their inverses and cancel.

All of this is data movement, so it is exact. A chain is planned on an index array: the chain's ops run on
arange(n), giving the permutation of elements it performs, which is factored into Reshape -> Transpose -> Reshape;
the plan is accepted only if running it on the same index array reproduces that permutation.
"""

from __future__ import annotations

import math

import numpy as np

from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.ops.base import Op
from accelgen.ir.ops.conversion import Cast
from accelgen.ir.ops.elementwise import Binary, Unary
from accelgen.ir.ops.shape import Reshape, Transpose
from accelgen.passes import register_pass
from accelgen.passes.base import Pass, PassResult
from accelgen.passes.cleanup import can_take_name, is_output
from accelgen.passes.trace import (Step, apply_ops, bounded_index_array, chain_back, emit, index_array, only_user,
                                   replace)

RESHAPE_LIKE = ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity")
LAYOUT_OPS = RESHAPE_LIKE + ("Transpose",)
MAX_CHAIN = 16


# -- layout algebra -----------------------------------------------------------------------------------------------
def reshape_op(shape) -> Reshape:
    """The canonical Reshape: the explicit target shape (allowzero=1 only where a dimension really is 0)."""
    shape = tuple(int(d) for d in shape)
    return Reshape(shape=shape, allowzero=int(0 in shape))


def is_identity_perm(perm) -> bool:
    return tuple(perm) == tuple(range(len(perm)))


def factor_permutation(local: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """For an array holding a permutation of 0..n-1, find `src` and `perm` (with as few axes as possible) such that
    transpose(arange(n).reshape(src), perm).reshape(local.shape) == local; None if no such pair exists."""
    flat = np.asarray(local, dtype=np.int64).reshape(-1)
    n = flat.size
    if n == 0 or flat[0] != 0:
        return None
    dims: list[tuple[int, int]] = []  # (length, stride in the source), innermost output axis first
    block = 1
    while block < n:
        stride = int(flat[block] - flat[0])
        if stride <= 0:
            return None
        heads = flat[::block]
        bad = np.nonzero(heads != np.arange(heads.size, dtype=np.int64) * stride)[0]
        run = int(bad[0]) if bad.size else heads.size
        length = max((d for d in range(2, run + 1) if (n // block) % d == 0), default=0)
        if length == 0:
            return None
        dims.append((length, stride))
        block *= length
    dims.reverse()  # outermost output axis first
    order = sorted(range(len(dims)), key=lambda i: -dims[i][1])  # source axes, outermost first
    expect = 1
    for i in reversed(order):
        if dims[i][1] != expect:
            return None
        expect *= dims[i][0]
    src = tuple(dims[i][0] for i in order)
    perm = tuple(order.index(i) for i in range(len(dims)))
    expected = np.zeros((), dtype=np.int64)
    for length, stride in dims:
        expected = np.add.outer(expected, np.arange(length, dtype=np.int64) * stride)
    if not np.array_equal(expected.reshape(-1), flat):
        return None
    # Merge output axes that are also adjacent, in the same order, in the source.
    while True:
        j = next((j for j in range(len(perm) - 1) if perm[j + 1] == perm[j] + 1), None)
        if j is None:
            break
        a = perm[j]
        src = src[:a] + (src[a] * src[a + 1],) + src[a + 2:]
        perm = tuple(p if p <= a else p - 1 for k, p in enumerate(perm) if k != j + 1)
    return src, perm


def _group(shape: tuple[int, ...], targets: tuple[int, ...]) -> list[tuple[int, ...]] | None:
    """Split `shape` into consecutive groups whose products are `targets` (all > 1); size-1 axes join the next group,
    trailing ones the last. None if impossible."""
    groups, i = [], 0
    for t in targets:
        group: list[int] = []
        while i < len(shape) and math.prod(group) < t:
            group.append(shape[i])
            i += 1
        if math.prod(group) != t:
            return None
        groups.append(tuple(group))
    rest = tuple(shape[i:])
    if math.prod(rest) != 1:
        return None
    if groups:
        groups[-1] += rest
    return groups


def _refined(src, perm, groups_by_src):
    """Split each source axis into its group of axes; return the new source shape and permutation."""
    starts, pos = [], 0
    for g in groups_by_src:
        starts.append(pos)
        pos += len(g)
    new_src = tuple(d for g in groups_by_src for d in g)
    new_perm = tuple(starts[p] + k for p in perm for k in range(len(groups_by_src[p])))
    return new_src, new_perm


def _direct_transpose(in_shape: tuple[int, ...], local: np.ndarray) -> tuple[int, ...] | None:
    """A perm with transpose(arange.reshape(in_shape), perm) == local, matching axes by their strides (size-1 axes
    pair up in order); None if there is none (checked by the caller)."""
    out_shape = local.shape
    if len(out_shape) != len(in_shape) or local.size < 2:
        return None
    strides = [math.prod(in_shape[i + 1:]) for i in range(len(in_shape))]
    flat = local.reshape(-1)
    out_strides = [math.prod(out_shape[j + 1:]) for j in range(len(out_shape))]
    perm, free = [], [i for i, d in enumerate(in_shape) if d == 1]
    for j, d in enumerate(out_shape):
        if d == 1:
            if not free:
                return None
            perm.append(free.pop(0))
            continue
        step = int(flat[out_strides[j]] - flat[0])
        match = [i for i in range(len(in_shape)) if strides[i] == step and in_shape[i] == d and i not in perm]
        if not match:
            return None
        perm.append(match[0])
    return tuple(perm)


def _ops(in_shape, src, perm, out_shape) -> list[Op]:
    if is_identity_perm(perm):
        return [] if tuple(in_shape) == tuple(out_shape) else [reshape_op(out_shape)]
    ops: list[Op] = [] if tuple(in_shape) == tuple(src) else [reshape_op(src)]
    ops.append(Transpose(perm=tuple(perm)))
    if tuple(src[p] for p in perm) != tuple(out_shape):
        ops.append(reshape_op(out_shape))
    return ops


def plan_layout(in_shape: tuple[int, ...], local: np.ndarray) -> list[Op] | None:
    """The fewest Reshape/Transpose ops that move a tensor of `in_shape` (holding arange) to `local`: at most
    Reshape -> Transpose -> Reshape; among plans of equal length, the one with fewer Transposes."""
    factored = factor_permutation(local)
    if factored is None:
        return None
    src, perm = factored
    out_shape = tuple(local.shape)
    plans = [_ops(in_shape, src, perm, out_shape)]
    outs = tuple(src[p] for p in perm)
    by_out = _group(out_shape, outs)
    if by_out is not None:  # choose the source axes so that the Transpose produces out_shape itself
        plans.append(_ops(in_shape, *_refined(src, perm, [by_out[perm.index(a)] for a in range(len(src))]),
                          out_shape))
    by_in = _group(tuple(in_shape), src)
    if by_in is not None:  # or so that the Transpose reads in_shape itself
        plans.append(_ops(in_shape, *_refined(src, perm, by_in), out_shape))
    direct = _direct_transpose(tuple(in_shape), local)
    if direct is not None:
        plans.append([Transpose(perm=direct)] if not is_identity_perm(direct) else [])
    plans.sort(key=lambda p: (len(p), sum(isinstance(o, Transpose) for o in p)))
    want = np.asarray(local)
    start = index_array(in_shape)
    for ops in plans:
        got = apply_ops(ops, start)
        if got.shape == want.shape and np.array_equal(got, want):
            return ops
    return None


# -- the pass -------------------------------------------------------------------------------------------------------
def _is_layout(node: Node | None) -> bool:
    return node is not None and node.op_type in LAYOUT_OPS and len(node.inputs) == 1 and len(node.outputs) == 1


def _exclusive_layout_step(graph: Graph, v: Value) -> Step | None:
    """The layout op making `v` as a chain step, if only the next op of the chain reads v (so folding the chain
    removes it)."""
    return Step(v.producer) if _is_layout(v.producer) and only_user(graph, v) is not None else None


def chain_plan(x: Value, chain: list[Node]) -> list[Op] | None:
    """The fewest ops doing what `chain` does to `x`: shape-only chains and Transpose-only chains directly, mixed
    ones through an index array."""
    out = chain[-1].outputs[0].shape
    if all(n.op_type in RESHAPE_LIKE for n in chain):
        return [] if out == x.shape else [reshape_op(out)]
    if all(n.op_type in ("Transpose", "Identity") for n in chain):
        perm = tuple(range(x.type.rank))
        for n in chain:
            if n.op_type == "Transpose":
                perm = tuple(perm[a] for a in n.op.axes(len(perm)))
        moved = [a for a in perm if x.shape[a] != 1]
        if moved == sorted(moved):  # only size-1 axes move: a reshape
            return [] if out == x.shape else [reshape_op(out)]
        return [Transpose(perm=perm)]
    start = bounded_index_array(x.shape)
    return None if start is None else plan_layout(x.shape, apply_ops([n.op for n in chain], start))


class CanonicalizeLayout(Pass):
    name = "canonicalize-layout"

    def __init__(self, max_sweeps: int = 50):
        self.max_sweeps = max_sweeps

    def run(self, graph: Graph) -> PassResult:
        result = PassResult(graph)
        for _ in range(self.max_sweeps):
            fired = sum(result.fired.values())
            for node in list(graph.nodes):
                if node.graph is not graph:
                    continue
                if _is_layout(node):
                    if not self.fold_chain(graph, node, result):
                        self.read_past_shared(graph, node, result)
                elif isinstance(node.op, (Unary, Cast)) and len(node.inputs) == 1:
                    self.sink_through_unary(graph, node, result)
                elif isinstance(node.op, Binary):
                    self.sink_through_binary(graph, node, result)
            if sum(result.fired.values()) == fired:
                break
        # Last, spell what is left canonically (earlier, it would only rewrite ops that chains then fold away).
        for node in list(graph.nodes):
            if node.graph is graph and _is_layout(node):
                self.canonicalize_node(graph, node, result)
        graph.remove_unused_constants()
        return result

    @staticmethod
    def _replace(graph: Graph, old: Value, x: Value, ops: list[Op], at: Node, name: str) -> bool:
        if not ops and is_output(graph, old) and not can_take_name(graph, x):
            return False  # the chain is a no-op, but it gives a graph output its name
        replace(graph, old, emit(graph, x, ops, at, name))
        return True

    def fold_chain(self, graph: Graph, end: Node, result: PassResult) -> bool:
        """Re-plan the longest chain of layout ops ending at `end` whose inner values only the chain uses, if the
        plan has fewer ops (or as many, with fewer Transposes)."""
        if _is_layout(only_user(graph, end.outputs[0])):
            return False  # not the end of its chain
        back = chain_back(end.inputs[0], lambda v: _exclusive_layout_step(graph, v), MAX_CHAIN - 1)
        chain = [s.node for s in back] + [end]
        x = chain[0].inputs[0]
        ops = chain_plan(x, chain)
        if ops is None:
            return False
        transposes = sum(n.op_type == "Transpose" for n in chain)
        new_transposes = sum(isinstance(o, Transpose) for o in ops)
        if (len(ops), new_transposes) >= (len(chain), transposes):
            return False
        if not self._replace(graph, end.outputs[0], x, ops, end, end.name):
            return False
        for n in reversed(chain):
            graph.remove_node(n)
        rule = ("drop-layout-noop" if not ops else "fold-layout-chain" if len(chain) > 1
                else "transpose-to-reshape")
        result.record(rule)
        return True

    def read_past_shared(self, graph: Graph, node: Node, result: PassResult) -> bool:
        """A layout op reading a layout op that other nodes also use: read that op's input, if one op can."""
        inner = node.inputs[0].producer
        if not _is_layout(inner) or only_user(graph, inner.outputs[0]) is node:
            return False  # (an exclusive inner op is part of this node's chain)
        x = inner.inputs[0]
        ops = chain_plan(x, [inner, node])
        if ops is None or len(ops) > 1:
            return False
        if not self._replace(graph, node.outputs[0], x, ops, node, node.name):
            return False
        graph.remove_node(node)
        result.record("fold-layout-pair")
        return True

    def canonicalize_node(self, graph: Graph, node: Node, result: PassResult) -> None:
        """Squeeze/Unsqueeze/Flatten and implicit Reshapes become explicit Reshapes; a default perm is spelled."""
        if node.op_type == "Transpose":
            if node.op.perm is not None:
                return
            op = Transpose(perm=node.op.axes(node.inputs[0].type.rank))
        elif node.op_type in RESHAPE_LIKE:
            op = reshape_op(node.outputs[0].shape)
            if node.op == op:
                return
        else:
            return
        if self._replace(graph, node.outputs[0], node.inputs[0], [op], node, node.name):
            graph.remove_node(node)
            result.record("canonical-reshape" if node.op_type != "Transpose" else "explicit-perm")

    @staticmethod
    def _sinkable(graph: Graph, v: Value | None, user: Node) -> Node | None:
        """The Transpose producing `v`, if `user` is its only user."""
        t = v.producer if v is not None else None
        if t is None or t.op_type != "Transpose" or only_user(graph, v) is not user:
            return None
        return t

    def sink_through_unary(self, graph: Graph, node: Node, result: PassResult) -> None:
        t = self._sinkable(graph, node.inputs[0], node)
        if t is None:
            return
        y = graph.add_node(node.op, [t.inputs[0]], name=node.name, before=node).outputs[0]
        replace(graph, node.outputs[0], emit(graph, y, [t.op], node, t.name))
        graph.remove_node(node)
        graph.remove_node(t)
        result.record("transpose-through-unary")

    def sink_through_binary(self, graph: Graph, node: Node, result: PassResult) -> None:
        a, b = node.inputs
        ta, tb = self._sinkable(graph, a, node), self._sinkable(graph, b, node)
        if ta is None and tb is None:
            return
        t = ta or tb
        rank = t.outputs[0].type.rank
        perm = t.op.axes(rank)
        new_inputs = []
        for v, tv in ((a, ta), (b, tb)):
            if tv is not None:
                if tv.op.axes(rank) != perm or tv.inputs[0].type.rank != rank:
                    return
                new_inputs.append(tv.inputs[0])
            elif v.type.rank > rank:
                return
            elif v.type.numel == 1:
                new_inputs.append(v)  # broadcasts the same way on either side of the Transpose
            elif v.is_constant:
                full = v.data.reshape((1,) * (rank - v.type.rank) + v.data.shape)
                inverse = np.argsort(perm)
                new_inputs.append(graph.add_constant(f"{v.name}_t", np.ascontiguousarray(full.transpose(inverse))))
            else:
                return
        y = graph.add_node(node.op, new_inputs, name=node.name, before=node).outputs[0]
        replace(graph, node.outputs[0], emit(graph, y, [t.op], node, t.name))
        graph.remove_node(node)
        for tv in {id(x): x for x in (ta, tb) if x is not None}.values():
            graph.remove_node(tv)
        result.record("transpose-through-binary")


register_pass(lambda: CanonicalizeLayout())
