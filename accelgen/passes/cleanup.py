"""Clean-up passes: remove exact no-ops, fold constants, remove dead code, merge common subexpressions.

remove-identity  drops nodes whose output is exactly one of their inputs: Identity, inference Dropout, Cast to the
                 same type, Reshape/Squeeze/Unsqueeze/Flatten/Expand to the same shape, Transpose with the identity
                 permutation, Tile by ones, one-input Concat/Sum/Max/Min/Mean, Split into one part, a Slice that
                 selects everything, Pad by zero, x*1, x/1, x**1, x+(-0.0), x-(+0.0) (not x+0.0, which turns -0.0
                 into +0.0), and Where with a constant all-true/all-false condition or equal branches.
fold-constants   replaces every node the compiler can evaluate (all inputs constant; Shape/Size from the type) by
                 constants, computed with the op's own reference semantics, so the numbers cannot change. It refuses
                 folds that would store much more than they read (Expand/Tile/ConstantOfShape blow-ups).
dce              removes nodes whose outputs are unused and constants nothing reads.
cse              merges identical constants (same dtype, shape and bytes), then nodes with equal ops (attributes
                 compared with their types, floats bit for bit) applied to the same inputs.

Graph outputs keep their names: `Graph.replace_all_uses_with` renames the replacement or, when it cannot (a graph
input, a constant, another output), inserts an Identity to carry the name. The passes here never remove or fold
such a carrier, which would just make another one.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections import defaultdict

import numpy as np

from accelgen.errors import AccelgenError
from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.ops.base import Op
from accelgen.ir.types import FloatType
from accelgen.passes import register_pass
from accelgen.passes.base import Pass, PassResult, Refusal
from accelgen.passes.pattern import remove_dead

# A fold may store at most this many elements, unless it stores at most FOLD_GROWTH times what it reads.
FOLD_MAX_ELEMENTS = 1 << 20
FOLD_GROWTH = 4


# -- shared helpers ---------------------------------------------------------------------------------------------
def is_output(graph: Graph, v: Value) -> bool:
    return any(o is v for o in graph.outputs)


def can_take_name(graph: Graph, v: Value) -> bool:
    """Whether `v` can be renamed to carry a graph output's name (a plain node output that is not an output)."""
    return v.producer is not None and not is_output(graph, v)


def refuse(result: PassResult, rule: str, node: Node, reason: str) -> None:
    refusal = Refusal(rule, node.name, reason)
    if refusal not in result.refusals:
        result.refusals.append(refusal)


def is_name_carrier(graph: Graph, node: Node) -> bool:
    """An Identity that gives a graph output its name because its input cannot take it."""
    return node.op_type == "Identity" and is_output(graph, node.outputs[0]) and not can_take_name(graph, node.inputs[0])


def constant_equal(v: Value | None, value: float) -> bool:
    return v is not None and v.is_constant and v.data.size > 0 and bool(np.all(v.data == value))


# -- remove-identity --------------------------------------------------------------------------------------------
_SAME_TYPE_NOOPS = {"Identity": "identity", "Dropout": "dropout", "Cast": "cast-same-type",
                    "CastLike": "cast-same-type", "Reshape": "reshape-same-shape", "Squeeze": "squeeze-noop",
                    "Unsqueeze": "unsqueeze-noop", "Flatten": "flatten-noop", "Expand": "expand-same-shape"}
_ONE_INPUT_NOOPS = {"Concat": "concat-one-input", "Sum": "variadic-one-input", "Max": "variadic-one-input",
                    "Min": "variadic-one-input", "Mean": "variadic-one-input"}


def _signed_zero(v: Value | None, negative: bool) -> bool:
    """All zeros that leave x unchanged when added (-0.0 for floats) or subtracted (+0.0); any 0 for integers."""
    if not constant_equal(v, 0):
        return False
    if v.data.dtype.kind not in "fc" and not isinstance(v.dtype, FloatType):
        return True
    return bool(np.all(np.signbit(v.data.astype(np.float64)) == negative))


