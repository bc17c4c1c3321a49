"""quantization_report: per-tensor types, ranges and overflow counts, per-output error against float; and its
renderings (text, markdown, JSON)."""

import json

import numpy as np
import pytest

import accelgen
from accelgen.errors import QuantizationError
from accelgen.ir.types import FixedType
from accelgen.quant.report import compare, graph_bits
from tests.quant.datasets import ROOT, jets


@pytest.fixture(scope="module")
def mlp():
    g = accelgen.optimize(accelgen.load(ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx", input_shapes={"input": (32, 16)}))
    q = accelgen.quantize(g, {"input": jets(256, seed=1)[0]})
    return g, q


def test_rows_cover_every_tensor_with_its_type(mlp):
    g, q = mlp
    x = jets(128, seed=2)[0]
    r = accelgen.quantization_report(g, q, {"input": x})
    assert r.samples == 128 and r.batches == 4
    kinds = [row.kind for row in r.tensors]
    assert kinds.count("input") == 1 and kinds.count("weight") == 8 and kinds.count("activation") == 5
    types = {v.name: str(v.dtype) for v in q.values()}
    assert all(row.type == types[row.name] for row in r.tensors)
    first = r.tensors[0]
    assert (first.name, first.min, first.max) == ("input", float(x.min()), float(x.max()))
    dense = next(row for row in r.tensors if row.kind == "activation")
    assert dense.node == q.nodes[0].name and dense.op == "Dense" and dense.elements == 128 * 64
    weight = next(row for row in r.tensors if row.kind == "weight")
    assert weight.node == q.nodes[0].name  # the node to key a weight override on
    assert r.overflows == 0


def test_output_metrics_match_a_direct_computation(mlp):
    g, q = mlp
    x = jets(64, seed=3)[0]
    r = accelgen.quantization_report(g, q, {"input": x})
    f = np.concatenate([accelgen.run(g, {"input": x[i:i + 32]})["output"] for i in (0, 32)]).astype(np.float64)
    z = np.concatenate([accelgen.run(q, {"input": x[i:i + 32]})["output"] for i in (0, 32)])
    o = r.output("output")
    assert o.max_abs_error == pytest.approx(np.abs(f - z).max())
    assert o.mean_abs_error == pytest.approx(np.abs(f - z).mean())
    assert o.cosine == pytest.approx(np.vdot(f, z) / np.linalg.norm(f) / np.linalg.norm(z))
    assert o.agreement == np.mean(f.argmax(-1) == z.argmax(-1)) and o.samples == 64


def test_overflow_events_are_reported(mlp):
    g, q = mlp
    x = jets(32, seed=4)[0] * 50  # far outside the calibrated range
    stats = {}
    accelgen.run(q, {"input": x}, stats=stats)
    r = accelgen.quantization_report(g, q, {"input": x})
    rows = {row.name: row for row in r.tensors}
    assert rows["input"].overflows == stats["input"].overflows > 0
    assert r.overflows == sum(s.overflows for s in stats.values())
    assert rows["input"].max == pytest.approx(float(x.max()))  # the range seen is the float one, not saturated
    assert "%)" in str(r)


def test_bits_count_weights_once_and_activations_per_sample(mlp):
    _, q = mlp
    weights, acts = graph_bits(q)
    assert weights == sum(v.type.numel * v.dtype.width for v in q.constants.values())
    per_sample = sum(v.type.numel * v.dtype.width for v in q.values()
                     if not v.is_constant and isinstance(v.dtype, FixedType)) // 32
    assert acts == per_sample == 16 * (16 + 64 + 32 + 32 + 5 + 5)


def test_renderings(mlp):
    g, q = mlp
    r = accelgen.quantization_report(g, q, {"input": jets(32, seed=5)[0]})
    text = str(r)
    assert "range seen" in text and "argmax agreement" in text and str(q.nodes[0].outputs[0].dtype) in text
    assert "100.00%" in text and "bits per sample" in text
    md = r.to_markdown().splitlines()
    assert md[0].startswith("| tensor | node |") and md[1].startswith("|---|")
    assert sum(line.startswith("| ") for line in md) == 1 + len(r.tensors) + 1 + len(r.outputs)
    d = json.loads(r.to_json())
    assert d == r.to_dict() and d["total_bits"] == r.weight_bits + r.activation_bits
    assert d["outputs"][0]["agreement"] == 1.0 and d["tensors"][0]["shape"] == [32, 16]
    assert "tensor" not in r.text(tensors=False) and "argmax agreement" in r.text(tensors=False)


def test_compare_edge_cases():
    row = compare("y", np.zeros((4, 1)), np.zeros((4, 1)))
    assert row.agreement is None and row.cosine == 1.0 and row.max_abs_error == 0.0
    assert compare("y", np.zeros(3), np.ones(3)).cosine == 0.0
    assert json.loads(json.dumps(compare("y", np.ones((2, 3)), np.ones((2, 3))).__dict__))["agreement"] == 1.0
    with pytest.raises(QuantizationError, match="shape"):
        compare("y", np.zeros((2, 3)), np.zeros((2, 4)))


def test_non_finite_values_are_null_in_json(mlp):
    g, q = mlp
    r = accelgen.quantization_report(g, q, {"input": jets(32, seed=6)[0]})
    r.tensors[0].min = float("-inf")
    assert json.loads(r.to_json())["tensors"][0]["min"] is None


def test_float_graph_against_itself_is_exact(mlp):
    g, _ = mlp
    r = accelgen.quantization_report(g, g, {"input": jets(32, seed=7)[0]})
    o = r.outputs[0]
    assert (o.max_abs_error, o.cosine, o.agreement) == (0.0, pytest.approx(1.0), 1.0)
    assert r.weight_bits == 0  # float tensors carry no fixed-point bits


def test_bad_data_and_mismatched_graphs_are_clear_errors(mlp):
    g, q = mlp
    with pytest.raises(QuantizationError, match="shape"):
        accelgen.quantization_report(g, q, {"input": np.zeros((32, 15), np.float32)})
    with pytest.raises(QuantizationError, match="non-empty"):
        accelgen.quantization_report(g, q, {})
    other = g.copy()
    other.outputs = other.outputs + [other.nodes[0].outputs[0]]
    with pytest.raises(QuantizationError, match="outputs"):
        accelgen.quantization_report(other, q, {"input": jets(32, seed=1)[0]})


def test_float_graph_may_run_at_another_batch(mlp):
    g, q = mlp
    g64 = accelgen.optimize(accelgen.load(ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx",
                                          input_shapes={"input": (64, 16)}))
    x = {"input": jets(128, seed=8)[0]}
    a, b = accelgen.quantization_report(g, q, x), accelgen.quantization_report(g64, q, x)
    assert (b.samples, b.batches) == (128, 4) and b.outputs == a.outputs
