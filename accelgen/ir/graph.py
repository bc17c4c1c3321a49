"""The graph IR: values with use-def links, nodes holding an op (its attributes and meaning), and graphs.

A `Value` is produced by at most one node (none for graph inputs and constants) and knows every (node, slot) that
uses it. Nodes are kept in topological order. Passes change graphs only through the small API here
(`add_node`, `remove_node`, `replace_all_uses_with`, `set_input`), so the links never go stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from accelgen.ir.types import ElementType, TensorType

if TYPE_CHECKING:
    from accelgen.ir.ops.base import Op


class Value:
    """An SSA value: a tensor of a static type, optionally with constant data."""

    __slots__ = ("name", "type", "data", "producer", "uses")

    def __init__(self, name: str, type: TensorType, data: np.ndarray | None = None):
        self.name = name
        self.type = type
        self.data = data
        self.producer: Node | None = None
        self.uses: list[tuple[Node, int]] = []

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> ElementType:
        return self.type.dtype

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def users(self) -> list[Node]:
        seen: dict[int, Node] = {}
        for node, _ in self.uses:
            seen.setdefault(id(node), node)
        return list(seen.values())

    def __repr__(self) -> str:
        return f"Value({self.name!r}: {self.type})"


class Node:
    """One operation: `op` (an Op instance: type, attributes, semantics) applied to input values."""

    __slots__ = ("name", "op", "inputs", "outputs", "graph")

    def __init__(self, op: Op, inputs: Sequence[Value | None], outputs: Sequence[Value], name: str = ""):
        self.name = name
        self.op = op
        self.inputs: list[Value | None] = []
        self.outputs: list[Value] = list(outputs)
        self.graph: Graph | None = None
        for v in inputs:
            self._append_input(v)
        for v in self.outputs:
            if v.producer is not None:
                raise ValueError(f"value {v.name!r} already has a producer")
            v.producer = self

    @property
    def op_type(self) -> str:
        return self.op.op_type

    def _append_input(self, v: Value | None):
        if v is not None:
            v.uses.append((self, len(self.inputs)))
        self.inputs.append(v)

    def set_input(self, index: int, v: Value | None):
        old = self.inputs[index]
        if old is not None:
            old.uses.remove((self, index))
        if v is not None:
            v.uses.append((self, index))
        self.inputs[index] = v

    def detach(self):
        """Drop this node's links to its inputs and outputs (used when it leaves the graph)."""
        for i in range(len(self.inputs)):
            self.set_input(i, None)
        for v in self.outputs:
            v.producer = None

    def __repr__(self) -> str:
        return f"Node({self.name!r}: {self.op_type})"


