"""Quantized example graphs and their generated HLS projects, built once per test session (generation is fast;
the C-sim build is the slow part and is cached by content hash inside each project)."""

import numpy as np
import pytest

import accelgen
from accelgen.backends.hls import compile
from tests.quant.datasets import ROOT, digits, jets


@pytest.fixture(scope="session")
def jet_graph():
    x, _ = jets(500, seed=1)
    g = accelgen.load(str(ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx"))
    return g, accelgen.quantize(accelgen.optimize(g), {"input": x}), {"input": x}


@pytest.fixture(scope="session")
def jet_project(jet_graph, tmp_path_factory):
    _, q, calib = jet_graph
    return compile(q, out_dir=tmp_path_factory.mktemp("hls") / "jet", calibration=calib)


@pytest.fixture(scope="session")
def cnn_graph():
    d = digits()
    g = accelgen.load(str(ROOT / "examples" / "digits_cnn" / "digits_cnn.onnx"))
    calib = {"image": d["train"][:300]}
    return g, accelgen.quantize(accelgen.optimize(g), calib), calib, d


@pytest.fixture(scope="session")
def cnn_project(cnn_graph, tmp_path_factory):
    _, q, calib, _ = cnn_graph
    return compile(q, out_dir=tmp_path_factory.mktemp("hls") / "cnn", calibration=calib)


def interpreter(q, name: str, x: np.ndarray) -> np.ndarray:
    """accelgen.run sample by sample (the graphs have batch 1)."""
    out = q.outputs[0].name
    return np.concatenate([accelgen.run(q, {name: x[i:i + 1]})[out] for i in range(len(x))])
