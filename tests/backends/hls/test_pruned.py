"""Issue 8's payoff in the HLS backend: a pruned model's zero weights generate no multiplier, and its C simulation
still equals the fixed-point interpreter bit for bit."""

import numpy as np

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
