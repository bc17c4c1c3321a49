"""Graph IR: use-def links, the mutation API, topological order, copying, the verifier and the printer."""

import numpy as np
import pytest

from accelgen.ir.graph import Graph
from accelgen.ir.ops.activations import LeakyRelu, Relu
from accelgen.ir.ops.elementwise import Add
from accelgen.ir.types import F32, TensorType
from accelgen.ir.verify import VerificationError, verify


def small_graph():
    g = Graph("g")
    x = g.add_input("x", TensorType((1, 4), F32))
    w = g.add_constant("w", np.ones((1, 4), np.float32))
    a = g.add_node(Relu(), [x], ["a"])
    b = g.add_node(Add(), [a.outputs[0], w], ["b"])
    g.outputs.append(b.outputs[0])
    return g, x, w, a, b


def test_use_def_links():
    g, x, w, a, b = small_graph()
    assert x.uses == [(a, 0)] and w.uses == [(b, 1)]
    assert a.outputs[0].producer is a and a.outputs[0].users == [b]
    assert b.outputs[0].type == TensorType((1, 4), F32)
    verify(g)


def test_replace_all_uses_and_remove():
    g, x, w, a, b = small_graph()
    g.replace_all_uses_with(a.outputs[0], x)
    assert b.inputs[0] is x and a.outputs[0].uses == []
    g.remove_node(a)
    assert x.uses == [(b, 0)] and [n.op_type for n in g.nodes] == ["Add"]
    verify(g)


def test_remove_used_node_refused():
    g, x, w, a, b = small_graph()
    with pytest.raises(ValueError, match="still used"):
        g.remove_node(a)


def test_insert_before_and_toposort():
    g, x, w, a, b = small_graph()
    c = g.add_node(LeakyRelu(alpha=0.2), [b.outputs[0]], ["c"])
    g.nodes.reverse()
    with pytest.raises(VerificationError, match="not defined before use"):
        verify(g)
    g.toposort()
    assert [n.name for n in g.nodes] == [a.name, b.name, c.name]
    d = g.add_node(Relu(), [x], ["d"], before=a)
    assert g.nodes[0] is d
    verify(g)


def test_copy_is_independent():
    g, *_ = small_graph()
    h = g.copy()
    verify(h)
    h.nodes[0].set_input(0, h.constants["w"])
    verify(h)
    assert g.nodes[0].inputs[0] is g.inputs[0]
    assert str(g) != str(h)


def test_verifier_catches_stale_links_and_wrong_types():
    g, x, w, a, b = small_graph()
    b.inputs[0] = x  # bypass the API: the use list is now stale
    with pytest.raises(VerificationError):
        verify(g)
    g, x, w, a, b = small_graph()
    a.outputs[0].type = TensorType((2, 4), F32)
    with pytest.raises(VerificationError, match="infers"):
        verify(g)


def test_printer():
    g, *_ = small_graph()
    text = str(g)
    assert text.splitlines()[0] == "graph g(%x: f32[1,4]) -> (%b) {"
    assert "%a = Relu(%x) : f32[1,4]" in text and "%b = Add(%a, @w) : f32[1,4]" in text
    assert "@w: f32[1,4]" in text
    g.add_node(LeakyRelu(alpha=0.25), [g.outputs[0]], ["c"])
    assert "LeakyRelu(%b) {alpha=0.25}" in str(g)


def test_replacing_a_graph_output_keeps_its_name():
    g, x, w, a, b = small_graph()
    c = g.add_node(Relu(), [a.outputs[0]], ["c"])
    g.replace_all_uses_with(b.outputs[0], c.outputs[0])
    assert [v.name for v in g.outputs] == ["b"] and g.outputs[0] is c.outputs[0]
    g.remove_node(b)
    verify(g)
    g.replace_all_uses_with(g.outputs[0], x)  # a graph input cannot be renamed: an Identity carries the name
    assert g.outputs[0].name == "b" and g.outputs[0].producer.op_type == "Identity"
    verify(g)
