"""The rule machinery: patterns, checks that refuse with a reason, rewrites, and RewritePass sweeps."""

import numpy as np
from onnx import parser

import accelgen
from accelgen.ir.ops.activations import Relu
from accelgen.passes.pattern import Rule, RewritePass, const, match, op, remove_dead, val

MODEL = """<ir_version: 8, opset_import: ["" : 17]>
g (float[1,4] x) => (float[1,4] y, float[1,4] z) <float[4] b = {1,2,3,4}> {
    a = Add(b, x)
    r = Relu(a)
    y = Neg(r)
    z = Relu(x)
}"""


def graph():
    return accelgen.load(parser.parse_model(MODEL))


def test_commutative_match_captures_values_and_nodes():
    g = graph()
    add = g.nodes[0]
    m = match(op("Add", val("x"), const("b"), name="add", commutative=True), add)
    assert m is not None and m["x"] is g.inputs[0] and m["b"].name == "b" and m["add"] is add
    assert match(op("Add", val("x"), const("b")), add) is None  # order matters without commutative


def test_repeated_name_must_bind_the_same_value():
    g = graph()
    assert match(op("Add", val("v"), val("v")), g.nodes[0]) is None


def test_interior_values_with_other_uses_are_not_matched():
    g = graph()
    relu, neg = g.nodes[1], g.nodes[2]
    assert match(op("Neg", op("Relu", op("Add", any_inputs=True))), neg) is not None
    g.outputs.append(relu.outputs[0])  # the Relu output now escapes the pattern as a graph output
    assert match(op("Neg", op("Relu", op("Add", any_inputs=True))), neg) is None
    assert match(op("Relu", op("Add", any_inputs=True)), relu) is not None  # as the root it may escape


def test_rule_rewrites_and_refusals_are_reported():
    def rewrite(graph, m, at):
        return graph.add_node(Relu(), [m["x"]], before=at).outputs

    fires = Rule("neg_relu_to_relu", op("Neg", op("Relu", val("x"))), rewrite)
    refuses = Rule("never", op("Relu", val("x")), rewrite, check=lambda m: "this rule always refuses")
    g = graph()
    before = accelgen.run(g, {"x": np.ones((1, 4), np.float32)})
    result = RewritePass("demo", [refuses, fires]).run(g)
    assert result.fired == {"neg_relu_to_relu": 1} and result.changed
    assert {r.reason for r in result.refusals} == {"this rule always refuses"}
    assert [n.op_type for n in g.nodes] == ["Add", "Relu", "Relu"]
    after = accelgen.run(g, {"x": np.ones((1, 4), np.float32)})
    np.testing.assert_array_equal(after["z"], before["z"])
    np.testing.assert_array_equal(after["y"], -before["y"])  # Neg(Relu(a)) -> Relu(a): a demo rule, not exact


def test_remove_dead_keeps_outputs():
    g = graph()
    g.outputs = g.outputs[1:]
    assert remove_dead(g) == 3
    assert [n.op_type for n in g.nodes] == ["Relu"] and not g.constants
