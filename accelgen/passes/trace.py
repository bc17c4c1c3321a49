"""Tracing data movement on index arrays: what canonicalize-layout, split-projections and fuse-attention share.

Layout and selection ops (Reshape, Transpose, Gather, Split, ...) only move elements. Run, with their constant
operands, on an array that numbers a tensor's elements, they say for every output element which input element it
is, whatever ops the exporter spelled the movement with; so these passes compare index arrays instead of matching
op sequences. This module holds the pieces they all need: the numbering, the test for a node that only moves its
data, running nodes and ops on an array, walking chains of such steps back and forward, the one use of a value, and
inserting the ops a pass plans.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.ops.base import Op
from accelgen.passes.cleanup import is_output

# Ops whose outputs are elements of their first input, chosen by attributes and constant operands.
MOVES = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Gather", "Slice", "Split"})
MAX_INDEX_ELEMENTS = 1 << 22  # a bounded index array (int64) stays under 32 MiB


# -- index arrays -------------------------------------------------------------------------------------------------
def index_array(shape) -> np.ndarray:
    """A tensor of `shape` whose elements are their own flat indices: data movement run on it shows where each
    element comes from."""
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape)


def bounded_index_array(shape) -> np.ndarray | None:
    """`index_array(shape)`, or None when it is empty (nothing to trace) or too large to build at compile time."""
    n = math.prod(shape)
    return None if n == 0 or n > MAX_INDEX_ELEMENTS else index_array(shape)


def apply_ops(ops: list[Op], array: np.ndarray) -> np.ndarray:
    """Run a chain of one-input ops (a planned layout) on `array`."""
    for op in ops:
        array = op.compute([array])[0]
    return array


def run_node(node: Node, array: np.ndarray, slot: int = 0) -> list[np.ndarray]:
    """All outputs of `node` computed with `array` at input `slot` and the node's own constants elsewhere."""
    return node.op.compute([array if i == slot else (v.data if v is not None else None)
                            for i, v in enumerate(node.inputs)])


# -- chains of data movement --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One node of a traced chain: the data enters at input `slot` and the chain continues from output `out`."""

    node: Node
    slot: int = 0
    out: int = 0

    @property
    def input(self) -> Value:
        return self.node.inputs[self.slot]

    @property
    def output(self) -> Value:
        return self.node.outputs[self.out]

    def run(self, array: np.ndarray) -> np.ndarray:
        return run_node(self.node, array, self.slot)[self.out]


def movement_step(node: Node, slot: int, out: int = 0, kinds=MOVES) -> Step | None:
    """`node` as a step that only moves the data entering at input `slot`, or None. It must be one of `kinds`,
    take the data (computed, not a constant) as its first input and only constants besides, so that running it on
    an index array is exact; only a Split continues from an output other than its first."""
    if node.op_type not in kinds or slot != 0 or node.inputs[0].is_constant:
        return None
    if any(not v.is_constant for v in node.inputs[1:] if v is not None) or (out != 0 and node.op_type != "Split"):
        return None
    return Step(node, slot, out)


def chain_back(v: Value, step_of: Callable[[Value], Step | None], limit: int) -> list[Step]:
    """The steps (first first) that compute `v`, walking back while `step_of(value)` gives the step making each
    value; at most `limit` of them. `chain[0].input` (or v, for no steps) is where the chain starts."""
    chain: list[Step] = []
    while len(chain) < limit and (step := step_of(v)) is not None:
        chain.insert(0, step)
        v = step.input
    return chain


def chain_forward(graph: Graph, v: Value, step_of: Callable[[Node, int], Step | None], limit: int) -> list[Step]:
    """The steps that carry `v` forward, each through the only use of the value before it (a fork or a graph
    output ends the chain: the values inside are then private to it), while `step_of(node, slot)` accepts that use
    as a step; at most `limit` of them. `chain[-1].output` (or v, for no steps) is where it ends."""
    chain: list[Step] = []
    while len(chain) < limit and (use := only_use(graph, v)) is not None and (step := step_of(*use)) is not None:
        chain.append(step)
        v = step.output
    return chain


# -- graph queries and edits --------------------------------------------------------------------------------------
def only_use(graph: Graph, v: Value) -> tuple[Node, int] | None:
    """The one (node, input slot) reading `v`; None if it is read more than once or is a graph output, when
    rewriting it would change what someone else sees."""
    return v.uses[0] if len(v.uses) == 1 and not is_output(graph, v) else None


def only_user(graph: Graph, v: Value) -> Node | None:
    """The one node reading `v` (at one or more inputs); None if several do or it is a graph output."""
    users = v.users
    return users[0] if len(users) == 1 and not is_output(graph, v) else None


def emit(graph: Graph, x: Value, ops: list[Op], before: Node, name: str = "") -> Value:
    """Insert the chain `ops` applied to `x` before `before`; return its result (x itself for no ops)."""
    for op in ops:
        x = graph.add_node(op, [x], name=name, before=before).outputs[0]
    return x


def replace(graph: Graph, old: Value, new: Value) -> None:
    """Make every use of `old` read `new`, which must have the same type (a rewrite never retypes a value)."""
    if old.type != new.type:
        raise AssertionError(f"replacing {old} with {new}: types differ")
    graph.replace_all_uses_with(old, new)