class Graph:
    """A dataflow graph with named inputs and outputs, constants, and nodes in topological order."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self.constants: dict[str, Value] = {}
        self._names: set[str] = set()  # value names
        self._node_names: set[str] = set()
        self._suffix: dict[str, int] = {}  # next numeric suffix to try per base name

    # -- naming -------------------------------------------------------------------------------------------------
    def _unique(self, base: str, taken: set[str]) -> str:
        base = base or "v"
        name = base
        while name in taken:
            n = self._suffix.get(base, 0)
            self._suffix[base] = n + 1
            name = f"{base}_{n}"
        taken.add(name)
        return name

    def unique_name(self, base: str) -> str:
        """A value name not used yet in this graph."""
        return self._unique(base, self._names)

    def unique_node_name(self, base: str) -> str:
        return self._unique(base, self._node_names)

    # -- building -----------------------------------------------------------------------------------------------
    def add_input(self, name: str, type: TensorType) -> Value:
        v = Value(self.unique_name(name), type)
        self.inputs.append(v)
        return v

    def add_constant(self, name: str, data: np.ndarray) -> Value:
        data = np.asarray(data)
        v = Value(self.unique_name(name), TensorType.of(data), data)
        self.constants[v.name] = v
        return v

    def new_value(self, name: str, type: TensorType) -> Value:
        return Value(self.unique_name(name), type)

    def add_node(self, op: Op, inputs: Sequence[Value | None], output_names: Sequence[str] | None = None,
                 name: str = "", *, before: Node | None = None) -> Node:
        """Create a node for `op` with outputs typed by the op's own inference; append it (or insert before)."""
        types = op.infer([v.type if v is not None else None for v in inputs])
        names = list(output_names) if output_names is not None else [f"{name or op.op_type}_out{i}" for i in range(len(types))]
        if len(names) != len(types):
            raise ValueError(f"{op.op_type}: {len(types)} outputs, {len(names)} names given")
        outputs = [self.new_value(n, t) for n, t in zip(names, types)]
        node = Node(op, inputs, outputs, self.unique_node_name(name or op.op_type))
        node.graph = self
        if before is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(self.nodes.index(before), node)
        return node

    def remove_node(self, node: Node):
        """Remove a node whose outputs are no longer used."""
        for v in node.outputs:
            if v.uses or v in self.outputs:
                raise ValueError(f"cannot remove {node.name!r}: output {v.name!r} is still used")
        node.detach()
        node.graph = None
        self.nodes.remove(node)

    def replace_all_uses_with(self, old: Value, new: Value):
        """Point every use of `old` at `new`. Graph outputs keep their names (callers look results up by them):
        `new` takes over the name when it is a plain node output, otherwise an Identity carries the name."""
        for node, index in list(old.uses):
            node.set_input(index, new)
        if not any(v is old for v in self.outputs):
            return
        renamable = new.producer is not None and not any(v is new for v in self.outputs)
        if not renamable:
            from accelgen.ir.ops.elementwise import Identity

            carrier = self.add_node(Identity(), [new], name=f"{old.name}_identity")
            new = carrier.outputs[0]
        self.outputs = [new if v is old else v for v in self.outputs]
        name = old.name
        self.rename(old, self.unique_name(name + "_replaced"))
        self.rename(new, name)

    def rename(self, value: Value, name: str):
        """Give `value` a name (unique in the graph unless it is the value's own old name being reused)."""
        if value.name in self.constants and self.constants[value.name] is value:
            del self.constants[value.name]
            self.constants[name] = value
        self._names.discard(value.name)
        self._names.add(name)
        value.name = name

    def remove_unused_constants(self):
        used = {id(v) for n in self.nodes for v in n.inputs if v is not None} | {id(v) for v in self.outputs}
        self.constants = {k: v for k, v in self.constants.items() if id(v) in used}

    # -- queries ------------------------------------------------------------------------------------------------
    def values(self) -> Iterable[Value]:
        yield from self.inputs
        yield from self.constants.values()
        for n in self.nodes:
            yield from n.outputs

    def find_node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def toposort(self):
        """Reorder nodes topologically (stable: keeps the current order where dependencies allow)."""
        order, placed = [], set()
        ready = {id(v) for v in self.inputs} | {id(v) for v in self.constants.values()}
        pending = list(self.nodes)
        while pending:
            rest = []
            for n in pending:
                if all(v is None or id(v) in ready for v in n.inputs):
                    order.append(n)
                    placed.add(id(n))
                    ready.update(id(v) for v in n.outputs)
                else:
                    rest.append(n)
            if len(rest) == len(pending):
                raise ValueError(f"graph has a cycle or a dangling input at node {rest[0].name!r}")
            pending = rest
        self.nodes = order

    def copy(self) -> Graph:
        """A deep copy of the structure; constant arrays are shared (treat them as immutable)."""
        g = Graph(self.name)
        g._names, g._node_names, g._suffix = set(self._names), set(self._node_names), dict(self._suffix)
        vmap: dict[int, Value] = {}

        def clone(v: Value) -> Value:
            c = Value(v.name, v.type, v.data)
            vmap[id(v)] = c
            return c

        g.inputs = [clone(v) for v in self.inputs]
        g.constants = {k: clone(v) for k, v in self.constants.items()}
        for n in self.nodes:
            outs = [clone(v) for v in n.outputs]
            new = Node(n.op, [vmap[id(v)] if v is not None else None for v in n.inputs], outs, n.name)
            new.graph = g
            g.nodes.append(new)
        g.outputs = [vmap[id(v)] for v in self.outputs]
        return g

    def __str__(self) -> str:
        from accelgen.ir.printer import format_graph

        return format_graph(self)
