"""Scale: a BERT-base-sized layer (d=768, 12 heads, FFN 3072, seq 128). Fully unrolled (strategy latency) its
attention kernel cannot fit any part, so compile refuses it with the layer, its multiplier count, the part's DSPs
and a reuse factor that fits; with strategy resource and io stream the whole layer generates in seconds, every
layer fits the part, and its C simulation (weights read from binary files) compiles fast and is bit-exact."""

import time

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import accelgen
from accelgen.backends.hls import compile, estimate
from accelgen.errors import OptionError
from tests.backends.hls.encoder_models import encoder_graph

SEQ, D, HEADS, FFN = 128, 768, 12, 3072


@pytest.fixture(scope="module")
def bert_layer():
    g = encoder_graph(SEQ, D, D, HEADS, FFN, blocks=1, activation="Gelu")
    x = np.random.default_rng(0).normal(size=(2, SEQ, D)).astype(np.float32)
    return accelgen.quantize(g, {"x": x}, "fixed<16,6>")  # uniform: calibration-based auto takes twice as long


def resource_multipliers(reuse: int) -> int:
    """The resource attention kernel's count: four projections of ceil(768^2 / R), ceil(12 x 128 / R) Q.K units
    of 64, ceil(768 / R) P.V units of 128, one softmax row (scale, log2(e), reciprocal) of 128 keys."""
    return 4 * -(-D * D // reuse) + 64 * -(-HEADS * SEQ // reuse) + SEQ * -(-D // reuse) + 3 * SEQ


def test_bert_layer_that_cannot_fit_is_refused_with_the_numbers(bert_layer, tmp_path):
    with pytest.raises(OptionError) as e:
        compile(bert_layer, out_dir=tmp_path / "bert", strategy="latency")
    text = str(e.value)
    # one query's work: Q, K, V and output projections (768 x 768 each), Q.K and P.V (128 keys x 768), and per
    # head and key the scale, log2(e) and reciprocal products of the softmax
    multipliers = 4 * D * D + 2 * SEQ * D + 3 * HEADS * SEQ
    assert f"(MultiHeadAttention) needs {multipliers} multipliers in parallel" in text
    assert "xcvu13p-flga2577-2-e has 12288 DSPs" in text
    # the smallest reuse factor whose resource kernel fits: at 216 it needs 12332, at 217 12284
    assert [resource_multipliers(r) for r in (216, 217)] == [12332, 12284]
    assert "--strategy resource --reuse-factor 217 or larger" in text
    assert not (tmp_path / "bert").exists()


@pytest.mark.parametrize("reuse", [256, 384])
def test_bert_layer_resource_multipliers_fit_and_agree_with_the_estimate(bert_layer, tmp_path, reuse):
    """The whole layer compiles (no C-sim) with the attention kernel's multipliers shared by the reuse factor;
    the estimator sees the same structure (its DSPs: the count less the scale, a shift here)."""
    start = time.perf_counter()
    project = compile(bert_layer, out_dir=tmp_path / "bert", io="stream", strategy="resource", reuse_factor=reuse)
    assert time.perf_counter() - start < 60
    layers = {layer["op"]: layer["multipliers"] for layer in project.manifest["layers"]}
    attention = resource_multipliers(reuse)
    assert layers["MultiHeadAttention"] == attention and max(layers.values()) <= 12288
    report = estimate(bert_layer, strategy="resource", reuse_factor=reuse, io="stream")
    (mha,) = [row for row in report.layers if row.op == "MultiHeadAttention"]
    assert mha.dsp == attention - SEQ and f"reuse {reuse}, {attention} multipliers" in mha.kernel
    # per query about 2 R cycles of Q.K and P.V, four projections of about R cycles a token
    assert 6 * SEQ * reuse < mha.latency_cycles < 7 * SEQ * reuse


@pytest.mark.slow  # ~40 s: 7 M weights, ~20 s of C-sim a sample; test_transformer_kernels covers the kernel
def test_bert_layer_resource_csim_is_bit_exact(bert_layer, tmp_path):
    project = compile(bert_layer, out_dir=tmp_path / "bert", io="stream", strategy="resource", reuse_factor=256)
    start = time.perf_counter()
    project.build_csim()
    assert time.perf_counter() - start < 120
    sample = np.random.default_rng(2).normal(size=(1, SEQ, D))
    got = project.predict({"x": sample})["y"]
    np.testing.assert_array_equal(got, accelgen.run(bert_layer, {"x": sample})["y"])


def feed_forward_block(seed: int = 0):
    """BERT's feed-forward half: LayerNorm(x + Dense(Relu(Dense(x)))) on [1, 128, 768], FFN 3072."""
    rng = np.random.default_rng(seed)

    def const(name, *shape, scale=None):
        s = 1.0 / np.sqrt(shape[0]) if scale is None else scale
        return numpy_helper.from_array(rng.uniform(-s, s, shape).astype(np.float32), name)

    inits = [const("w1", D, FFN), const("b1", FFN, scale=0.1), const("w2", FFN, D), const("b2", D, scale=0.1),
             numpy_helper.from_array(rng.normal(1, 0.1, D).astype(np.float32), "gamma"),
             numpy_helper.from_array(rng.normal(0, 0.1, D).astype(np.float32), "beta")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["m2"]),
             helper.make_node("Add", ["m2", "b2"], ["h2"]), helper.make_node("Add", ["x", "h2"], ["res"]),
             helper.make_node("LayerNormalization", ["res", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-5)]
    graph = helper.make_graph(nodes, "bert_ffn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, SEQ, D])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, SEQ, D])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return accelgen.optimize(accelgen.load(model))


@pytest.mark.slow  # ~1 min: 4.7 M weights; test_stream covers the same path on small models
def test_bert_feed_forward_generates_in_seconds_and_csim_is_bit_exact(tmp_path):
    g = feed_forward_block()
    x = np.random.default_rng(1).normal(size=(2, SEQ, D)).astype(np.float32)
    q = accelgen.quantize(g, {"x": x}, "fixed<16,6>")
    assert [n.op_type for n in q.nodes] == ["Dense", "Dense", "Add", "LayerNormalization"]
    start = time.perf_counter()
    project = compile(q, out_dir=tmp_path / "ffn", io="stream", strategy="resource", reuse_factor=384)
    generation = time.perf_counter() - start
    start = time.perf_counter()
    project.build_csim()
    build = time.perf_counter() - start
    print(f"BERT FFN block: generation {generation:.1f} s, C-sim g++ {build:.1f} s")
    assert generation < 60 and build < 120  # literals compiled by g++ would take many minutes
    assert [layer["multipliers"] for layer in project.manifest["layers"]][:2] == [6144, 6144]
    sample = np.random.default_rng(2).normal(size=(1, SEQ, D))
    got = project.predict({"x": sample})["y"]
    np.testing.assert_array_equal(got, accelgen.run(q, {"x": sample})["y"])
