"""The estimator's models of the transformer kernels (estimate_transformer.py) and of the elementwise, reduction
and io stream designs, on the reference-shaped jet transformer and a BERT-base-sized layer."""

import time

import numpy as np
import pytest

import accelgen
from accelgen.backends.hls import estimate
from accelgen.backends.hls import estimate_model as m
from accelgen.backends.hls import estimate_stream as st
from accelgen.backends.hls import estimate_transformer as tr
from tests.backends.hls.encoder_models import encoder_graph
from tests.quant.datasets import ROOT

T = m.Timing(5.0, 2)
XCVU13P = "xcvu13p-flga2577-2-e"


@pytest.fixture(scope="module")
def jet_transformer():
    """examples/jet_transformer: 15 particles x 6 features, Dense embedding, 3 pre-norm blocks (2 heads, d 16,
    ffn 32), LayerNorm, mean over particles, 5 logits."""
    path = ROOT / "examples" / "jet_transformer"
    g = accelgen.optimize(accelgen.load(str(path / "jet_transformer.onnx"), input_shapes={"x": (1, 15, 6)}))
    with np.load(path / "sample.npz") as d:
        calib = {"x": d["calibration"]}
    return accelgen.quantize(g, calib)


def projection(tokens, n_in, n_out, raw):
    return tr.Projection(tokens, n_in, n_out, raw, 16, 16, 37, 16)


def attention(seq=15, heads=2, head_dim=8, d=16, wq=None):
    rng = np.random.default_rng(0)
    width = heads * head_dim

    def raw(n_in, n_out):  # 16-bit weights with at least three signed digits: every one a DSP multiply
        return rng.integers(1000, 30000, n_in * n_out) | 0b10101

    sm = tr.SoftmaxTypes(16, 22, 16, 1024, 18, 18, 22, 1024, 18)
    return tr.Attention(seq, seq, heads, head_dim, projection(seq, d, width, raw(d, width) if wq is None else wq),
                        projection(seq, d, width, raw(d, width)), projection(seq, d, width, raw(d, width)),
                        projection(seq, width, d, raw(width, d)), 16, 16, 16, 34, 16, 23170, 16, 16, sm, 16, 35,
                        16)


def test_attention_multipliers_follow_the_kernel_structure():
    a = attention()
    looped, unrolled = tr.attention(a, False, T), tr.attention(a, True, T)
    softmax_dsp = a.softmax.cost(1, 15, T).dsp
    # one token's work: 4 projections (16x16 each), Q.K and P.V (2 heads x 15 keys x 8), the scale (not a
    # power of two: a DSP) and one softmax per head
    per_token = 4 * 256 + 2 * (2 * 15 * 8) + 2 * 15 + 2 * softmax_dsp
    assert looped.dsp == per_token
    assert unrolled.dsp == 15 * per_token  # the pipelined top unrolls the token loops
    assert unrolled.cycles < looped.cycles and looped.cycles > 3 * 15  # Q/K/V, per-query and output token loops


def test_attention_zero_weights_cost_no_multiplier():
    half = np.random.default_rng(1).integers(1000, 30000, 128) | 0b10101  # Wq with half its weights pruned
    dense, pruned = tr.attention(attention(), False, T), tr.attention(attention(wq=half), False, T)
    assert dense.dsp - pruned.dsp == 128


def test_layernorm_model():
    ln = tr.LayerNorm(15, 16, 16, 20, 20, 1, 1, 18, 17, 42, 42, 1, 1, 26, 2048, 18, 18, 8,
                      np.full(16, 1 << 14), 16, 16)
    looped, unrolled = tr.layernorm(ln, False, T), tr.layernorm(ln, True, T)
    assert looped.dsp == 2 * 16  # squares and d * rsqrt; 1/n and gamma = 1.0 are shifts
    wide = tr.LayerNorm(*[*ln.__dict__.values()][:8], 19, *[*ln.__dict__.values()][9:])
    assert tr.layernorm(wide, False, T).dsp == 3 * 16  # 19 x 19-bit squares need two DSP48s each
    assert looped.bram18 == 2 and looped.cycles == 14 + 1  # 36 Kbit rsqrt table in block RAM, registered read
    assert unrolled.dsp == 15 * looped.dsp and unrolled.bram18 == 15 * looped.bram18
    general = tr.LayerNorm(*[*ln.__dict__.values()][:18], np.full(16, 12345), 16, 16)
    assert tr.layernorm(general, False, T).dsp == 3 * 16


def test_gelu_table_memory():
    small, large = tr.gelu(64, 16, 12, 256, 16, T), tr.gelu(64, 16, 12, 4096, 16, T)
    assert small.bram18 == 0 and small.cycles == 0 and small.lut > 64 * 16 * 4
    assert large.bram18 == 32 * 4 and large.cycles == 1  # a copy per two readers, 4 BRAM18 each


