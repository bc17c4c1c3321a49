"""LayerNormalization, GELU (standalone and fused), MultiHeadAttention (plain, masked, causal) and the example
transformers: C-sim equals accelgen's fixed-point interpreter bit for bit, and the classifiers agree with float."""

import numpy as np
import pytest

import accelgen
from accelgen.backends.hls import compile
from accelgen.ir.graph import Graph
from accelgen.ir.ops.attention import MultiHeadAttention
from accelgen.ir.types import F32, TensorType
from tests.onnxmodels import const, text_model
from tests.quant.datasets import ROOT
from tests.quant.test_transformer import bert_feeds


def interpreter_whole(q, name: str, x: np.ndarray) -> np.ndarray:
    """accelgen.run once per sample, a sample being the graph's whole input (batch dimension included)."""
    out = q.outputs[0].name
    return np.stack([accelgen.run(q, {name: x[i]})[out] for i in range(len(x))])


@pytest.fixture(scope="module")
def legacy_layernorm(tmp_path_factory):
    """tests/data/models/legacy_layernorm.onnx: Dense -> LayerNormalization -> Gelu -> Dense on x[2,4,16]."""
    g = accelgen.optimize(accelgen.load(str(ROOT / "tests" / "data" / "models" / "legacy_layernorm.onnx")))
    calib = {"x": np.random.default_rng(0).normal(size=(400, 4, 16)).astype(np.float32)}
    q = accelgen.quantize(g, calib)
    assert [n.op_type for n in q.nodes] == ["Dense", "LayerNormalization", "Gelu", "Dense"]
    return g, q, compile(q, out_dir=tmp_path_factory.mktemp("hls") / "ln")


def test_legacy_layernorm_model_bit_exact(legacy_layernorm):
    g, q, project = legacy_layernorm
    x = np.random.default_rng(1).normal(0, 1.5, (300, 2, 4, 16))  # wider than calibration
    y = project.predict({"x": x})[q.outputs[0].name]
    np.testing.assert_array_equal(y, interpreter_whole(q, "x", x))
    ref = np.stack([accelgen.run(g, {"x": x[i].astype(np.float32)})[g.outputs[0].name] for i in range(50)])
    assert np.corrcoef(y[:50].ravel(), ref.ravel())[0, 1] > 0.99


def layernorm_model(n: int, rows: int, bias: bool) -> accelgen.Graph:
    rng = np.random.default_rng(n)
    inits = [const("gamma", rng.normal(1, 0.3, n).astype(np.float32))]
    if bias:
        inits.append(const("beta", rng.normal(0, 0.2, n).astype(np.float32)))
    args = "x, gamma, beta" if bias else "x, gamma"
    return text_model(f"(float[1,{rows},{n}] x) => (float[1,{rows},{n}] y)", inits,
                      f"y = LayerNormalization <axis = -1, epsilon = 1e-5> ({args})")


def layernorm_inputs(rng, count: int, rows: int, n: int) -> np.ndarray:
    """Rows of every kind: ordinary, large offsets, tiny and huge spreads, constant rows (variance 0), one
    outlier in an otherwise constant row."""
    x = rng.normal(0, 1.5, (count, 1, rows, n)) * rng.choice([0.01, 0.1, 1, 4], (count, 1, rows, 1))
    x += rng.normal(0, 2, (count, 1, rows, 1))
    x[::7, 0, 0, :] = 0.75  # constant row
    x[1::7, 0, 0, :] = -1.0
    x[1::7, 0, 0, 3] = 5.0  # one outlier: |norm| near sqrt(n - 1)
    return x


@pytest.mark.parametrize("n, rows, bias", [(32, 4, True), (24, 3, True), (10, 5, False)])
def test_layernorm_only_bit_exact(n, rows, bias, tmp_path):
    g = accelgen.optimize(layernorm_model(n, rows, bias))
    rng = np.random.default_rng(2)
    calib = {"x": layernorm_inputs(rng, 200, rows, n).reshape(200, rows, n)}
    q = accelgen.quantize(g, calib)
    assert q.nodes[0].op_type == "LayerNormalization"
    project = compile(q, out_dir=tmp_path / "p")
    x = layernorm_inputs(rng, 400, rows, n)[:, 0]
    y = project.predict({"x": x})["y"]
    np.testing.assert_array_equal(y, np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})["y"] for i in range(len(x))]))


