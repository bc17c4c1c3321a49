"""Fixed-point semantics of normalization, softmax, attention, activations, pooling and division, bit by bit:
exact accumulations, roundings to the declared types, table indexing at the edges, saturation counted. The layer
norm and attention kernels are checked against integer re-implementations (tests/quant/intref.py)."""

import math

import numpy as np
import pytest

import accelgen
from accelgen.errors import QuantizationError
from accelgen.ir.fixed import quantize as fq
from accelgen.ir.graph import Graph
from accelgen.ir.ops.activations import Clip, Gelu, HardSigmoid, HardSwish, LeakyRelu, Sigmoid, Tanh
from accelgen.ir.ops.conversion import Cast
from accelgen.ir.ops.elementwise import Div, Exp, Reciprocal, Sqrt
from accelgen.ir.ops.fixed_math import (ExpFunction, FixedConstant, NormalizedTable, Rescale, significant_type,
                                        softmax_fixed)
from accelgen.ir.ops.normalization import LayerNormalization, Softmax
from accelgen.ir.ops.pool import AveragePool, GlobalAveragePool
from accelgen.ir.ops.reduce import ReduceMean
from accelgen.ir.types import F32, FixedType, Overflow, Rounding, TensorType
from tests.quant import intref

RND_SAT = {"rounding": Rounding.RND, "overflow": Overflow.SAT}
ENTRY = FixedType(18, 1, False, **RND_SAT)


def single(op, shape, constants=(), data=None, *, dtype=F32):
    """A graph of one node: input x of `shape`, then the constants (None for an empty slot)."""
    g = Graph("single")
    x = g.add_input("x", TensorType(shape, dtype))
    args = [x] + [None if c is None else g.add_constant(f"c{i}", np.asarray(c, np.float32))
                  for i, c in enumerate(constants)]
    g.outputs = [g.add_node(op, args, name="op").outputs[0]]
    return g


def quantize_single(op, calib, constants=(), **kw):
    g = single(op, (1,) + calib.shape[1:], constants)
    q = accelgen.quantize(g, {"x": calib}, **kw)
    return g, q, q.nodes[0]


def run(q, x):
    seen, stats = {}, {}
    out = accelgen.run(q, {"x": x}, stats=stats, observe=lambda v, a: seen.__setitem__(v.name, a))
    return next(iter(out.values())), seen, stats


rng = np.random.default_rng(7)


# -- building blocks -----------------------------------------------------------------------------------------------
def test_significant_type_keeps_bits_and_is_exact_for_powers_of_two():
    assert significant_type(1 / 32, 18) == FixedType(1, -4, False, Rounding.RND_CONV, Overflow.SAT)
    third = FixedConstant.of(1 / 3, 18)
    assert third.type.width == 18 and abs(third.value - 1 / 3) <= 2.0 ** -20
    assert FixedConstant.of(0.99999, 8).value == 1.0  # rounding up to the next power of two gets its bit
    scale = FixedConstant.of(-0.75, 18)
    assert scale.value == -0.75 and scale.type.signed and scale.type.width == 3


def test_rescale_rounds_a_too_wide_operand_first():
    wide = FixedType(48, 20)
    r = Rescale.plan(wide, 1 / 3, FixedType(24, 4, **RND_SAT), 18)
    assert r.constant.type.width == 18 and r.pre == FixedType(35, 20, True, Rounding.RND, Overflow.SAT)
    x = fq(wide, rng.normal(0, 100, 50))[0]
    want = fq(r.out, fq(r.pre, x)[0] * r.constant.value)[0]
    np.testing.assert_array_equal(r.apply(x), want)
    exact = Rescale.plan(FixedType(20, 8), 1 / 64, None, 18)  # a power of two: an exact shift, no rounding
    assert exact.pre is None and exact.constant.type.width == 1
    np.testing.assert_array_equal(exact.apply(np.array([3.5, -7.25])), [3.5 / 64, -7.25 / 64])