def test_jet_transformer_at_reuse_factor_1(jet_transformer):
    """The reference work's shape at RF 1 on xcvu13p at 200 MHz: the latency strategy's kernels each pipeline
    their loop over the 15 particles inside a DATAFLOW top (a top-level PIPELINE would unroll those loops into
    15 copies, ten times the part); it fits, and the resource strategy at RF 1 needs about as many DSPs."""
    q = jet_transformer
    ops = [n.op_type for n in q.nodes]
    assert ops.count("MultiHeadAttention") == 3 and ops.count("LayerNormalization") == 7 and "ReduceMean" in ops
    fast = estimate(q, part=XCVU13P, clock_ns=5, strategy="latency")
    assert len(fast.layers) == len(q.nodes) and fast.config["top level"] == "DATAFLOW"
    assert fast.dsp < 12288 and not any("over budget" in w for w in fast.warnings)
    fits = estimate(q, part=XCVU13P, clock_ns=5, strategy="resource", reuse_factor=1)
    for r in (fast, fits):
        assert r.latency_cycles == sum(row.latency_cycles for row in r.layers) + 1
        mha = [row for row in r.layers if row.op == "MultiHeadAttention"]
        assert r.ii == max(row.ii for row in r.layers) == mha[0].ii
        assert 400 < r.latency_cycles < 2000  # microseconds, not nanoseconds: 15 tokens through 25 processes
    assert fast.latency_cycles <= fits.latency_cycles


@pytest.mark.parametrize("strategy", ["latency", "resource"])
def test_io_stream_overlaps_the_frame_by_frame_layers(jet_transformer, strategy):
    """The Dense, LayerNorm and Add processes run token by token, so in io stream they overlap their neighbours;
    the attention processes still take the whole tensor in and out (FIFO copies), which io parallel does not pay."""
    parallel = estimate(jet_transformer, strategy=strategy)
    stream = estimate(jet_transformer, strategy=strategy, io="stream")
    assert stream.config["io"] == "stream" and stream.latency_cycles < parallel.latency_cycles
    assert stream.dsp == parallel.dsp and stream.ff > parallel.ff  # local arrays and FIFOs are registers here


def test_stream_schedule_of_a_token_by_token_attention():
    """Its input loop takes each frame as it arrives; its output loop starts once the last one is in, and its
    consumer overlaps it."""
    a = st.StageTiming("a", 0, [st.Transfer("in", 15)], [st.Transfer("ab", 15)], phases=(4, 9))
    b = st.StageTiming("b", 14 + 5, [st.Transfer("ab", 15)], [st.Transfer("out", 15)], rows=15, pipelined=True)
    latency, finish = st.schedule([a, b], {"in": 15})
    assert finish["a"] == 15 + 4 + 9 + 14  # last input frame at 15, the two depths, then one frame per cycle
    assert finish["b"] == finish["a"] + b.row_depth and a.busy == 30 + 13


def test_jet_transformer_io_stream_streams_its_attention(jet_transformer):
    """Latency strategy in io stream: the frame-by-frame layers and the token-by-token attentions overlap, so the
    estimate drops well below io parallel's (and below the reference work's 2 us at 200 MHz)."""
    parallel, stream = estimate(jet_transformer), estimate(jet_transformer, io="stream")
    assert stream.latency_cycles < 0.7 * parallel.latency_cycles and stream.latency_cycles * 5.0 < 2000
    assert stream.dsp == parallel.dsp


def test_stream_schedule_overlaps_frame_by_frame_stages():
    """Two pipelined frame-by-frame stages of 15 frames (kernel depth 5): b emits its first frame one stage depth
    after a's first, and its last one depth after a's last, instead of after a's whole write loop."""
    a = st.StageTiming("a", 14 + 5, [st.Transfer("in", 15)], [st.Transfer("ab", 15)], rows=15, pipelined=True)
    b = st.StageTiming("b", 14 + 5, [st.Transfer("ab", 15)], [st.Transfer("out", 15)], rows=15, pipelined=True)
    latency, finish = st.schedule([a, b], {"in": 15})
    assert a.row_depth == 5 + 2 * st.TRANSFER_DEPTH and a.busy == 15 + a.row_depth
    assert finish["a"] == 15 + a.row_depth  # the last input frame arrives at 15
    assert finish["b"] == finish["a"] + b.row_depth and latency == finish["b"] + 1
    whole = st.schedule([st.StageTiming("a", 19, [st.Transfer("in", 15)], [st.Transfer("ab", 15)]),
                         st.StageTiming("b", 19, [st.Transfer("ab", 15)], [st.Transfer("out", 15)])], {"in": 15})[0]
    assert latency < whole / 2


def test_stream_schedule_overlaps_producer_writes_and_reader_copies():
    a = st.StageTiming("a", 10, [st.Transfer("in", 15)], [st.Transfer("ab", 15)])
    b = st.StageTiming("b", 5, [st.Transfer("ab", 15)], [st.Transfer("out", 15)])
    latency, finish = st.schedule([a, b], {"in": 15})
    assert finish["a"] == 17 + 10 + 17
    assert finish["b"] == finish["a"] + 2 + 5 + 17  # b's copy ends two cycles after a's last frame
    assert latency == finish["b"] + 1 and a.busy == 44
    assert st.fifo_cost(2, 16)[2] == 0 and st.fifo_cost(15, 256) == (256 + 16, 256, 0)
    assert st.fifo_cost(2000, 16)[2] == 2


