"""Rewrite rules as data: a pattern over the IR, an optional check that explains a refusal, and a rewrite.

    rule = Rule(
        "dense_from_matmul_add",
        op("Add", op("MatMul", val("x"), const("w")), const("b"), commutative=True),
        check=lambda m: None if m["b"].shape == (m["w"].shape[-1],) else "bias is not one value per output",
        rewrite=lambda g, m, at: g.add_node(Dense(), [m["x"], m["w"], m["b"]], before=at).outputs,
    )

A pattern is a tree rooted at the node being rewritten. `op(...)` matches a node by op type (and optionally by an
attribute predicate) and captures it under `name`; `val(name)` matches any value, `const(name)` a constant. A name
used twice must bind the same value both times. Interior nodes must not be used outside the pattern (otherwise the
rewrite would have to keep them, and the fusion would not save anything), which the matcher checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from accelgen.ir.graph import Graph, Node, Value
from accelgen.passes.base import Pass, PassResult, Refusal


@dataclass(frozen=True)
class Pat:
    op_types: tuple[str, ...] | None = None  # None: a leaf matching any value
    inputs: tuple[Pat, ...] | None = None  # None: inputs not constrained
    name: str | None = None
    constant: bool = False
    commutative: bool = False  # two-input op whose inputs may come in either order
    where: Callable[[Node], bool] | None = None  # extra condition on the node (e.g. an attribute value)


def op(op_types: str | Sequence[str], *inputs: Pat, name: str | None = None, commutative: bool = False,
       where: Callable[[Node], bool] | None = None, any_inputs: bool = False) -> Pat:
    types = (op_types,) if isinstance(op_types, str) else tuple(op_types)
    return Pat(types, None if any_inputs else tuple(inputs), name, False, commutative, where)


def val(name: str | None = None) -> Pat:
    return Pat(name=name)


def const(name: str | None = None) -> Pat:
    return Pat(name=name, constant=True)


class Match(dict):
    """Capture name -> Node (for op patterns) or Value (for leaves); `.interior` lists the matched nodes."""

    def __init__(self):
        super().__init__()
        self.interior: list[Node] = []


def _match_value(pat: Pat, v: Value | None, m: Match, root: bool) -> bool:
    if v is None:
        return False
    if pat.op_types is None:
        if pat.constant and not v.is_constant:
            return False
        if pat.name is not None:
            if pat.name in m and m[pat.name] is not v:
                return False
            m[pat.name] = v
        return True
    node = v.producer
    if node is None or node.op_type not in pat.op_types or (pat.where is not None and not pat.where(node)):
        return False
    if not root and (len(v.uses) != 1 or len(node.outputs) != 1 or any(o is v for o in node.graph.outputs)):
        return False  # an interior value used elsewhere (or a graph output) would have to be kept
    return _match_node(pat, node, m)


def _match_node(pat: Pat, node: Node, m: Match) -> bool:
    if pat.name is not None:
        if pat.name in m and m[pat.name] is not node:
            return False
        m[pat.name] = node
    m.interior.append(node)
    if pat.inputs is None:
        return True
    if len(node.inputs) != len(pat.inputs):
        return False
    orders = [node.inputs]
    if pat.commutative and len(node.inputs) == 2:
        orders.append(node.inputs[::-1])
    for inputs in orders:
        trial = Match()
        trial.update(m)
        trial.interior = list(m.interior)
        if all(_match_value(p, v, trial, False) for p, v in zip(pat.inputs, inputs)):
            m.clear()
            m.update(trial)
            m.interior = trial.interior
            return True
    return False


def match(pat: Pat, node: Node) -> Match | None:
    """Match `pat` with `node` as its root."""
    if pat.op_types is None or node.op_type not in pat.op_types or (pat.where is not None and not pat.where(node)):
        return None
    m = Match()
    return m if _match_node(pat, node, m) else None


Rewrite = Callable[[Graph, Match, Node], Sequence[Value]]


@dataclass(frozen=True)
class Rule:
    """`rewrite(graph, match, root)` builds replacement nodes (insert them `before=root`) and returns the values
    that replace the root's outputs, in order. `check(match)` returns None to proceed or a reason to refuse."""

    name: str
    pattern: Pat
    rewrite: Rewrite
    check: Callable[[Match], str | None] | None = None


def remove_dead(graph: Graph) -> int:
    """Remove nodes whose outputs are unused (not graph outputs); return how many."""
    removed = 0
    outputs = {id(v) for v in graph.outputs}
    for node in reversed(list(graph.nodes)):
        if all(not v.uses and id(v) not in outputs for v in node.outputs):
            graph.remove_node(node)
            removed += 1
    graph.remove_unused_constants()
    return removed


def escaping_use(graph: Graph, nodes: Sequence[Node], keep: Value | None = None,
                 inside: Sequence[Node] = ()) -> tuple[Node, Value, Node | None] | None:
    """The first value made by `nodes` (other than `keep`, the one a rewrite replaces) that a node outside `nodes`
    and `inside` reads, or that is a graph output: (its producer, the value, that reader or None). A rewrite that
    removes `nodes` would have to keep it."""
    own = {id(n) for n in (*nodes, *inside)}
    for node in nodes:
        for v in node.outputs:
            if v is keep:
                continue
            if v in graph.outputs:
                return node, v, None
            for user, _ in v.uses:
                if id(user) not in own:
                    return node, v, user
    return None


def apply_rules(graph: Graph, rules: Sequence[Rule], result: PassResult) -> None:
    """One sweep over the nodes in order, trying each rule at each node that is still in the graph."""
    for node in list(graph.nodes):
        if node.graph is not graph:
            continue
        for rule in rules:
            m = match(rule.pattern, node)
            if m is None:
                continue
            reason = rule.check(m) if rule.check is not None else None
            if reason:
                refusal = Refusal(rule.name, node.name, reason)
                if refusal not in result.refusals:
                    result.refusals.append(refusal)
                continue
            new = list(rule.rewrite(graph, m, node))
            for old, repl in zip(node.outputs, new):
                if old.type != repl.type:
                    raise AssertionError(f"rule {rule.name} replaces {old} with {repl}: types differ")
                graph.replace_all_uses_with(old, repl)
            for interior in m.interior:  # root first, then its inputs: each becomes dead in turn
                if interior.graph is graph and not any(v.uses or v in graph.outputs for v in interior.outputs):
                    graph.remove_node(interior)
            result.record(rule.name)
            break


class RewritePass(Pass):
    """A pass made of rules, applied in sweeps until none fires."""

    def __init__(self, name: str, rules: Sequence[Rule], max_sweeps: int = 20):
        self.name = name
        self.rules = list(rules)
        self.max_sweeps = max_sweeps

    def run(self, graph: Graph) -> PassResult:
        result = PassResult(graph)
        for _ in range(self.max_sweeps):
            before = sum(result.fired.values())
            apply_rules(graph, self.rules, result)
            if sum(result.fired.values()) == before:
                break
        graph.remove_unused_constants()
        return result
