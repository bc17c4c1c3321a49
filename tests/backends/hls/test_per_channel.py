"""Per-channel weights (`accelgen.quantize(..., per_channel=True)`) in the HLS backend: each output column's
weights are stored times 2**-k_n and its exact product sum is shifted back before the bias (ag::channel_scale),
in every Dense and Conv form: latency, resource, sparse resource, parallel conv, line-buffered conv (io stream) and
resource conv. Bit for bit with `accelgen.run`, on the fast and the Xilinx C-sim types."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import accelgen
from accelgen.backends.hls import compile
from tests.backends.hls.test_lint import gxx, lint_problems, needs_gxx
from tests.quant.datasets import ROOT, jets


def cnn(path):
    """Two 3x3 convs + Relu whose output channels differ in scale by up to 2**7: per-channel shifts of 0..-7."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(8, 3, 3, 3)) * (0.5 ** np.arange(8))[:, None, None, None]
    w2 = rng.normal(size=(4, 8, 3, 3)) * (0.3 ** np.arange(4))[:, None, None, None]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Relu", ["c2"], ["y"], name="relu2")]
    inits = [numpy_helper.from_array(w1.astype(np.float32), "w1"), numpy_helper.from_array(w2.astype(np.float32), "w2"),
             numpy_helper.from_array((0.1 * rng.normal(size=8)).astype(np.float32), "b1")]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return accelgen.load(str(path))


@pytest.fixture(scope="module")
def jet_per_channel():
    x, _ = jets(500, seed=1)
    g = accelgen.optimize(accelgen.load(str(ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx")))
    q = accelgen.quantize(g, {"input": x}, per_channel=True)
    assert sum(n.op.param("column_shifts") is not None for n in q.nodes) >= 2
    return q, {"input": x}


@pytest.fixture(scope="module")
def cnn_per_channel(tmp_path_factory):
    g = cnn(tmp_path_factory.mktemp("pc") / "cnn.onnx")
    calib = {"x": np.random.default_rng(1).normal(size=(100, 3, 8, 8)).astype(np.float32)}
    q = accelgen.quantize(accelgen.optimize(g), calib, per_channel=True)
    assert [min(n.op.param("column_shifts")) for n in q.nodes] == [-7, -5]
    return q, calib


def _same_as_run(project, q, x: np.ndarray, types="fast"):
    name, out = q.inputs[0].name, q.outputs[0].name
    got = project.predict({name: x}, types=types)[out]
    want = np.concatenate([accelgen.run(q, {name: x[i:i + 1]})[out] for i in range(len(x))])
    np.testing.assert_array_equal(got, want.reshape(got.shape))


@needs_gxx
@pytest.mark.parametrize("options", [{}, {"strategy": "resource", "reuse_factor": 4}])
def test_dense_per_channel_bit_exact(jet_per_channel, tmp_path, options):
    q, calib = jet_per_channel
    project = compile(q, out_dir=tmp_path / "prj", calibration=calib, **options)
    assert "per-channel weights" in project.manifest["layers"][0]["kernel"]
    _same_as_run(project, q, jets(200, seed=5)[0].astype(np.float32))


@needs_gxx
def test_pruned_dense_per_channel_uses_the_sparse_lanes(jet_per_channel, tmp_path):
    q, calib = jet_per_channel
    pruned = accelgen.prune(q, 0.6)
    project = compile(pruned, out_dir=tmp_path / "prj", calibration=calib, strategy="resource", reuse_factor=3)
    assert "sparse" in project.manifest["layers"][0]["kernel"]
    _same_as_run(project, pruned, jets(200, seed=6)[0].astype(np.float32))


@needs_gxx
@pytest.mark.parametrize("options", [{}, {"io": "stream"}, {"strategy": "resource", "reuse_factor": 2}])
def test_conv_per_channel_bit_exact(cnn_per_channel, tmp_path, options):
    q, calib = cnn_per_channel
    project = compile(q, out_dir=tmp_path / "prj", calibration=calib, **options)
    assert all("per-channel weights" in layer["kernel"] for layer in project.manifest["layers"])
    x = 2 * np.random.default_rng(2).normal(size=(80, 3, 8, 8)).astype(np.float32)
    _same_as_run(project, q, x)
    _same_as_run(project, q, x[:20], types="ap")
    assert lint_problems(project) == []
    done = gxx(project, "-fsyntax-only", "-Werror")
    assert done.returncode == 0, done.stderr[-4000:]


def test_per_channel_estimate(cnn_per_channel):
    q, _ = cnn_per_channel
    est = accelgen.estimate(q)
    assert est.dsp > 0 and est.latency_cycles > 0