def test_standalone_gelu_bit_exact_on_both_sides_of_the_table(tmp_path):
    g = text_model("(float[1,64] x) => (float[1,64] y)", [], "y = Gelu(x)", opset=20)
    rng = np.random.default_rng(4)
    q = accelgen.quantize(accelgen.optimize(g), {"x": rng.normal(0, 1.0, (300, 64)).astype(np.float32)})
    table = q.nodes[0].op.param("table")
    project = compile(q, out_dir=tmp_path / "p")
    x = rng.normal(0, 3.0, (300, 64))  # well beyond the calibrated range on both sides
    assert (x >= table.x_max).any() and (x < table.x_min).any()
    y = project.predict({"x": x})["y"]
    np.testing.assert_array_equal(y, np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})["y"] for i in range(len(x))]))


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """tests/data/models/encoder_torchscript.onnx: two post-norm encoder blocks (MultiHeadAttention with 4 heads,
    residual Add, LayerNormalization, feed-forward Dense) on x[1,8,32]."""
    g = accelgen.optimize(accelgen.load(str(ROOT / "tests" / "data" / "models" / "encoder_torchscript.onnx")))
    q = accelgen.quantize(g, {"x": np.random.default_rng(0).normal(size=(300, 8, 32)).astype(np.float32)})
    assert [n.op_type for n in q.nodes].count("MultiHeadAttention") == 2
    return g, q, compile(q, out_dir=tmp_path_factory.mktemp("hls") / "encoder")


def test_encoder_bit_exact(encoder):
    g, q, project = encoder
    x = np.random.default_rng(1).normal(0, 1.0, (200, 8, 32))
    y = project.predict({"x": x})[q.outputs[0].name]
    np.testing.assert_array_equal(y, np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})[q.outputs[0].name]
                                                      for i in range(len(x))]))
    ref = np.concatenate([accelgen.run(g, {"x": x[i:i + 1].astype(np.float32)})[g.outputs[0].name]
                          for i in range(len(x))])
    assert y.ravel() @ ref.ravel() / np.linalg.norm(y) / np.linalg.norm(ref) >= 0.99


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.ravel() @ b.ravel() / np.linalg.norm(a) / np.linalg.norm(b))


def float_run(g, name: str, x: np.ndarray) -> np.ndarray:
    out = g.outputs[0].name
    return np.concatenate([accelgen.run(g, {name: x[i:i + 1].astype(np.float32)})[out] for i in range(len(x))])


def example_transformer(which: str):
    """(float graph, quantized graph, evaluation inputs) of examples/tiny_transformer or examples/jet_transformer."""
    folder = ROOT / "examples" / which
    g = accelgen.optimize(accelgen.load(str(folder / f"{which}.onnx")))
    if which == "jet_transformer":
        with np.load(folder / "sample.npz") as data:
            calib, x = data["calibration"], data["test"].astype(np.float64)
    else:  # the generator's synthetic task: standard normal sequences
        calib = np.random.default_rng(0).normal(size=(300, 16, 6)).astype(np.float32)
        x = np.random.default_rng(5).normal(size=(200, 16, 6))
    return g, accelgen.quantize(g, {"x": calib}), x


@pytest.mark.parametrize("which", ["tiny_transformer", "jet_transformer"])
def test_example_transformer_bit_exact_and_agrees_with_float(which, tmp_path):
    """Dense embedding, encoder blocks (MultiHeadAttention, Add, LayerNorm, Dense with fused GELU or ReLU), mean
    pooling (ReduceMean) and the classifier head: 200 inputs, every output bit equal to the interpreter's; the
    16-bit design picks the float model's class on >= 99% of them, logits cosine >= 0.99."""
    g, q, x = example_transformer(which)
    assert "ReduceMean" in {n.op_type for n in q.nodes}
    project = compile(q, out_dir=tmp_path / which)
    y = project.predict({"x": x})["logits"]
    np.testing.assert_array_equal(y, np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})["logits"]
                                                      for i in range(len(x))]))
    ref = float_run(g, "x", x)
    assert (y.argmax(1) == ref.argmax(1)).mean() >= 0.99
    assert cosine(y, ref) >= 0.99


@pytest.mark.parametrize("config", [None, {"MultiHeadAttention": {"reuse_factor": 7}}])
def test_attention_with_an_additive_mask_from_an_integer_input(tmp_path, config):
    """tests/data/models/bert_layer.onnx: the int64 attention_mask goes through Reshape, Cast, 1 - m (Sub with a
    broadcast constant) and * -10000 (Mul) into the attention's additive mask; latency and resource kernels."""
    g = accelgen.optimize(accelgen.load(str(ROOT / "tests" / "data" / "models" / "bert_layer.onnx")))
    q = accelgen.quantize(g, bert_feeds(200, 0))
    assert {"Cast", "Sub", "Mul"} <= {n.op_type for n in q.nodes}
    assert next(n for n in q.nodes if n.op_type == "MultiHeadAttention").inputs[2] is not None
    project = compile(q, out_dir=tmp_path / "bert", calibration=bert_feeds(4, 3), config=config)
    feeds = bert_feeds(150, 1)
    out = q.outputs[0].name
    y = project.predict(feeds)[out]
    ref = np.concatenate([accelgen.run(q, {k: v[i:i + 1] for k, v in feeds.items()})[out] for i in range(150)])
    np.testing.assert_array_equal(y, ref)


