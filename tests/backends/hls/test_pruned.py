"""Issue 8's payoff in the HLS backend: a pruned model's zero weights generate no multiplier, and its C simulation
still equals the fixed-point interpreter bit for bit."""

import numpy as np
import pytest

import accelgen
from accelgen.backends.hls import compile
from tests.backends.hls.conftest import interpreter
from tests.quant.datasets import jets


def test_jet_mlp_pruned_75_percent(jet_graph, jet_project, tmp_path):
    g, _, calib = jet_graph
    pruned = accelgen.prune(accelgen.optimize(g), 0.75, calibration={"input": calib["input"][:256]})
    q = accelgen.quantize(pruned, calib)
    project = compile(q, out_dir=tmp_path / "pruned", calibration=calib)
    dense_mults, pruned_mults = jet_project.manifest["multipliers"], project.manifest["multipliers"]
    # Quantization can round a few more tiny weights to zero, never fewer: at most a quarter remain.
    assert 0.2 * dense_mults <= pruned_mults <= 0.25 * dense_mults + 1
    per_layer = [layer["multipliers"] for layer in project.manifest["layers"] if layer["op"] == "Dense"]
    assert per_layer == [int(np.count_nonzero(n.inputs[1].data)) for n in q.nodes if n.op_type == "Dense"]
    x, _ = jets(300, seed=11)
    y = project.predict({"input": x})["output"]
    np.testing.assert_array_equal(y, interpreter(q, "input", x))
    dense = np.concatenate([accelgen.run(g, {"input": x[i:i + 1]})["output"] for i in range(len(x))])
    assert (y.argmax(1) == dense.argmax(1)).mean() >= 0.98


@pytest.fixture(scope="module")
def pruned_jet(jet_graph):
    g, _, calib = jet_graph
    return accelgen.quantize(accelgen.prune(accelgen.optimize(g), 0.75), calib)


@pytest.mark.parametrize("reuse_factor", [1, 3, 8, 64])
def test_resource_strategy_skips_zero_weights(pruned_jet, tmp_path, reuse_factor):
    """Resource strategy on a pruned model: ceil(nonzero / RF) multipliers per layer (any RF, no divisor needed),
    bit-exact, and the estimate counts the same multipliers."""
    q = pruned_jet
    project = compile(q, out_dir=tmp_path / "prj", strategy="resource", reuse_factor=reuse_factor)
    dense_nodes = [n for n in q.nodes if n.op_type == "Dense"]
    expected = [-(-int(np.count_nonzero(n.inputs[1].data)) // reuse_factor) for n in dense_nodes]
    assert [layer["multipliers"] for layer in project.manifest["layers"] if layer["op"] == "Dense"] == expected
    x, _ = jets(200, seed=12)
    np.testing.assert_array_equal(project.predict({"input": x})["output"], interpreter(q, "input", x))
    report = accelgen.estimate(q, target="hls", strategy="resource", reuse_factor=reuse_factor)
    dsp = [row.dsp for row, n in zip(report.layers, q.nodes) if n.op_type == "Dense"]
    assert dsp == expected  # 16-bit products: one DSP each