def identity_source(node: Node) -> tuple[Value | None, str]:
    """The input that `node`'s first output always equals (same type too), and the rule's name; (None, "") if the
    node is not an exact no-op."""
    t, ins, out = node.op_type, node.inputs, node.outputs[0]
    x = ins[0] if ins else None
    src, rule = None, ""
    if t in _SAME_TYPE_NOOPS:
        src, rule = x, _SAME_TYPE_NOOPS[t]
    elif t in _ONE_INPUT_NOOPS and len(ins) == 1:
        src, rule = x, _ONE_INPUT_NOOPS[t]
    elif t == "Transpose" and node.op.axes(x.type.rank) == tuple(range(x.type.rank)):
        src, rule = x, "transpose-identity-perm"
    elif t == "Tile":
        src, rule = x, "tile-by-ones"  # same type only when every repeat is 1
    elif t == "Split" and len(node.outputs) == 1:
        src, rule = x, "split-into-one"
    elif t == "Slice" and all(range(*s.indices(d)) == range(d) for s, d in zip(node.op.slices(x.shape), x.shape)):
        src, rule = x, "slice-everything"
    elif t == "Pad" and all(w == (0, 0) for w in node.op.widths(x.shape)):
        src, rule = x, "pad-zero"
    elif t in ("Mul", "Div", "Pow", "Add", "Sub") and len(ins) == 2:
        a, b = ins
        if t == "Mul" and constant_equal(a, 1):
            src, rule = b, "mul-by-one"
        elif t in ("Mul", "Div", "Pow") and constant_equal(b, 1) and not (
                t == "Pow" and a.dtype.np_dtype.kind in "iu" and b.data.dtype.kind == "f"):
            # (an integer base with a float exponent goes through float64 and loses bits above 2**53)
            src, rule = a, f"{t.lower()}-by-one"
        elif t == "Add" and _signed_zero(a, negative=True):
            src, rule = b, "add-negative-zero"
        elif t in ("Add", "Sub") and _signed_zero(b, negative=(t == "Add")):
            src, rule = a, "add-negative-zero" if t == "Add" else "sub-zero"
    elif t == "Where":
        cond, a, b = ins
        if a is b:
            src, rule = a, "where-same-branches"
        elif cond.is_constant and cond.data.size and cond.data.all():
            src, rule = a, "where-always-true"
        elif cond.is_constant and cond.data.size and not cond.data.any():
            src, rule = b, "where-always-false"
    if src is None or src.type != out.type:
        return None, ""
    return src, rule


def _float_zero_near_miss(node: Node) -> bool:
    """x + 0.0 (or 0.0 + x, x - (-0.0)): a no-op except that it turns -0.0 into +0.0."""
    if node.op_type not in ("Add", "Sub") or len(node.inputs) != 2:
        return False
    slots = (0, 1) if node.op_type == "Add" else (1,)
    return any(constant_equal(node.inputs[i], 0) and node.inputs[i].data.dtype.kind == "f"
               and node.inputs[1 - i].type == node.outputs[0].type for i in slots)


class RemoveIdentity(Pass):
    name = "remove-identity"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult(graph)
        for node in list(graph.nodes):
            src, rule = identity_source(node)
            if src is None:
                if _float_zero_near_miss(node):
                    refuse(result, "add-negative-zero" if node.op_type == "Add" else "sub-zero", node,
                           "adding +0.0 (or subtracting -0.0) turns -0.0 into +0.0, so it is not a no-op")
                continue
            out = node.outputs[0]
            extra = [v for v in node.outputs[1:] if v.uses or is_output(graph, v)]
            if extra:
                refuse(result, rule, node, f"its other output {extra[0].name!r} (the mask) is used")
                continue
            if is_output(graph, out) and not can_take_name(graph, src):
                if not is_name_carrier(graph, node):
                    refuse(result, rule, node, f"it names graph output {out.name!r}, and {src.name!r} (a graph "
                                               "input, constant or another output) cannot take that name")
                continue
            graph.replace_all_uses_with(out, src)
            graph.remove_node(node)
            result.record(rule)
        return result


