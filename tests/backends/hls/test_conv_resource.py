"""Convolutions with strategy resource: each output pixel's window goes through the Dense resource kernel, so the
products of a pixel take turns on n_in * out_c / R multipliers (ag::conv2d_resource; pruned kernels use the sparse
lanes, any R). Bit for bit with `accelgen.run` like the parallel form, in both io types; the multiplier count, the
estimate and the fit check's advice follow R."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import accelgen
from accelgen.backends.hls import compile
from accelgen.errors import OptionError
from tests.backends.hls.test_lint import gxx, lint_problems, needs_gxx


def cnn_model(path, prune: bool = False, channels: int = 8):
    """x [1, 3, 10, 10] -> Conv 3x3 pad 1 (+ Relu, fused) -> Conv 3x3 stride 2 -> Conv1D-free tail: Flatten, Gemm.
    With `prune`, the second conv's kernel is 60% zeros (the sparse form)."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(channels, 3, 3, 3)).astype(np.float32) * 0.4
    w2 = rng.normal(size=(4, channels, 3, 3)).astype(np.float32) * 0.3
    if prune:
        w2[rng.random(w2.shape) < 0.6] = 0
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], strides=[2, 2], name="conv2"),
             helper.make_node("Flatten", ["c2"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w3"], ["y"], name="fc")]
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(rng.normal(size=channels).astype(np.float32),
                                                                        "b1"),
             numpy_helper.from_array(w2, "w2"),
             numpy_helper.from_array(rng.normal(size=(64, 5)).astype(np.float32) * 0.2, "w3")]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return accelgen.load(str(path))


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    root = tmp_path_factory.mktemp("conv_resource")
    calib = {"x": np.random.default_rng(1).normal(size=(100, 3, 10, 10)).astype(np.float32)}
    out = {}
    for prune in (False, True):
        g = cnn_model(root / f"cnn_{prune}.onnx", prune)
        out[prune] = accelgen.quantize(accelgen.optimize(g), calib), calib
    return out


def _check(project, q, n=80):
    x = 2 * np.random.default_rng(2).normal(size=(n, 3, 10, 10)).astype(np.float32)  # both see the same values
    got = project.predict({"x": x})["y"]
    want = np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})["y"] for i in range(n)])
    np.testing.assert_array_equal(got, want.reshape(got.shape))


@needs_gxx
@pytest.mark.parametrize("reuse, io", [((2, 2), "parallel"), ((27, 72), "parallel"), ((8, 8), "stream")])
def test_conv_resource_bit_exact(quantized, tmp_path, reuse, io):
    """Reuse factors per conv (the config): 27 x 8 products in conv1, 72 x 4 in conv2."""
    q, calib = quantized[False]
    config = {"FusedConv": {"reuse_factor": reuse[0]}, "Conv": {"reuse_factor": reuse[1]}}  # conv1 + Relu, conv2
    project = compile(q, out_dir=tmp_path / "prj", calibration=calib, strategy="resource", config=config, io=io)
    convs = [layer for layer in project.manifest["layers"] if layer["op"] in ("Conv", "FusedConv")]
    assert [layer["multipliers"] for layer in convs] == [27 * 8 // reuse[0], 72 * 4 // reuse[1]]
    assert all("resource" in layer["kernel"] for layer in convs)
    assert lint_problems(project) == []
    done = gxx(project, "-fsyntax-only", "-Werror")
    assert done.returncode == 0, done.stderr[-4000:]
    _check(project, q)
    est = accelgen.estimate(q, strategy="resource", config=config)
    conv_rows = [row for row in est.layers if row.op in ("Conv", "FusedConv")]
    assert [row.dsp for row in conv_rows] == [27 * 8 // reuse[0], 72 * 4 // reuse[1]]
    assert est.latency_cycles > accelgen.estimate(q).latency_cycles  # R cycles a pixel instead of one


@needs_gxx
def test_pruned_conv_resource_uses_the_sparse_lanes(quantized, tmp_path):
    q, calib = quantized[True]
    nonzero = int(np.count_nonzero(next(n for n in q.nodes if n.name == "conv2").inputs[1].data))
    project = compile(q, out_dir=tmp_path / "prj", calibration=calib, config={"conv2": {"reuse_factor": 5}})
    conv2 = next(layer for layer in project.manifest["layers"] if layer["node"] == "conv2")
    assert "sparse" in conv2["kernel"] and conv2["multipliers"] == -(-nonzero // 5)
    _check(project, q)


def test_a_conv_too_large_for_the_part_suggests_a_reuse_factor(tmp_path):
    g = cnn_model(tmp_path / "wide.onnx", channels=64)
    calib = {"x": np.random.default_rng(1).normal(size=(30, 3, 10, 10)).astype(np.float32)}
    with pytest.raises(OptionError, match=r"conv1.*needs 1728 multipliers.*--reuse-factor 8\b"):
        compile(g, out_dir=tmp_path / "a", calibration=calib, part="xc7z020clg400-1")
    project = compile(g, out_dir=tmp_path / "b", calibration=calib, part="xc7z020clg400-1", strategy="resource",
                      reuse_factor=16)
    assert max(layer["multipliers"] for layer in project.manifest["layers"]) <= 220
