"""smooth-quant: scale migration from LayerNorm outputs into the projections that read them. The float model is
unchanged (bit for bit with power-of-two scales); in fixed point it buys precision where LN outputs have outlier
channels."""

import math
from pathlib import Path

import numpy as np
import pytest

import accelgen
from accelgen.ir.graph import Graph
from accelgen.ir.ops.elementwise import Add
from accelgen.ir.ops.fused import Dense
from accelgen.ir.ops.normalization import LayerNormalization
from accelgen.ir.types import F32, TensorType
from accelgen.passes import PASSES, PIPELINES, optimize
from accelgen.passes.smooth import (
    Site,
    SmoothQuant,
    channel_maxima,
    find_site,
    smooth_quant,
    smoothing_scales,
)

ENCODER = Path(__file__).resolve().parents[1] / "data" / "models" / "encoder_torchscript.onnx"
OUTLIERS = (3, 11, 27)


def encoder():
    return accelgen.optimize(accelgen.load(ENCODER))


def sequences(n, seed):
    """n random normal sequences for the encoder's input x (1, 8, 32), stacked along the batch axis."""
    return np.random.default_rng(seed).normal(size=(n, 8, 32)).astype(np.float32)


def outlier_model(tokens=32, channels=32, width=32, factor=30.0, residual=False, seed=0) -> Graph:
    """x -> LayerNorm -> Dense, the LN's gamma and beta `factor` times larger on the OUTLIERS channels and the
    Dense's rows for them `factor` times smaller, so that every channel still carries its share of the output
    (the shape of trained transformers' activations that SmoothQuant targets). With `residual`, the LN output is
    also added to the Dense output, as in a post-norm block."""
    rng = np.random.default_rng(seed)
    gamma, beta = rng.uniform(0.5, 1.5, channels), rng.normal(0.0, 0.1, channels)
    gamma[list(OUTLIERS)] *= factor
    beta[list(OUTLIERS)] *= factor
    w = rng.normal(0.0, 1.0 / math.sqrt(channels), (channels, width))
    w[list(OUTLIERS)] /= factor
    b = rng.normal(0.0, 0.05, width)
    g = Graph("outliers")
    x = g.add_input("x", TensorType((tokens, channels), F32))
    const = lambda name, a: g.add_constant(name, np.asarray(a, np.float32))
    y = g.add_node(LayerNormalization(), [x, const("gamma", gamma), const("beta", beta)], ["ln"], "ln").outputs[0]
    out = g.add_node(Dense(), [y, const("W", w), const("b", b)], ["dense"], "dense").outputs[0]
    if residual:
        out = g.add_node(Add(), [y, out], ["sum"], "residual").outputs[0]
    g.outputs = [out]
    return g


def prenorm_encoder() -> Graph:
    """The exported encoder's two layers rewired pre-norm (h = h + MHA(LN1(h)); h = h + FFN(LN2(h))), with its
    own weights: then LN outputs feed only projections, as in most current transformers."""
    src = encoder()
    mhas = [n for n in src.nodes if n.op_type == "MultiHeadAttention"]
    lns = [n for n in src.nodes if n.op_type == "LayerNormalization"]
    denses = [n for n in src.nodes if n.op_type == "Dense"]
    g = Graph("prenorm")
    h = g.add_input("x", src.inputs[0].type)
    const = lambda v: None if v is None else g.add_constant(v.name, v.data)
    for layer in range(2):
        mha, (ln1, ln2), (d1, d2) = mhas[layer], lns[2 * layer:2 * layer + 2], denses[2 * layer:2 * layer + 2]
        a = g.add_node(ln1.op, [h, *map(const, ln1.inputs[1:])], name=f"l{layer}/ln1").outputs[0]
        att = g.add_node(mha.op, [a, a, None, *map(const, mha.inputs[3:])], name=f"l{layer}/mha").outputs[0]
        h = g.add_node(Add(), [h, att], name=f"l{layer}/add1").outputs[0]
        b = g.add_node(ln2.op, [h, *map(const, ln2.inputs[1:])], name=f"l{layer}/ln2").outputs[0]
        f = g.add_node(d1.op, [b, *map(const, d1.inputs[1:])], name=f"l{layer}/ffn1").outputs[0]
        f = g.add_node(d2.op, [f, *map(const, d2.inputs[1:])], name=f"l{layer}/ffn2").outputs[0]
        h = g.add_node(Add(), [h, f], [f"h{layer}"], name=f"l{layer}/add2").outputs[0]
    g.outputs = [h]
    return g


