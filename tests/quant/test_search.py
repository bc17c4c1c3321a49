"""Mixed-precision search: fewer bits, the bound kept on the calibration data, the user's fixed types respected,
a bounded number of evaluations, and a result that `accelgen.quantize` reproduces from the chosen overrides."""

import numpy as np
import pytest

import accelgen
from accelgen.errors import QuantizationError
from accelgen.quant.report import graph_bits
from accelgen.quant.search import score, search_precision
from tests.quant.datasets import ROOT, jets


@pytest.fixture(scope="module")
def graph():
    return accelgen.optimize(accelgen.load(ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx",
                                           input_shapes={"input": (128, 16)}))


@pytest.fixture(scope="module")
def calib():
    return {"input": jets(512, seed=1)[0]}


@pytest.fixture(scope="module")
def searched(graph, calib):
    return search_precision(graph, calib, metric="agreement", bound=0.99)


def test_search_saves_bits_within_the_bound(graph, calib, searched):
    r = searched
    start = accelgen.quantize(graph, calib)
    assert r.start_bits == sum(graph_bits(start)) and r.total_bits == sum(graph_bits(r.graph))
    assert r.total_bits < 0.4 * r.start_bits  # the 16-bit default has a lot of slack on this model
    assert r.value >= 0.99 and r.start_value == 1.0
    assert r.evaluations <= 200 and len(r.history) == r.evaluations - 1
    assert all(s.metric >= 0.99 for s in r.history if s.accepted)
    assert any(not s.accepted for s in r.history)  # it went as far as the bound allows
    assert "fewer" in r.summary() and r.to_dict()["overrides"] == r.overrides


def test_chosen_overrides_reproduce_the_graph(graph, calib, searched):
    again = accelgen.quantize(graph, calib, overrides=searched.overrides)
    assert str(again) == str(searched.graph)
    for node, settings in searched.overrides.items():
        assert set(settings) <= {"width", "weight_bits"} and node in {n.name for n in graph.nodes}
    q = {n.name: n for n in searched.graph.nodes}
    for node, settings in searched.overrides.items():
        if "width" in settings:
            assert q[node].outputs[0].dtype.width == settings["width"]


def test_held_out_agreement_stays_close(graph, searched):
    held_out = {"input": jets(1280, seed=2)[0]}
    report = accelgen.quantization_report(graph, searched.graph, held_out)
    assert report.outputs[0].agreement >= 0.98


def test_cosine_metric(graph, calib):
    r = search_precision(graph, calib, metric="cosine", bound=0.9999, max_evaluations=60)
    assert r.metric == "cosine" and r.value >= 0.9999 and r.total_bits < r.start_bits
    assert r.evaluations <= 60


def test_evaluations_are_bounded(graph, calib):
    r = search_precision(graph, calib, bound=0.99, max_evaluations=3)
    assert r.evaluations == 3 and len(r.history) == 2


def test_user_fixed_types_are_kept_and_start_options_apply(graph, calib):
    first = graph.nodes[0].name
    fixed = {first: {"type": "fixed<16,6,RND,SAT>", "weight_type": "fixed<8,2>"}, "Softmax": {"type": "ufixed<12,1>"}}
    r = search_precision(graph, calib, bound=0.99, overrides=fixed, weight_bits=10, steps=(2,), max_evaluations=40)
    assert r.overrides[first] == fixed[first] and r.overrides["Softmax"] == fixed["Softmax"]
    softmax = graph.nodes[-1].name
    assert softmax not in r.overrides
    q = r.graph
    assert str(q.nodes[0].outputs[0].dtype) == "fixed<16,6,RND,SAT>" and str(q.nodes[0].inputs[1].dtype) == "fixed<8,2>"
    assert str(q.nodes[-1].outputs[0].dtype) == "ufixed<12,1>"
    assert max(n.inputs[1].dtype.width for n in q.nodes[1:4]) <= 10  # started from weight_bits=10
    assert all((w - 10) % 2 == 0 for w in (n.inputs[1].dtype.width for n in q.nodes[1:4]))  # steps of 2


def test_uniform_start_that_misses_the_bound_is_a_clear_error(graph, calib):
    with pytest.raises(QuantizationError, match="starting types already miss the bound"):
        search_precision(graph, calib, bound=0.99, precision="fixed<16,6>")


@pytest.mark.parametrize("kwargs, message", [
    ({"metric": "accuracy"}, "metric"),
    ({"bound": 1.5}, "bound"),
    ({"bound": "0.9"}, "bound"),
    ({"steps": (0,)}, "steps"),
    ({"steps": ()}, "steps"),
    ({"min_width": 1}, "min_width"),
    ({"max_evaluations": 0}, "max_evaluations"),
    ({"weight_bits": 1}, "weight_width"),
])
def test_invalid_options(graph, calib, kwargs, message):
    with pytest.raises(QuantizationError, match=message):
        search_precision(graph, calib, **kwargs)


def test_agreement_needs_a_class_axis():
    ref = {"y": np.ones((4, 1))}
    assert score("cosine", ref, ref) == pytest.approx(1.0)
    with pytest.raises(QuantizationError, match="cosine"):
        score("agreement", ref, ref)