@pytest.mark.parametrize("function", ["reciprocal", "rsqrt", "sqrt"])
def test_normalized_table_indexes_like_a_priority_encoder(function):
    table = NormalizedTable(function, 6, ENTRY)
    t = FixedType(32, 12, False)
    x = fq(t, np.concatenate([np.exp(rng.uniform(-19, 7.5, 3000)), [2.0 ** -20, 1.0, 2.0, 3.0, 4.0, t.max]]))[0]
    x = x[x > 0]
    idx, e = intref.normalized_index(intref.raw(x, t), t.fractional, 6)
    if function != "reciprocal":
        idx, e = idx + (e & 1) * 64, e >> 1
    entry, exponent = table.parts(x)
    np.testing.assert_array_equal(entry, table.values[idx])
    np.testing.assert_array_equal(exponent, -e if function != "sqrt" else e)
    exact = {"reciprocal": 1 / x, "rsqrt": 1 / np.sqrt(x), "sqrt": np.sqrt(x)}[function]
    bound = 2.0 ** -7 * (0.5 if function != "reciprocal" else 1) + 2.0 ** -16
    assert np.max(np.abs(table.evaluate(x) / exact - 1)) <= bound


def test_normalized_table_edges():
    table = NormalizedTable("rsqrt", 4, ENTRY)
    assert table.size == 32
    entry, e = table.parts(np.array([1.0, 2.0, 4.0, np.nextafter(2.0, 0), np.nextafter(4.0, 0)]))
    np.testing.assert_array_equal(entry, table.values[[0, 16, 0, 15, 31]])
    np.testing.assert_array_equal(e, [0, 0, -1, 0, 0])
    assert table.values[0] == fq(ENTRY, 1 / math.sqrt(1 + 1 / 32))[0]


def test_exp_is_a_power_of_two_table_and_a_shift():
    t = FixedType(24, 6, True, Rounding.RND, Overflow.SAT)
    result = FixedType(18, 1, False, **RND_SAT)
    exp = ExpFunction(Rescale.plan(FixedType(20, 6), 1 / math.log(2), t, 18), 10, ENTRY, result)
    x = fq(FixedType(20, 6), np.concatenate([rng.uniform(-31, 0, 4000), [0.0, -31.9]]))[0]
    got = fq(result, exp.evaluate(x))[0]
    np.testing.assert_array_equal(got, intref.value(intref.exp(intref.raw(x, FixedType(20, 6)), 14, exp), 17))
    assert got[x == 0][0] == fq(result, exp.values[0])[0]  # exp(0): the first entry, 2**(2**-11)
    assert got[-1] == 0.0 and x[-1] < -31.8  # past the smallest result: exactly 0, not the first entry
    big = np.exp(x) > 2.0 ** -8
    rel = np.abs(got[big] / np.exp(x[big]) - 1)
    assert rel.max() <= math.log(2) * 2.0 ** -11 + 2.0 ** -9  # table step, t rounding, result lsb at 2**-8


def test_softmax_masked_entries_get_exactly_zero_and_rows_sum_to_one():
    t = FixedType(22, 8, True, **RND_SAT)
    exp = ExpFunction(Rescale.plan(FixedType(23, 9), 1 / math.log(2), FixedType(27, 10, True, **RND_SAT), 18), 10,
                      ENTRY, ENTRY)
    recip = NormalizedTable("reciprocal", 10, ENTRY)
    x = fq(t, rng.normal(0, 3, (64, 12)))[0]
    x[:, 3] = t.min  # a key masked by a large negative bias
    p = softmax_fixed(x, -1, exp, recip)
    assert np.all(p[:, 3] == 0)
    assert np.max(np.abs(p.sum(-1) - 1)) < 2.0 ** -9
    keep = np.arange(12) != 5
    assert np.all(softmax_fixed(x, -1, exp, recip, keep)[:, 5] == 0)
    float_p = np.exp(x - x.max(-1, keepdims=True))
    float_p[:, 3] = 0
    float_p /= float_p.sum(-1, keepdims=True)
    assert np.max(np.abs(p - float_p)) < 2e-3


# -- layer norm ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [32, 24])
def test_layer_norm_matches_the_integer_kernel(n):
    gamma, beta = rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n)
    calib = (rng.normal(0, 2, (256, 4, n)) + rng.normal(0, 1, (256, 4, 1))).astype(np.float32)
    g, q, node = quantize_single(LayerNormalization(axis=-1), calib, (gamma, beta))
    assert node.op.param("mean").constant.type.width == (1 if n == 32 else 18)  # 1/32 is a shift; 1/24 is not
    x = (rng.normal(0, 2, (1, 4, n)) + rng.normal(0, 1, (1, 4, 1))).astype(np.float32)
    x[0, 2] = 1.25  # a constant row: variance 0, the output is beta
    out, seen, _ = run(q, x)
    np.testing.assert_array_equal(out, intref.layer_norm(node, seen["x"]))
    np.testing.assert_array_equal(out[0, 2], fq(node.outputs[0].dtype, node.inputs[2].data)[0])
    want = next(iter(accelgen.run(g, {"x": x}).values()))
    assert np.max(np.abs(out[0, [0, 1, 3]] - want[0, [0, 1, 3]])) < 8 * node.outputs[0].dtype.lsb