def with_outliers(g: Graph, factor=30.0) -> Graph:
    """A copy of `g` with the outlier structure of trained transformers put in: in every LN that feeds
    projections, gamma and beta `factor` times larger on the OUTLIERS channels and the rows of the weights that
    read them `factor` times smaller. The projections compute what they did; only the LN outputs change."""
    g = g.copy()
    o = list(OUTLIERS)
    for ln in [n for n in g.nodes if n.op_type == "LayerNormalization"]:
        site = find_site(g, ln)
        if not isinstance(site, Site):
            continue
        for v_slot, scale in [((ln, 1), factor), ((ln, 2), factor)] + [(w, 1.0 / factor) for w in site.weights]:
            node, slot = v_slot
            data = node.inputs[slot].data.copy()
            data[o] *= scale
            node.set_input(slot, g.add_constant(node.inputs[slot].name + "_outliers", data))
    g.remove_unused_constants()
    return g


def tokens(n, channels=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, channels)).astype(np.float32)


# -- the float transformation -------------------------------------------------------------------------------------
def test_scales_follow_the_formula():
    x, w = np.array([4.0, 1.0, 0.0, 9.0]), np.array([1.0, 4.0, 1.0, 0.0])
    np.testing.assert_allclose(smoothing_scales(x, w, 0.5, power_of_two=False), [2.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(smoothing_scales(x, w, 1.0, power_of_two=False), [4.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(smoothing_scales(x, w, 0.0, power_of_two=False), [1.0, 0.25, 1.0, 1.0])
    np.testing.assert_array_equal(smoothing_scales([3.0, 1.0], [1.0, 1.0], 0.5), [2.0, 1.0])  # sqrt(3) -> 2
    np.testing.assert_array_equal(smoothing_scales([2.0 ** 10, 1.0], [1.0, 1.0], 1.0, span=6), [2.0 ** 10, 2.0 ** 4])


def test_smoothing_the_encoder_changes_no_bits():
    g = encoder()
    s = smooth_quant(g, {"x": sequences(16, seed=1)})
    x = sequences(4, seed=2)
    for i in range(4):
        np.testing.assert_array_equal(accelgen.run(s, {"x": x[i:i + 1]})["y"], accelgen.run(g, {"x": x[i:i + 1]})["y"])
    # three LNs feed projections (the last feeds only the output); in this post-norm encoder each also feeds a
    # residual Add, which gets the original values back through a Mul
    assert sum(n.op_type == "Mul" for n in s.nodes) == 3
    assert [n.op_type for n in g.nodes] == [n.op_type for n in s.nodes if n.op_type != "Mul"]
    assert {v.name for v in g.constants.values()} != {v.name for v in s.constants.values()}
    # the original graph is untouched
    assert not any(n.op_type == "Mul" for n in g.nodes)


def test_real_valued_scales_are_close_not_exact():
    g = outlier_model()
    x = tokens(256)
    s = smooth_quant(g, {"x": x}, power_of_two=False, compensate=False)
    scales = g.constants["gamma"].data / s.nodes[0].inputs[1].data
    assert not np.allclose(np.log2(scales), np.round(np.log2(scales)))
    np.testing.assert_allclose(accelgen.run(s, {"x": x[:32]})["dense"], accelgen.run(g, {"x": x[:32]})["dense"],
                               rtol=1e-5, atol=1e-5)


def test_outlier_channels_move_into_the_weights():
    g = outlier_model()
    x = tokens(256)
    before = channel_maxima(g, {"x": x}, ["ln"])["ln"]
    s = smooth_quant(g, {"x": x}, alpha=0.5)
    after = channel_maxima(s, {"x": x}, ["ln"])["ln"]
    normal = np.setdiff1d(np.arange(32), OUTLIERS)
    assert before[list(OUTLIERS)].min() > 5 * before[normal].max()
    assert after.max() / np.median(after) < before.max() / np.median(before) / 3
    w_before, w_after = np.abs(g.constants["W"].data).max(1), np.abs(s.nodes[1].inputs[1].data).max(1)
    assert np.all(w_after[list(OUTLIERS)] > 2 * w_before[list(OUTLIERS)])


def test_residual_use_needs_power_of_two_compensation():
    g = outlier_model(residual=True)
    x = tokens(64)
    result = SmoothQuant(channel_maxima(g, {"x": x}, ["ln"]), compensate=False).run(work := g.copy())
    assert not result.changed and "residual" in result.refusals[0].reason
    result = SmoothQuant(channel_maxima(g, {"x": x}, ["ln"]), power_of_two=False).run(work)
    assert not result.changed
    s = smooth_quant(g, {"x": x})
    np.testing.assert_array_equal(accelgen.run(s, {"x": x[:32]})["sum"], accelgen.run(g, {"x": x[:32]})["sum"])
    mul = next(n for n in s.nodes if n.op_type == "Mul")
    scale = mul.inputs[1].data
    assert np.log2(scale.max() / scale.min()) <= 6  # exact in a 7-bit unsigned weight type


def test_pre_norm_site_needs_no_compensation():
    g = outlier_model()
    s = smooth_quant(g, {"x": tokens(64)})
    assert [n.op_type for n in s.nodes] == ["LayerNormalization", "Dense"]


def test_registered_but_not_in_the_default_pipeline_and_data_free_without_calibration():
    assert "smooth-quant" in PASSES and "smooth-quant" not in PIPELINES["default"]
    g = outlier_model()
    s = optimize(g, ["smooth-quant"])
    x = tokens(32)
    np.testing.assert_array_equal(accelgen.run(s, {"x": x})["dense"], accelgen.run(g, {"x": x})["dense"])
    assert not np.array_equal(s.nodes[0].inputs[1].data, g.nodes[0].inputs[1].data)


def test_refusals_say_why():
    g = encoder()
    result = SmoothQuant().run(g.copy())
    reasons = {r.node: r.reason for r in result.refusals}
    assert "graph output" in reasons["/layers.1/norm2/LayerNormalization"]
    with pytest.raises(ValueError, match="alpha"):
        SmoothQuant(alpha=1.5)


# -- what the options buy in fixed point ---------------------------------------------------------------------------
def cosine(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def option_cosines(g, name, calib, held_out, batch, **bits) -> dict[str, float]:
    """Cosine with float on held-out data for: plain, per_channel, smooth_quant, and both."""
    def outputs(graph):
        return np.concatenate([next(iter(accelgen.run(graph, {name: held_out[i:i + batch]}).values()))
                               for i in range(0, len(held_out), batch)])

    want = outputs(g)
    smoothed = smooth_quant(g, {name: calib})
    variants = {"plain": (g, False), "per_channel": (g, True), "smooth_quant": (smoothed, False),
                "both": (smoothed, True)}
    return {label: cosine(want, outputs(accelgen.quantize(graph, {name: calib}, per_channel=pc, **bits)))
            for label, (graph, pc) in variants.items()}


def encoder_cosines(weight_bits=8, activation_bits=16, prenorm=False, outliers=False):
    g = prenorm_encoder() if prenorm else encoder()
    g = with_outliers(g) if outliers else g
    return option_cosines(g, "x", sequences(64, seed=1), sequences(64, seed=2), 1, weight_bits=weight_bits, activation_bits=activation_bits)


def outlier_cosines(weight_bits=8, activation_bits=16, residual=False):
    return option_cosines(outlier_model(residual=residual), "x", tokens(256, seed=1), tokens(256, seed=2), 32,
                          weight_bits=weight_bits, activation_bits=activation_bits)


def test_encoder_with_8_bit_weights_and_each_option():
    """The issue's bound: 8-bit weights, 16-bit activations, cosine >= 0.99 with the transformer-aware options. The
    exported encoder (random PyTorch init) has no outlier channels, so every variant is far above it."""
    cos = encoder_cosines(8, 16)
    assert min(cos.values()) >= 0.9995, cos


def test_smooth_quant_recovers_a_pre_norm_transformer_with_outlier_channels():
    clean = prenorm_encoder()
    dirty = with_outliers(clean)
    x = sequences(2, seed=3)
    assert not np.array_equal(accelgen.run(dirty, {"x": x[:1]})["h1"], accelgen.run(clean, {"x": x[:1]})["h1"])
    w8a16, w8a8 = encoder_cosines(8, 16, True, True), encoder_cosines(8, 8, True, True)
    assert w8a16["plain"] < 0.997 and w8a16["smooth_quant"] >= 0.9995 and w8a16["both"] >= 0.9995, w8a16
    assert w8a8["plain"] < 0.98 and w8a8["smooth_quant"] >= 0.998, w8a8


def test_smooth_quant_at_8_bit_activations_on_an_outlier_block():
    cos = outlier_cosines(8, 8)
    assert cos["plain"] < 0.9 and cos["smooth_quant"] > 0.999, cos


def test_compensation_stays_exact_in_fixed_point():
    g = outlier_model(residual=True)
    x = tokens(256, seed=1)
    s = smooth_quant(g, {"x": x})
    q = accelgen.quantize(s, {"x": x}, weight_bits=8, activation_bits=16)
    mul = next(n for n in q.nodes if n.op_type == "Mul")
    scale = next(n for n in s.nodes if n.op_type == "Mul").inputs[1].data
    np.testing.assert_array_equal(mul.inputs[1].data, scale)  # powers of two within 2**6: exact at 8 bits


def main():
    rows = []
    for prenorm, outliers in ((False, False), (False, True), (True, False), (True, True)):
        label = ("pre-norm encoder" if prenorm else "encoder") + (" +outliers" if outliers else "")
        rows += [(label, f"W{w}A{a}", encoder_cosines(w, a, prenorm, outliers))
                 for w, a in ((8, 16), (8, 8), (6, 16))]
    for residual in (False, True):
        label = "LN->Dense" + (" +residual" if residual else "")
        rows += [(label, f"W{w}A{a}", outlier_cosines(w, a, residual)) for w, a in ((8, 16), (8, 8), (6, 16))]
    print(f"| model | bits | {' | '.join(rows[0][2])} |\n|---|---|{'---|' * len(rows[0][2])}")
    for model, bits, cos in rows:
        print(f"| {model} | {bits} | {' | '.join(f'{c:.5f}' for c in cos.values())} |")


if __name__ == "__main__":
    main()
