"""C simulation of the generated firmware equals accelgen's fixed-point interpreter bit for bit (no tolerance)."""

from itertools import pairwise

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import accelgen
from accelgen.backends.hls import compile
from accelgen.backends.hls.layers import resource_tiles
from tests.backends.hls.conftest import interpreter
from tests.quant.datasets import jets


def test_jet_mlp_latency_bit_exact(jet_graph, jet_project):
    g, q, _ = jet_graph
    x, _ = jets(300, seed=7)
    y = jet_project.predict({"input": x})["output"]
    np.testing.assert_array_equal(y, interpreter(q, "input", x))
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


def dense_chain(sizes: list[int], tokens: int, seed: int = 0):
    """MatMul + Add (+ Relu between layers) over [1, tokens, sizes[0]], random dense weights."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i, (n_in, n_out) in enumerate(pairwise(sizes)):
        inits += [numpy_helper.from_array(rng.uniform(0.05, 1, (n_in, n_out)).astype(np.float32)
                                          * rng.choice([-1, 1], (n_in, n_out)).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(rng.normal(0, 0.1, n_out).astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"], [f"h{i}"])]
        x = f"h{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(nodes, "dense_chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, tokens, sizes[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, tokens, sizes[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return accelgen.optimize(accelgen.load(model))


def test_dense_resource_tiles_bit_exact(tmp_path):
    """ag::dense_resource's tiles in each regime, one layer each: 12x10 at R 8 (3 inputs x 5 outputs a cycle),
    10x12 at R 24 (5 x 1: the multipliers divide neither n_out nor the reverse), 12x6 at R 4 (3 x all 6 outputs),
    6x4 at R 6 (1 input x all 4 outputs), 4x2 at R 8 (one multiplier); 3 tokens each, C-sim bit for bit."""
    rng = np.random.default_rng(1)
    g = dense_chain([12, 10, 12, 6, 4, 2], tokens=3)
    q = accelgen.quantize(g, {"x": rng.normal(size=(64, 3, 12)).astype(np.float32)})
    dense = [n for n in q.nodes if n.op_type == "Dense"]
    reuse = [8, 24, 4, 6, 8]
    shapes = [n.inputs[1].shape for n in dense]
    assert shapes == [(12, 10), (10, 12), (12, 6), (6, 4), (4, 2)]
    assert [resource_tiles(a, b, a * b // r) for (a, b), r in zip(shapes, reuse)] == \
        [(3, 5), (5, 1), (3, 6), (1, 4), (1, 1)]
    config = {n.name: {"strategy": "resource", "reuse_factor": r} for n, r in zip(dense, reuse)}
    project = compile(q, out_dir=tmp_path / "p", config=config)
    assert all("dense resource," in layer["kernel"] for layer in project.manifest["layers"]
               if layer["node"] in config)
    x = rng.normal(size=(200, 3, 12))
    np.testing.assert_array_equal(project.predict({"x": x})["y"],
                                  np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})["y"] for i in range(200)]))