def test_layer_norm_variance_type_reaches_small_variances():
    calib = (rng.normal(0, 1, (64, 2, 16)) * np.array([1e-2, 3.0])[None, :, None]).astype(np.float32)
    _, q, node = quantize_single(LayerNormalization(axis=-1), calib, (np.ones(16), np.zeros(16)))
    var = node.op.param("var").out
    assert var.lsb <= 1e-4 * 2.0 ** -(10 + 4) * 4  # smallest variance ~1e-4 keeps index bits + 4 below it
    x = calib[:1]
    out, seen, _ = run(q, x)
    np.testing.assert_array_equal(out, intref.layer_norm(node, seen["x"]))
    want = LayerNormalization(axis=-1).compute([seen["x"], np.ones(16), np.zeros(16)])[0]  # on the rounded input
    assert np.max(np.abs(out - want)) < 2e-3


def test_layer_norm_saturation_is_counted():
    calib = rng.normal(0, 1, (64, 4, 64)).astype(np.float32)
    _, q, node = quantize_single(LayerNormalization(axis=-1), calib, (np.ones(64), np.zeros(64)))
    assert node.outputs[0].dtype.max < 7.9
    x = np.zeros((1, 4, 64), np.float32)
    x[0, :, 0] = 100.0  # one outlier per row: normalised to sqrt(63) = 7.9, past anything calibrated
    out, seen, stats = run(q, x)
    assert stats[node.outputs[0].name].overflows == 4 and np.all(out[0, :, 0] == node.outputs[0].dtype.max)
    np.testing.assert_array_equal(out, intref.layer_norm(node, seen["x"]))


def test_layer_norm_extra_outputs_are_refused():
    with pytest.raises(QuantizationError, match="Mean and InvStdDev"):
        quantize_single(LayerNormalization(axis=-1, outputs=3), rng.normal(0, 1, (8, 4, 8)).astype(np.float32),
                        (np.ones(8), np.zeros(8)))


# -- softmax and attention -----------------------------------------------------------------------------------------
def test_softmax_op_matches_the_integer_kernel():
    calib = rng.normal(0, 3, (128, 6, 10)).astype(np.float32)
    g, q, node = quantize_single(Softmax(axis=-1), calib)
    x = rng.normal(0, 3, (1, 6, 10)).astype(np.float32)
    out, seen, _ = run(q, x)
    xt, out_t = node.inputs[0].dtype, node.outputs[0].dtype
    want = intref.softmax(intref.raw(seen["x"], xt), xt.fractional, node.op.param("exp"),
                          node.op.param("reciprocal"), out_t)
    np.testing.assert_array_equal(out, intref.value(want, out_t.fractional))
    assert np.max(np.abs(out - next(iter(accelgen.run(g, {"x": x}).values())))) < 2e-3


def _bert(batch=1):
    from tests.quant.datasets import ROOT

    return accelgen.optimize(accelgen.load(ROOT / "tests" / "data" / "models" / "bert_layer.onnx"))


def _bert_inputs(n, seed):
    r = np.random.default_rng(seed)
    mask = (r.random((n, 8)) > 0.3).astype(np.int64)
    mask[:, 0] = 1
    return {"hidden_states": r.standard_normal((n, 8, 32)).astype(np.float32), "attention_mask": mask}


def test_attention_matches_the_integer_kernel_with_a_mask():
    g = _bert()
    q = accelgen.quantize(g, _bert_inputs(32, 1))
    node = next(n for n in q.nodes if n.op_type == "MultiHeadAttention")
    for name, t in node.op.params:
        if name.endswith("accum"):
            assert t.width <= 53, (name, t)
    feeds = {k: v[:1] for k, v in _bert_inputs(4, 2).items()}
    seen = {}
    accelgen.run(q, feeds, observe=lambda v, a: seen.__setitem__(v.name, a))
    x, mask = (seen[node.inputs[i].name] for i in (0, 2))
    assert mask.min() < -1000  # the mask really masks
    np.testing.assert_array_equal(seen[node.outputs[0].name], intref.attention(node, x, mask))


