"""PassManager: pipelines, fixed points, and catching passes that break the IR or change the numbers."""

import numpy as np
import pytest
from onnx import parser

import accelgen
from accelgen.errors import OptionError
from accelgen.ir.ops.elementwise import Add
from accelgen.passes import build_pipeline, optimize_with_report
from accelgen.passes.base import Pass, PassError, PassManager, PassResult

MODEL = """<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3] x) => (float[2,3] y) { a = Relu(x) \n y = Neg(a) }"""


class AddOne(Pass):
    """Changes the numbers: a broken pass the manager must catch."""

    name = "add-one"

    def run(self, graph):
        out = graph.outputs[0]
        one = graph.add_constant("one", np.ones((), np.float32))
        node = graph.add_node(Add(), [out, one])
        graph.outputs[0] = node.outputs[0]
        graph.rename(out, "y_old")
        graph.rename(node.outputs[0], "y")
        r = PassResult(graph)
        r.record("add_one")
        return r


class Counter(Pass):
    name = "counter"

    def __init__(self, changes):
        self.changes = changes
        self.calls = 0

    def run(self, graph):
        self.calls += 1
        r = PassResult(graph)
        if self.calls <= self.changes:
            r.record("tick")
        return r


def graph():
    return accelgen.load(parser.parse_model(MODEL))


def test_equivalence_check_names_the_guilty_pass():
    g = graph()
    feeds = {"x": np.ones((2, 3), np.float32)}
    with pytest.raises(PassError, match="pass add-one: output 'y' changed"):
        PassManager([AddOne()], check_inputs=feeds).run(g)


def test_fixed_point_repeats_until_nothing_changes():
    c = Counter(changes=3)
    result = PassManager([c], fixed_point=True).run(graph())
    assert c.calls == 4 and result.fired["tick"] == 3
    c = Counter(changes=3)
    PassManager([c]).run(graph())
    assert c.calls == 1


def test_print_ir_after_each_pass():
    seen = []
    PassManager([Counter(1), Counter(0)], print_ir_after=lambda name, g: seen.append(name)).run(graph())
    assert seen == ["counter", "counter"]


def test_unknown_pipeline_or_pass_is_an_option_error():
    with pytest.raises(OptionError, match="unknown pipeline"):
        build_pipeline("fastest")
    with pytest.raises(OptionError, match="unknown pass"):
        build_pipeline(["no-such-pass"])


def test_optimize_leaves_its_argument_unchanged():
    g = graph()
    text = str(g)
    result = optimize_with_report(g, [], check=True)
    assert str(g) == text and result.graph is not g


def test_quantized_graph_is_refused():
    """Rewrites restructure float arithmetic; a quantized graph (a quantized Dense once crashed the bias-fusion
    rule) gets a clear error instead."""
    text = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,4] x) => (float[1,3] y) {
        w = Constant <value = float[4,3] {1,2,3,4,5,6,7,8,9,10,11,12}> ()
        m = MatMul(x, w)
        y = Relu(m)
    }"""
    g = accelgen.load(parser.parse_model(text))
    q = accelgen.quantize(accelgen.optimize(g), {"x": np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)})
    assert [n.op_type for n in q.nodes].count("Dense") == 1
    with pytest.raises(OptionError, match="optimize the float graph, then quantize"):
        accelgen.optimize(q)