def test_bert_base_layer_estimates_in_under_a_second():
    """d 768, 12 heads, ffn 3072 (GELU), 128 tokens: quantizing takes seconds; the estimate itself must not."""
    g = encoder_graph(128, 768, 768, 12, 3072, 1, activation="Gelu")
    calib = {"x": np.random.default_rng(0).standard_normal((2, 128, 768)).astype(np.float32)}
    q = accelgen.quantize(g, calib, "fixed<16,6>")
    for strategy in ("resource", "latency"):
        start = time.perf_counter()
        r = estimate(q, strategy=strategy)
        assert time.perf_counter() - start < 1.0
        assert any("alone needs" in w and "MultiHeadAttention" in w for w in r.warnings)
    assert any("clock risk" in w and "adder tree depth 10" in w for w in r.warnings)  # 768 products per value


def test_elementwise_and_reduction_models():
    mul = m.binary(8, 16, 16, 16, "mul")
    const = m.binary(8, 16, 16, 16, "mul", np.array([0, 4, 3000, 3000, 0, 0, -8, 5]))
    assert mul.dsp == 8 and const.dsp == 3  # zeros fold, +-2**k are shifts
    assert m.binary(8, 16, 12, 17, "add").dsp == 0
    mean = m.reduction(1, 15, 16, 16, 20, (20, 16, 4369), False, T)
    assert mean.dsp == 1 and mean.cycles == 15
    assert m.reduction(1, 15, 16, 16, 20, (20, 16, 4369), True, T).dsp == 16
    assert m.reduction(1, 16, 16, 16, 20, (20, 16, 4096), True, T).dsp == 0  # 1/16 is a shift


def test_masked_and_causal_attention():
    plain = attention()
    masked = tr.Attention(**{**plain.__dict__, "mask_w": 18})
    causal = tr.Attention(**{**plain.__dict__, "causal": True})
    base = tr.attention_core(plain, False, T)
    for variant in (masked, causal):
        c = tr.attention_core(variant, False, T)
        assert c.dsp == base.dsp and c.lut > base.lut and c.delay_ns > base.delay_ns


def test_bert_layer_export_with_an_attention_mask():
    from tests.quant.test_transformer import bert_feeds, encoder

    q = accelgen.quantize(encoder("bert_layer"), bert_feeds(16, 0), activation_bits=16, weight_bits=16)
    r = estimate(q, strategy="resource")
    (mha,) = [row for row in r.layers if row.op == "MultiHeadAttention"]
    assert "additive mask" in mha.kernel and mha.dsp > 0
    assert {row.op for row in r.layers} >= {"Cast", "Sub", "Mul", "LayerNormalization", "Dense"}


def test_resource_attention_shares_multipliers_by_the_reuse_factor():
    """ag::multihead_attention_resource: the DSPs are the kernel's multiplier count (layers_transformer
    AttentionShape, what compile's fit check reads) at one DSP per 16-bit product, the scale's products aside
    (23170 is not a shift: one each) and the softmax row's log2(e) and reciprocal; cycles grow with R."""
    from accelgen.backends.hls.layers import LayerChoice
    from accelgen.backends.hls.layers_transformer import AttentionShape

    a = attention()
    shape = AttentionShape(15, 16, 15, 16, 2, 8, 16)
    costs = {r: tr.attention_resource(a, r, T) for r in (1, 4, 16, 64)}
    for r, c in costs.items():
        assert c.dsp == shape.multipliers(LayerChoice("resource", r))
    assert costs[4].dsp == 4 * 64 + 8 * 8 + 4 * 15 + 3 * 15  # 256 / 4 per projection, Q.K 8 units, P.V 4 units
    cycles = [costs[r].cycles for r in (4, 16, 64)]
    assert cycles[0] < cycles[1] < cycles[2] and costs[64].ii > costs[64].cycles
    # per query: Q.K in ceil(30 / 16) = 2 cycles, P.V in 1 at R = 16; each projection 16 cycles a token
    assert 15 * (16 + 2 + 1 + 2) < costs[16].cycles < 15 * (4 * 16 + 2 + 1 + 2 + 20 * 4)
    assert costs[64].dsp < costs[4].dsp < tr.attention(a, False, T).dsp


def test_resource_projection_crossbar_only_when_the_lanes_do_not_align():
    """Multiplier k % L feeds output k % n_out: with L dividing n_out (or n_out dividing L) every accumulator
    has fixed sources; otherwise each picks among several multipliers."""
    p = projection(15, 16, 16, np.ones(256, np.int64) * 12345)
    aligned, skewed = tr.projection_resource(p, 32, T), tr.projection_resource(p, 30, T)  # 8 and 9 lanes
    assert (aligned.dsp, skewed.dsp) == (8, 9)
    assert skewed.lut > aligned.lut and skewed.delay_ns > aligned.delay_ns
    assert aligned.cycles == 15 * (32 + T.stages(aligned.delay_ns) + 1) - T.stages(aligned.delay_ns) - 1