def test_attention_causal_keys_after_the_query_do_not_count():
    from accelgen.ir.ops.attention import MultiHeadAttention

    e, h, d = 8, 2, 4
    w = [rng.normal(0, 0.4, s) for s in [(e, h * d)] * 3 + [(h * d,)] * 3 + [(h * d, e), (e,)]]
    op = MultiHeadAttention(num_heads=h, head_dim=d, scale=0.5, causal=True)
    g = Graph("mha")
    x = g.add_input("x", TensorType((1, 6, e), F32))
    consts = [g.add_constant(f"w{i}", a.astype(np.float32)) for i, a in enumerate(w)]
    g.outputs = [g.add_node(op, [x, x, None, *consts], name="mha").outputs[0]]
    q = accelgen.quantize(g, {"x": rng.normal(0, 1, (64, 6, e)).astype(np.float32)})
    a = rng.normal(0, 1, (1, 6, e)).astype(np.float32)
    b = a.copy()
    b[0, 4:] += 3.0  # later tokens change: the first four outputs must not
    ya, yb = accelgen.run(q, {"x": a})[g.outputs[0].name], accelgen.run(q, {"x": b})[g.outputs[0].name]
    np.testing.assert_array_equal(ya[0, :4], yb[0, :4])
    assert node_scale_is_exact_shift(q)


def node_scale_is_exact_shift(q) -> bool:
    scale = q.nodes[0].op.param("scores_scale").constant
    return scale.value == 0.5 and scale.type.width == 1


# -- activations ---------------------------------------------------------------------------------------------------
def test_gelu_is_x_above_its_table_and_zero_below():
    calib = rng.uniform(-3, 7, (256, 16)).astype(np.float32)
    _, q, node = quantize_single(Gelu(), calib)
    table = node.op.param("table")
    assert table.x_min <= -3 and 4.6 <= table.x_max < 6  # the calibrated top is past the domain: clipped
    x = np.array([[table.x_min, table.x_min - 2 ** -10, table.x_max, table.x_max - 2 ** -10, 6.5, -40,
                   *np.zeros(10)]], np.float32)
    out, seen, _ = run(q, x)
    xs, out_t = seen["x"][0], node.outputs[0].dtype
    assert out[0, 0] == fq(out_t, table.values[0])[0]  # the table's first bin starts at x_min
    assert out[0, 1] == 0.0 and out[0, 5] == 0.0  # below the table: 0
    assert out[0, 2] == fq(out_t, xs[2])[0] and out[0, 4] == fq(out_t, xs[4])[0]  # above: x itself
    assert out[0, 3] == fq(out_t, table.values[-1])[0]  # the last bin
    assert node.op.op.table_domain(out_t)[1] < 5


@pytest.mark.parametrize("op, lo, hi", [(Sigmoid(), -20, 20), (Tanh(), -2, 1)])
def test_sigmoid_and_tanh_saturate_at_the_table_edges(op, lo, hi):
    calib = rng.uniform(lo, hi, (256, 16)).astype(np.float32)
    g, q, node = quantize_single(op, calib)
    table = node.op.param("table")
    a_lo, a_hi = op.table_domain(table.out)
    assert table.x_min >= min(lo, a_lo) - 1 and table.x_max <= max(hi, a_hi) + 1  # no entries spent past that
    x = np.array([[lo - 5, hi + 5, *np.linspace(lo, hi, 14)]], np.float32)
    out, _, _ = run(q, x)
    out_t = node.outputs[0].dtype
    assert out[0, 0] == fq(out_t, table.values[0])[0] and out[0, 1] == fq(out_t, table.values[-1])[0]
    want = next(iter(accelgen.run(g, {"x": x}).values()))
    assert np.max(np.abs(out[0, 2:] - want[0, 2:])) < 2 ** -table.frac_bits  # slope <= 1, half a step + lsb


