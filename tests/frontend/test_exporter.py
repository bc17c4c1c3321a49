"""Export of IR graphs (as loaded, optimized with fused ops, pruned) back to ONNX: onnxruntime computes what
accelgen.run computes, and accelgen reads the file back."""

import numpy as np
import pytest

import accelgen
from accelgen.errors import OptionError
from accelgen.frontend.onnx.exporter import export, to_onnx
from tests.ortcheck import run_ort
from tests.quant.datasets import ROOT

MODELS = ["examples/jet_mlp/jet_mlp.onnx", "examples/digits_cnn/digits_cnn.onnx",
          "examples/tiny_transformer/tiny_transformer.onnx", "tests/data/models/encoder_torchscript.onnx",
          "tests/data/models/bert_layer.onnx", "tests/data/models/fused_qkv_block_dynamo.onnx",
          "tests/data/models/keras_cnn.onnx", "tests/data/models/legacy_layernorm.onnx"]


def feeds_for(graph):
    rng = np.random.default_rng(0)
    return {v.name: rng.normal(size=v.shape).astype(v.dtype.np_dtype) for v in graph.inputs}


def assert_same(graph):
    feeds = feeds_for(graph)
    model = to_onnx(graph)
    ours, theirs = accelgen.run(graph, feeds), run_ort(model, feeds)
    assert set(ours) == set(theirs)
    for name, want in ours.items():
        np.testing.assert_allclose(theirs[name], want, rtol=1e-5, atol=1e-6, err_msg=name)
    back = accelgen.run(accelgen.load(model), feeds)
    for name, want in ours.items():
        np.testing.assert_allclose(back[name], want, rtol=1e-5, atol=1e-6, err_msg=name)
    return model


@pytest.mark.parametrize("path", MODELS)
def test_loaded_optimized_and_pruned_graphs_export_exactly(path):
    graph = accelgen.load(ROOT / path)
    assert_same(graph)
    optimized = accelgen.optimize(graph)
    model = assert_same(optimized)
    assert not any(n.domain for n in model.graph.node)  # fused ops expand to standard ONNX
    pruned = accelgen.prune(optimized, 0.5)
    model = assert_same(pruned)
    zeros = sum(int((np.frombuffer(t.raw_data, np.float32) == 0).sum()) for t in model.graph.initializer
                if t.data_type == 1 and t.raw_data)
    assert zeros > 0  # the pruned weights travel as zeros


def test_export_writes_a_file_and_refuses_to_overwrite(tmp_path):
    graph = accelgen.optimize(accelgen.load(ROOT / MODELS[0]))
    path = export(graph, tmp_path / "m.onnx")
    assert accelgen.load(path).outputs[0].shape == (1, 5)
    with pytest.raises(OptionError, match="exists"):
        export(graph, path)
    export(graph, path, force=True)


def test_quantized_graphs_are_refused():
    graph = accelgen.optimize(accelgen.load(ROOT / MODELS[0]))
    quantized = accelgen.quantize(graph, {"input": np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)})
    with pytest.raises(OptionError, match="float graphs"):
        to_onnx(quantized)
