"""C simulation of the generated firmware equals accelgen's fixed-point interpreter bit for bit (no tolerance)."""

import numpy as np
import pytest

from accelgen.backends.hls import compile
from tests.backends.hls.conftest import interpreter
from tests.quant.datasets import jets


def test_jet_mlp_latency_bit_exact(jet_graph, jet_project):
    g, q, _ = jet_graph
    x, _ = jets(300, seed=7)
    y = jet_project.predict({"input": x})["output"]
    np.testing.assert_array_equal(y, interpreter(q, "input", x))
    import accelgen

    ref = np.concatenate([accelgen.run(g, {"input": x[i:i + 1]})["output"] for i in range(len(x))])
    assert (y.argmax(1) == ref.argmax(1)).mean() >= 0.99


@pytest.mark.parametrize("reuse_factor", [1, 4, 32])
def test_jet_mlp_resource_bit_exact(jet_graph, tmp_path, reuse_factor):
    _, q, _ = jet_graph
    project = compile(q, out_dir=tmp_path / "jet", strategy="resource", reuse_factor=reuse_factor)
    x, _ = jets(300, seed=8)
    np.testing.assert_array_equal(project.predict({"input": x})["output"], interpreter(q, "input", x))


def test_digits_cnn_bit_exact(cnn_graph, cnn_project):
    _, q, _, d = cnn_graph
    x = d["test"][:300]
    y = cnn_project.predict({"image": x})[q.outputs[0].name]
    np.testing.assert_array_equal(y, interpreter(q, "image", x))
    assert (y.argmax(1) == d["test_labels"][:300]).mean() >= 0.9


def test_float_graph_is_quantized_with_calibration(jet_graph, tmp_path):
    g, q, calib = jet_graph
    project = compile(g, out_dir=tmp_path / "jet", calibration=calib)
    x, _ = jets(50, seed=9)
    np.testing.assert_array_equal(project.predict({"input": x})["output"], interpreter(q, "input", x))


def test_csim_library_is_cached(jet_project):
    first = jet_project.build_csim()
    assert jet_project.build_csim() == first and first.parent == jet_project.path / "csim" / "build"