def test_leaky_relu_hard_sigmoid_hard_swish_and_clip_are_exact_products():
    calib = rng.uniform(-4, 4, (64, 32)).astype(np.float32)
    x = rng.uniform(-4, 4, (1, 32)).astype(np.float32)
    _, q, node = quantize_single(LeakyRelu(alpha=0.1), calib)
    out, seen, _ = run(q, x)
    alpha = node.op.param("slope").constant
    xs = seen["x"]
    np.testing.assert_array_equal(out, fq(node.outputs[0].dtype, np.where(xs >= 0, xs, xs * alpha.value))[0])
    _, q, node = quantize_single(HardSigmoid(), calib)
    out, seen, _ = run(q, x)
    a, b = node.op.param("slope").constant.value, node.op.param("offset").value
    np.testing.assert_array_equal(out, fq(node.outputs[0].dtype, np.clip(seen["x"] * a + b, 0, 1))[0])
    _, q, node = quantize_single(HardSwish(), calib)
    out, seen, _ = run(q, x)
    gate = fq(node.op.param("gate"), np.clip(seen["x"] * node.op.param("sixth").constant.value + 0.5, 0, 1))[0]
    np.testing.assert_array_equal(out, fq(node.outputs[0].dtype, seen["x"] * gate)[0])
    _, q, node = quantize_single(Clip(min=-1.0, max=2.5), calib)
    out, seen, _ = run(q, x)
    np.testing.assert_array_equal(out, fq(node.outputs[0].dtype, np.clip(seen["x"], -1, 2.5))[0])


# -- pooling, means, division, exp, cast ---------------------------------------------------------------------------
def test_reduce_mean_and_global_average_pool_are_exact_sums_times_a_reciprocal():
    calib = rng.normal(0, 1, (16, 3, 5, 6)).astype(np.float32)
    x = rng.normal(0, 1, (1, 3, 5, 6)).astype(np.float32)
    for op, n in [(ReduceMean(axes=(2, 3), keepdims=1), 30), (GlobalAveragePool(), 30), (ReduceMean(axes=(1,)), 3)]:
        _, q, node = quantize_single(op, calib)
        c = node.op.param("mean").constant
        assert c.value == fq(c.type, 1 / n)[0] and c.type.width <= 18
        out, seen, _ = run(q, x)
        axes = (2, 3) if n == 30 else (1,)
        np.testing.assert_array_equal(out, fq(node.outputs[0].dtype, seen["x"].sum(axis=axes, keepdims=True)
                                              * c.value)[0].reshape(out.shape))


def test_average_pool_border_windows_use_their_own_count():
    op = AveragePool(kernel_shape=(3, 3), pads=(1, 1, 1, 1), strides=(1, 1))
    calib = rng.normal(0, 1, (16, 2, 4, 4)).astype(np.float32)
    g, q, node = quantize_single(op, calib)
    c = node.op.param("mean").constant.array
    assert c.shape == (4, 4)
    np.testing.assert_array_equal(c[[0, 0, 1], [0, 1, 1]], fq(node.op.param("mean").constant.type,
                                                               [1 / 4, 1 / 6, 1 / 9])[0])
    x = rng.normal(0, 1, (1, 2, 4, 4)).astype(np.float32)
    out, seen, _ = run(q, x)
    padded = np.pad(seen["x"], ((0, 0), (0, 0), (1, 1), (1, 1)))
    sums = sum(padded[:, :, i:i + 4, j:j + 4] for i in range(3) for j in range(3))
    np.testing.assert_array_equal(out, fq(node.outputs[0].dtype, sums * c)[0])
    assert np.max(np.abs(out - next(iter(accelgen.run(g, {"x": x}).values())))) < 1e-3


def test_division_by_a_constant_is_a_product_and_by_a_tensor_uses_the_reciprocal_table():
    calib = rng.normal(0, 1, (64, 8)).astype(np.float32)
    x = rng.normal(0, 1, (1, 8)).astype(np.float32)
    _, q, node = quantize_single(Div(), calib, (np.full(8, 3.0),))
    r = node.op.param("reciprocal")
    out, seen, _ = run(q, x)
    np.testing.assert_array_equal(out, fq(node.outputs[0].dtype, seen["x"] * r.constant.array)[0])
    assert abs(r.constant.array[0] - 1 / 3) < 2.0 ** -19
    with pytest.raises(QuantizationError, match="zeros"):
        quantize_single(Div(), calib, (np.array([1.0, 0.0] * 4),))
    g = Graph("div")  # a / x with x a tensor: 1/0 saturates and is counted
    xv = g.add_input("x", TensorType((1, 8), F32))
    g.outputs = [g.add_node(Div(), [g.add_constant("a", np.full((1, 8), 2.0, np.float32)), xv]).outputs[0]]
    q = accelgen.quantize(g, {"x": rng.uniform(0.5, 4, (64, 8)).astype(np.float32)})
    z = np.array([[0.0, 0.5, 1, 2, 3, 4, 1.5, 0.75]], np.float32)
    out, seen, stats = run(q, z)
    out_t = q.outputs[0].dtype
    assert out[0, 0] == out_t.max and stats[q.outputs[0].name].overflows >= 1
    table = q.nodes[0].op.param("reciprocal_table")
    np.testing.assert_array_equal(out[0, 1:], fq(out_t, 2.0 * np.copysign(table.evaluate(np.abs(seen["x"][0, 1:])),
                                                                      seen["x"][0, 1:]))[0])