# -- fold-constants ---------------------------------------------------------------------------------------------
class FoldConstants(Pass):
    name = "fold-constants"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult(graph)
        for node in list(graph.nodes):
            if is_name_carrier(graph, node):
                continue
            types = [v.type if v is not None else None for v in node.inputs]
            data = [v.data if v is not None else None for v in node.inputs]
            if not all(v is None or v.is_constant for v in node.inputs) and node.op_type not in ("Shape", "Size"):
                continue  # only Shape and Size are known without their input's data (CastLike needs its data)
            stored = sum(v.type.numel for v in node.outputs)
            read = sum(v.type.numel for v in node.inputs if v is not None and v.is_constant)
            if stored > FOLD_MAX_ELEMENTS and stored > FOLD_GROWTH * max(read, 1):
                refuse(result, f"fold-{node.op_type}", node, f"folding would store {stored} elements from {read}; "
                                                             "left to compute at run time")
                continue
            try:
                folded = node.op.fold(types, data)
            except (AccelgenError, ValueError, ArithmeticError) as e:  # the run would fail the same way
                refuse(result, f"fold-{node.op_type}", node, f"evaluating it fails: {e}")
                continue
            if folded is None:
                continue
            constants = []
            for v, array in zip(node.outputs, folded):
                array = np.asarray(array).astype(v.dtype.np_dtype, copy=False)
                if array.shape != v.shape:
                    raise AssertionError(f"{node.name}: folded {v.name} has shape {array.shape}, inferred {v.shape}")
                constants.append(graph.add_constant(v.name, array))
            for v, c in zip(node.outputs, constants):
                graph.replace_all_uses_with(v, c)
            graph.remove_node(node)
            result.record(f"fold-{node.op_type}")
        graph.remove_unused_constants()
        return result


# -- dce --------------------------------------------------------------------------------------------------------
class DeadCodeElimination(Pass):
    name = "dce"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult(graph)
        constants = len(graph.constants)
        result.record("dead-node", remove_dead(graph))  # also drops the constants only dead nodes read
        result.record("dead-constant", constants - len(graph.constants))
        return result


# -- cse --------------------------------------------------------------------------------------------------------
class Unhashable(Exception):
    pass


def _freeze(value):
    """A hashable key that is equal only for attribute values that mean the same thing: types are part of the key
    (1 and 1.0 and True differ), floats compare bit for bit (0.0 and -0.0 differ), arrays by dtype, shape and bytes."""
    if value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Op):
        return op_key(value)
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, (bool, int, enum.Enum)):
        return (type(value).__name__, value)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, (np.ndarray, np.generic)):
        a = np.asarray(value)
        return ("array", a.dtype.str, a.shape, a.tobytes())
    try:
        hash(value)
    except TypeError:
        raise Unhashable(type(value).__name__) from None
    return (type(value).__qualname__, value)


def op_key(op: Op):
    return (type(op), tuple(_freeze(getattr(op, f.name)) for f in dataclasses.fields(op)))


def _merge_outputs(graph: Graph, dup: list[Value], kept: list[Value]) -> bool:
    """Replace each value of `dup` by the same-typed value of `kept`, unless a graph output would lose its name."""
    for d, k in zip(dup, kept):
        if d.type != k.type or (is_output(graph, d) and not can_take_name(graph, k)):
            return False
    for d, k in zip(dup, kept):
        graph.replace_all_uses_with(d, k)
    return True


class CommonSubexpressionElimination(Pass):
    name = "cse"

    def run(self, graph: Graph) -> PassResult:
        result = PassResult(graph)
        self.merge_constants(graph, result)
        seen: dict = {}
        for node in list(graph.nodes):
            try:
                key = (op_key(node.op), tuple(id(v) if v is not None else None for v in node.inputs),
                       tuple(v.type for v in node.outputs))
                hash(key)
            except (Unhashable, TypeError):
                continue
            first = seen.setdefault(key, node)
            if first is node:
                continue
            if _merge_outputs(graph, node.outputs, first.outputs):
                graph.remove_node(node)
                result.record("merge-node")
        return result

    @staticmethod
    def merge_constants(graph: Graph, result: PassResult) -> None:
        groups: dict = defaultdict(list)
        for c in list(graph.constants.values()):
            if is_output(graph, c) or not c.uses:
                continue
            raw = np.ascontiguousarray(c.data).tobytes()
            key = (c.type, hashlib.sha1(raw).digest())
            same = next((k for k in groups[key] if np.ascontiguousarray(k.data).tobytes() == raw), None)
            if same is None:
                groups[key].append(c)
                continue
            graph.replace_all_uses_with(c, same)
            result.record("merge-constant")
        graph.remove_unused_constants()


register_pass(lambda: RemoveIdentity())
register_pass(lambda: FoldConstants())
register_pass(lambda: DeadCodeElimination())
register_pass(lambda: CommonSubexpressionElimination())
