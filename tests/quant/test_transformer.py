"""Post-training quantization of PyTorch-exported transformer encoders (TorchScript and dynamo exports, a BERT layer
with an attention mask, the example tiny transformer): 16-bit activations and weights agree with float to cosine
0.999 on held-out inputs, and the attention and layer norm nodes compute exactly what integer kernels compute."""

import numpy as np
import pytest

import accelgen
from accelgen.ir.ops.fixed_math import NormalizedTable
from accelgen.ir.types import FixedType
from tests.quant import intref
from tests.quant.datasets import ROOT

MODELS = ROOT / "tests" / "data" / "models"


def cosine(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def encoder(name: str):
    return accelgen.optimize(accelgen.load(MODELS / f"{name}.onnx"))


def normal(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 8, 32)).astype(np.float32)


def bert_feeds(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = (rng.random((n, 8)) > 0.3).astype(np.int64)
    mask[:, 0] = 1  # every sequence keeps a token
    return {"hidden_states": rng.standard_normal((n, 8, 32)).astype(np.float32), "attention_mask": mask}


def worst_cosine(g, q, feeds: dict[str, np.ndarray]) -> float:
    """The lowest per-sample cosine over samples fed one at a time (the exported graphs have batch 1)."""
    worst = 1.0
    for i in range(len(next(iter(feeds.values())))):
        one = {k: v[i:i + 1] for k, v in feeds.items()}
        f, z = accelgen.run(g, one), accelgen.run(q, one)
        worst = min(worst, min(cosine(f[k], z[k]) for k in f))
    return worst


@pytest.mark.parametrize("name", ["encoder_torchscript", "encoder_dynamo"])
def test_encoder_16_bit_activations_and_weights_give_cosine_0_999(name):
    g = encoder(name)
    assert {"MultiHeadAttention", "LayerNormalization"} <= {n.op_type for n in g.nodes}
    q = accelgen.quantize(g, {"x": normal(64, 0)}, activation_bits=16, weight_bits=16)
    for v in [*q.inputs, *q.constants.values(), *(o for n in q.nodes for o in n.outputs)]:
        assert isinstance(v.dtype, FixedType), v
    assert worst_cosine(g, q, {"x": normal(16, 1)}) >= 0.999


@pytest.mark.parametrize("name", ["encoder_torchscript", "encoder_dynamo"])
def test_encoder_8_bit_weights_without_options(name):
    """Plain per-tensor 8-bit weights with 16-bit activations (measured: worst 0.9997 over 32 samples); the
    transformer-aware options improve on this elsewhere."""
    g = encoder(name)
    q = accelgen.quantize(g, {"x": normal(64, 0)}, activation_bits=16, weight_bits=8)
    assert worst_cosine(g, q, {"x": normal(16, 1)}) >= 0.995


def test_bert_layer_with_an_attention_mask():
    g = encoder("bert_layer")
    q = accelgen.quantize(g, bert_feeds(64, 0), activation_bits=16, weight_bits=16)
    held_out = bert_feeds(16, 1)
    assert worst_cosine(g, q, held_out) >= 0.999
    # Masked keys get probability exactly 0: changing the masked tokens' inputs changes no bit of the others.
    one = {k: v[:1] for k, v in held_out.items()}
    masked = one["attention_mask"][0] == 0
    assert masked.any()
    other = {**one, "hidden_states": one["hidden_states"].copy()}
    other["hidden_states"][0, masked] += 1.5
    a, b = accelgen.run(q, one)["output"], accelgen.run(q, other)["output"]
    np.testing.assert_array_equal(a[0, ~masked], b[0, ~masked])
    assert not np.array_equal(a[0, masked], b[0, masked])


def test_tiny_transformer_on_its_own_input():
    batch = 32
    g = accelgen.optimize(accelgen.load(ROOT / "examples" / "tiny_transformer" / "tiny_transformer.onnx",
                                        input_shapes={"x": (batch, 16, 6)}))
    rng = np.random.default_rng(0)
    q = accelgen.quantize(g, {"x": rng.standard_normal((4 * batch, 16, 6)).astype(np.float32)})
    x = rng.standard_normal((batch, 16, 6)).astype(np.float32)
    f, z = accelgen.run(g, {"x": x})["logits"], accelgen.run(q, {"x": x})["logits"]
    assert cosine(f, z) >= 0.999
    assert (f.argmax(-1) == z.argmax(-1)).mean() >= 0.95


def test_encoder_attention_and_layer_norm_are_the_integer_kernels():
    g = encoder("encoder_torchscript")
    q = accelgen.quantize(g, {"x": normal(64, 0)})
    seen = {}
    accelgen.run(q, {"x": normal(1, 2)}, observe=lambda v, a: seen.__setitem__(v.name, a))
    checked = 0
    for node in q.nodes:
        if node.op_type == "MultiHeadAttention":
            assert node.op.param("scores_scale").constant.type.width == 16  # 1/sqrt(8): 16 significant bits here
            want = intref.attention(node, seen[node.inputs[0].name], None)
        elif node.op_type == "LayerNormalization":
            assert isinstance(node.op.param("rsqrt"), NormalizedTable)
            want = intref.layer_norm(node, seen[node.inputs[0].name])
        else:
            continue
        np.testing.assert_array_equal(seen[node.outputs[0].name], want, err_msg=node.name)
        checked += 1
    assert checked == 6


def test_quantized_encoder_is_deterministic():
    g = encoder("encoder_dynamo")
    q1 = accelgen.quantize(g, {"x": normal(16, 0)})
    q2 = accelgen.quantize(g, {"x": normal(16, 0)})
    x = {"x": normal(1, 3)}
    np.testing.assert_array_equal(next(iter(accelgen.run(q1, x).values())), next(iter(accelgen.run(q2, x).values())))
    assert [n.op for n in q1.nodes] == [n.op for n in q2.nodes]