@pytest.mark.parametrize("op, lo, hi, f", [(Exp(), -6, 2, np.exp), (Sqrt(), 0.01, 50, np.sqrt),
                                           (Reciprocal(), 0.1, 8, np.reciprocal)])
def test_exp_sqrt_and_reciprocal_are_accurate_over_the_range(op, lo, hi, f):
    calib = rng.uniform(lo, hi, (128, 16)).astype(np.float32)
    _, q, _ = quantize_single(op, calib)
    x = rng.uniform(lo, hi, (1, 16)).astype(np.float32)
    out, seen, _ = run(q, x)
    want = f(seen["x"])
    assert np.max(np.abs(out - want) / np.maximum(np.abs(want), 1)) < 2e-3


def test_exp_saturation_is_counted():
    _, q, node = quantize_single(Exp(), rng.uniform(-2, 1, (64, 4)).astype(np.float32))
    out, _, stats = run(q, np.array([[0.0, 5.0, 10.0, -1.0]], np.float32))
    assert out[0, 2] == node.outputs[0].dtype.max and stats[node.outputs[0].name].overflows >= 2


def test_cast_of_an_integer_mask_is_exact():
    from accelgen.ir.types import I64

    g = Graph("cast")
    x = g.add_input("x", TensorType((1, 6), I64))
    g.outputs = [g.add_node(Cast(to=1), [x]).outputs[0]]
    q = accelgen.quantize(g, {"x": np.array([[0, 1, 1, 0, 1, 1]] * 4, np.int64)})
    out = accelgen.run(q, {"x": np.array([[1, 0, 1, 1, 0, 0]], np.int64)})[g.outputs[0].name]
    np.testing.assert_array_equal(out, [[1, 0, 1, 1, 0, 0]])
    assert isinstance(q.outputs[0].dtype, FixedType)


def test_standalone_batch_norm_is_a_folded_multiply_add():
    from accelgen.ir.ops.normalization import BatchNormalization

    c = 3
    params = [rng.uniform(0.5, 2, c), rng.normal(0, 1, c), rng.normal(0, 1, c), rng.uniform(0.1, 3, c)]
    calib = rng.normal(0, 2, (32, c, 4, 4)).astype(np.float32)
    g, q, node = quantize_single(BatchNormalization(), calib, params)
    a, b = node.op.param("multiplier"), node.op.param("offset")
    assert a.dims == (c, 1, 1) and a.type.width == 16
    x = rng.normal(0, 2, (1, c, 4, 4)).astype(np.float32)
    out, seen, _ = run(q, x)
    np.testing.assert_array_equal(out, fq(node.outputs[0].dtype, seen["x"] * a.array + b.array)[0])
    assert np.max(np.abs(out - next(iter(accelgen.run(g, {"x": x}).values())))) < 4e-3


def test_params_never_shadow_the_op_attributes():
    """A node's printed attributes are the op's and the precision params together: the names must not clash."""
    ops = [(LayerNormalization(axis=-1), (np.ones(8), np.zeros(8))), (Softmax(axis=-1), ()),
           (LeakyRelu(alpha=0.2), ()), (HardSigmoid(), ()), (HardSwish(), ()), (Gelu(), ()), (Sigmoid(), ()),
           (Div(), (np.full(8, 2.0),)), (Exp(), ()), (ReduceMean(axes=(1,)), ())]
    for op, constants in ops:
        _, _, node = quantize_single(op, rng.normal(0, 1, (16, 4, 8)).astype(np.float32), constants)
        assert not {k for k, _ in node.op.params} & set(op.attrs()), op


def test_internal_saturation_is_counted_by_name():
    """Roundings inside an op report their overflows as "node/name" (fixed_math.fixed_round -> note_overflow)."""
    q = accelgen.quantize(_bert(), _bert_inputs(16, 1))
    feeds = {k: v[:1] for k, v in _bert_inputs(2, 2).items()}
    feeds["hidden_states"] = feeds["hidden_states"] * 6  # far past the calibrated projections
    stats = {}
    accelgen.run(q, feeds, stats=stats)
    mha = next(n for n in q.nodes if n.op_type == "MultiHeadAttention")
    assert stats[f"{mha.name}/q"].overflows > 0
