"""The IR verifier: structural invariants every pass must keep."""

from __future__ import annotations

from accelgen.ir.graph import Graph


class VerificationError(AssertionError):
    """The IR is inconsistent: a bug in whatever built or changed it."""


def verify(graph: Graph) -> None:
    """Check use-def links, topological order, unique names, and that every node's types match its op's inference."""
    defined: set[int] = set()
    names: set[str] = set()

    def define(v, where):
        if v.name in names:
            raise VerificationError(f"value name {v.name!r} defined twice ({where})")
        names.add(v.name)
        defined.add(id(v))

    for v in graph.inputs:
        if v.producer is not None or v.data is not None:
            raise VerificationError(f"graph input {v.name!r} has a producer or constant data")
        define(v, "graph input")
    for name, v in graph.constants.items():
        if v.data is None or v.name != name or v.producer is not None:
            raise VerificationError(f"constant {name!r} is malformed")
        if tuple(v.data.shape) != v.type.shape:
            raise VerificationError(f"constant {name!r} data shape {v.data.shape} != type {v.type}")
        define(v, "constant")
    node_names: set[str] = set()
    for node in graph.nodes:
        if node.name in node_names:
            raise VerificationError(f"node name {node.name!r} used twice")
        node_names.add(node.name)
        if node.graph is not graph:
            raise VerificationError(f"node {node.name!r} does not belong to this graph")
        for i, v in enumerate(node.inputs):
            if v is None:
                continue
            if id(v) not in defined:
                raise VerificationError(f"node {node.name!r} input {i} ({v.name!r}) is not defined before use")
            if (node, i) not in v.uses:
                raise VerificationError(f"value {v.name!r} does not record its use by {node.name!r}[{i}]")
        for v in node.outputs:
            if v.producer is not node:
                raise VerificationError(f"output {v.name!r} of {node.name!r} names another producer")
            define(v, f"output of {node.name!r}")
        want = node.op.infer([v.type if v is not None else None for v in node.inputs])
        got = [v.type for v in node.outputs]
        if want != got:
            raise VerificationError(f"node {node.name!r} ({node.op_type}) outputs {list(map(str, got))}, but its op "
                                    f"infers {list(map(str, want))}")
    for v in graph.values():
        for user, i in v.uses:
            if user.graph is not graph or user.inputs[i] is not v:
                raise VerificationError(f"value {v.name!r} records a stale use by {user.name!r}[{i}]")
    for v in graph.outputs:
        if id(v) not in defined:
            raise VerificationError(f"graph output {v.name!r} is not defined")