def test_resource_attention_bit_exact_at_several_reuse_factors(tmp_path):
    """Two encoder blocks whose attention layers share their multipliers by different reuse factors in one
    project (3 divides none of the product counts; 40 exceeds the 16 scores and the 16 P.V outputs, which then
    take one unit each), io stream: 200 inputs bit for bit, and the multiplier counts are those of the rule."""
    from tests.backends.hls.encoder_models import encoder_graph

    rng = np.random.default_rng(0)
    g = encoder_graph(8, 12, 16, 2, 32, 2)
    q = accelgen.quantize(g, {"x": rng.normal(size=(200, 8, 12)).astype(np.float32)})
    first, second = [n.name for n in q.nodes if n.op_type == "MultiHeadAttention"]
    config = {first: {"reuse_factor": 3}, second: {"reuse_factor": 40}, "Dense": {"strategy": "latency"}}
    project = compile(q, out_dir=tmp_path / "p", strategy="resource", io="stream", config=config)
    counts = {layer["node"]: layer["multipliers"] for layer in project.manifest["layers"]}
    # projections ceil(16 x 16 / R) each, Q.K ceil(2 x 8 / R) units of 8, P.V ceil(16 / R) units of 8, one
    # softmax row of 8 keys (scale, log2(e), reciprocal)
    assert counts[first] == 4 * 86 + 6 * 8 + 6 * 8 + 24 and counts[second] == 4 * 7 + 8 + 8 + 24
    x = rng.normal(size=(200, 8, 12))
    np.testing.assert_array_equal(project.predict({"x": x})["y"],
                                  np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})["y"] for i in range(200)]))


@pytest.mark.parametrize("strategy, reuse", [("latency", 1), ("resource", 5)])
def test_causal_attention_bit_exact(tmp_path, strategy, reuse):
    rng = np.random.default_rng(11)
    e, h, d, s = 8, 2, 4, 6
    w = [rng.normal(0, 0.4, shape) for shape in [(e, h * d)] * 3 + [(h * d,)] * 3 + [(h * d, e), (e,)]]
    g = Graph("causal")
    x = g.add_input("x", TensorType((1, s, e), F32))
    consts = [g.add_constant(f"w{i}", a.astype(np.float32)) for i, a in enumerate(w)]
    op = MultiHeadAttention(num_heads=h, head_dim=d, scale=0.5, causal=True)
    g.outputs = [g.add_node(op, [x, x, None, *consts], name="mha").outputs[0]]
    q = accelgen.quantize(g, {"x": rng.normal(0, 1, (100, s, e)).astype(np.float32)})
    project = compile(q, out_dir=tmp_path / "causal", strategy=strategy, reuse_factor=reuse)
    xs = rng.normal(0, 1.5, (200, s, e))
    out = g.outputs[0].name
    y = project.predict({"x": xs})[out]
    np.testing.assert_array_equal(y, np.concatenate([accelgen.run(q, {"x": xs[i:i + 1]})[out] for i in range(200)]))
    later = xs.copy()
    later[:, 3:] += 2.0  # the first three queries see only the first three keys
    np.testing.assert_array_equal(project.predict({"x": later})[out][:, :3], y[:, :3])


def test_dense_with_fused_gelu_bit_exact_on_both_sides_of_the_table(tmp_path):
    """Gelu fused into Dense reads its table at the exact accumulator: x itself above the table, 0 below."""
    rng = np.random.default_rng(0)
    w, b = rng.normal(0, 0.5, (8, 16)), rng.normal(0, 0.3, 16)
    g = accelgen.optimize(text_model("(float[1,3,8] x) => (float[1,3,16] y)", [const("w", w), const("b", b)],
                                     "h = MatMul(x, w)\n a = Add(h, b)\n y = Gelu(a)", opset=20))
    assert [(n.op_type, n.op.activation.op_type) for n in g.nodes] == [("Dense", "Gelu")]
    q = accelgen.quantize(g, {"x": rng.normal(0, 1, (200, 3, 8)).astype(np.float32)})
    table = q.nodes[0].op.param("activation_table")
    x = rng.normal(0, 3, (300, 3, 8))
    pre = x @ w + b
    assert (pre > table.x_max + 0.5).any() and (pre < table.x_min - 0.5).any()
    y = compile(q, out_dir=tmp_path / "p").predict({"x": x})["y"]
    np.testing.assert_array_equal(y, np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})["y"] for i in range(300)]))
