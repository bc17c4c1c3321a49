"""fuse-layernorm and fuse-gelu: the decomposed forms exporters emit become LayerNormalization and Gelu; outputs
agree before and after (rtol 1e-5) on random shapes and arrangements; near-misses are left alone with a reason; and
the real legacy-exporter and BERT-style models lose their decompositions."""

import math
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accelgen
from accelgen.passes.base import random_inputs
from tests.onnxmodels import const, text_model
from tests.ortcheck import run_ort
from tests.passes.passcheck import census, cleanup, fuse, rand, reasons

ROOT = Path(__file__).resolve().parents[2]
PROPERTY = settings(max_examples=30, deadline=None)
SQRT2 = math.sqrt(2)


def shape_text(shape):
    return ",".join(map(str, shape))


# -- LayerNormalization --------------------------------------------------------------------------------------------
def layernorm_text(axes="[-1]", square="pow", divide="div", scale=True, bias=True, eps_first=False,
                   var_axes=None, mean_of="x", exponent="two"):
    """The decomposition PyTorch's exporter (and onnx's LayerNormalization function body) produces."""
    lines = [f"m = ReduceMean<axes={axes}>({mean_of})", "d = Sub(x, m)",
             f"sq = Pow(d, {exponent})" if square == "pow" else "sq = Mul(d, d)",
             f"v = ReduceMean<axes={var_axes or axes}>(sq)", "ve = Add(eps, v)" if eps_first else "ve = Add(v, eps)",
             "s = Sqrt(ve)"]
    lines += {"div": ["n = Div(d, s)"], "recip": ["r = Reciprocal(s)", "n = Mul(d, r)"],
              "recip_left": ["r = Reciprocal(s)", "n = Mul(r, d)"]}[divide]
    last = "n"
    if scale:
        lines.append("ns = Mul(g, n)")
        last = "ns"
    lines.append(f"y = Add({last}, b)" if bias else f"y = Identity({last})")
    return "\n".join(lines)


def ln_inits(norm_shape, g_shape=None, eps=1e-5, seed=0):
    return [const("g", rand(*(g_shape or norm_shape), seed=seed, low=0.5, high=1.5)),
            const("b", rand(*norm_shape, seed=seed + 1)), const("eps", np.float32(eps)), const("two", np.float32(2)),
            const("three", np.float32(3))]


def ln_model(x_shape, norm_rank=1, **kw):
    norm = x_shape[len(x_shape) - norm_rank:]
    axes = "[" + ",".join(str(-i) for i in range(norm_rank, 0, -1)) + "]"
    return text_model(f"(float[{shape_text(x_shape)}] x) => (float[{shape_text(x_shape)}] y)", ln_inits(norm),
                      layernorm_text(axes=axes, **kw))


@pytest.mark.parametrize("square", ["pow", "mul"])
@pytest.mark.parametrize("divide", ["div", "recip", "recip_left"])
def test_decomposed_layernorm_becomes_one_op(square, divide):
    result = fuse(ln_model((2, 5, 8), square=square, divide=divide), ["fuse-layernorm"])
    assert result.fired == {"layernorm": 1, "layernorm_scale": 1, "layernorm_bias": 1}
    assert census(result.graph) == {"LayerNormalization": 1}
    ln = result.graph.nodes[0]
    assert ln.op.axis == 2 and ln.op.epsilon == pytest.approx(1e-5) and len(ln.inputs) == 3


@PROPERTY
@given(x_shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), norm_rank=st.integers(1, 3),
       square=st.sampled_from(["pow", "mul"]), divide=st.sampled_from(["div", "recip", "recip_left"]),
       scale=st.booleans(), bias=st.booleans(), eps_first=st.booleans(),
       eps=st.sampled_from([1e-12, 1e-5, 1e-3]), seed=st.integers(0, 1000))
def test_layernorm_fusion_on_random_shapes(x_shape, norm_rank, square, divide, scale, bias, eps_first, eps, seed):
    x_shape = tuple(x_shape)
    norm_rank = min(norm_rank, len(x_shape))
    norm = x_shape[len(x_shape) - norm_rank:]
    axes = "[" + ",".join(str(-i) for i in range(norm_rank, 0, -1)) + "]"
    g = text_model(f"(float[{shape_text(x_shape)}] x) => (float[{shape_text(x_shape)}] y)",
                   ln_inits(norm, eps=eps, seed=seed),
                   layernorm_text(axes, square, divide, scale, bias, eps_first))
    result = fuse(g, ["fuse-layernorm"])
    want = {"layernorm": 1} | ({"layernorm_scale": 1} if scale else {}) | ({"layernorm_bias": 1} if bias else {})
    assert result.fired == want
    assert Counter(n.op_type for n in result.graph.nodes)["LayerNormalization"] == 1
    assert "ReduceMean" not in census(result.graph)


def test_opset18_layernorm_with_axes_inputs():
    g = text_model("(float[2,5,8] x) => (float[2,5,8] y)", ln_inits((8,)) + [const("ax", np.array([-1]), "int64")],
                   layernorm_text().replace("<axes=[-1]>(x)", "(x, ax)").replace("<axes=[-1]>(sq)", "(sq, ax)"),
                   opset=18)
    result = fuse(g, ["fuse-layernorm"])
    assert result.fired == {"layernorm": 1, "layernorm_scale": 1, "layernorm_bias": 1}


def tf_layernorm_text(gamma=True, beta=True):
    """TensorFlow's batch_normalization arithmetic, as Keras' LayerNormalization exports through tf2onnx."""
    k = "k" if gamma else "r"
    lines = ["m = ReduceMean<axes=[-1]>(x)", "d = Sub(x, m)", "sq = Mul(d, d)", "v = ReduceMean<axes=[-1]>(sq)",
             "ve = Add(v, eps)", "s = Sqrt(ve)", "r = Reciprocal(s)"] + (["k = Mul(r, g)"] if gamma else [])
    lines += [f"xk = Mul(x, {k})", f"mk = Mul({k}, m)"]
    lines += ["sb = Sub(b, mk)", "y = Add(sb, xk)"] if beta else ["y = Sub(xk, mk)"]
    return "\n".join(lines)


@pytest.mark.parametrize("gamma, beta", [(True, True), (True, False), (False, True), (False, False)])
def test_tensorflow_form_becomes_layernorm(gamma, beta):
    g = text_model("(float[2,5,8] x) => (float[2,5,8] y)", ln_inits((8,)), tf_layernorm_text(gamma, beta))
    result = fuse(g, ["fuse-layernorm"])
    assert result.fired == {"layernorm_tf": 1} and census(result.graph) == {"LayerNormalization": 1}
    ln = result.graph.nodes[0]
    assert len(ln.inputs) == (3 if beta else 2)
    assert (ln.inputs[1].data == 1).all() != gamma


def test_tensorflow_form_with_per_token_gamma_is_refused():
    inits = ln_inits((8,), g_shape=(5, 1))
    g = text_model("(float[2,5,8] x) => (float[2,5,8] y)", inits, tf_layernorm_text())
    result = fuse(g, ["fuse-layernorm"])
    assert result.fired == {} and "gamma: constant of shape (5, 1) varies over axes" in reasons(result)


def test_instancenorm_with_unit_affine_is_a_layernorm():
    # tf2onnx rewrites a rank-3 layer norm into InstanceNormalization(x, 1, 0) * gamma + beta.
    g = text_model("(float[2,5,8] x) => (float[2,5,8] y)",
                   [const("one", np.ones(5, np.float32)), const("zero", np.zeros(5, np.float32)),
               const("g", rand(8, seed=1)), const("b", rand(8, seed=2))],
                   "n = InstanceNormalization<epsilon=0.001>(x, one, zero)\n ns = Mul(n, g)\n y = Add(ns, b)")
    result = fuse(g, ["fuse-layernorm"])
    assert result.fired == {"layernorm_from_instancenorm": 1, "layernorm_scale": 1, "layernorm_bias": 1}
    assert census(result.graph) == {"LayerNormalization": 1} and result.graph.nodes[0].op.axis == 2


def test_instancenorm_with_real_parameters_stays():
    g = text_model("(float[2,5,8] x) => (float[2,5,8] y)", [const("s", rand(5)), const("z", np.zeros(5, np.float32))],
                   "y = InstanceNormalization(x, s, z)")
    result = fuse(g, ["fuse-layernorm"])
    assert result.fired == {} and not result.refusals


@pytest.mark.parametrize("kw, reason", [
    ({"axes": "[1]"}, "normalizes trailing axes"),
    ({"axes": "[-1]", "var_axes": "[-2,-1]"}, "the mean reduces axes (2,) but the variance axes (1, 2)"),
    ({"mean_of": "x2"}, "the mean subtracted is of 'x2'"),
    ({"exponent": "three"}, "the Pow exponent is 3, not 2"),
])
def test_layernorm_near_misses(kw, reason):
    g = text_model("(float[2,5,8] x, float[2,5,8] x2) => (float[2,5,8] y)", ln_inits((8,)), layernorm_text(**kw))
    result = fuse(g, ["fuse-layernorm"])
    assert "layernorm" not in result.fired and "LayerNormalization" not in census(result.graph)
    assert reason in reasons(result)


def test_layernorm_with_a_vector_epsilon_is_left_alone():
    inits = ln_inits((8,))
    inits[2] = const("eps", np.full(8, 1e-5, np.float32))
    g = text_model("(float[2,5,8] x) => (float[2,5,8] y)", inits, layernorm_text())
    result = fuse(g, ["fuse-layernorm"])
    assert result.fired == {} and "epsilon is not a scalar constant (shape (8,))" in reasons(result)


def test_layernorm_whose_centred_value_escapes_is_left_alone():
    g = text_model("(float[2,5,8] x) => (float[2,5,8] y, float[2,5,8] d)", ln_inits((8,)), layernorm_text())
    result = fuse(g, ["fuse-layernorm"])
    assert result.fired == {} and "'d' is also used outside the pattern" in reasons(result)


def test_rms_norm_is_not_a_layernorm():
    g = text_model("(float[2,8] x) => (float[2,8] y)", [const("eps", np.float32(1e-6)), const("two", np.float32(2))],
                   "sq = Pow(x, two)\n v = ReduceMean<axes=[-1]>(sq)\n ve = Add(v, eps)\n s = Sqrt(ve)\n y = Div(x, s)")
    result = fuse(g, ["fuse-layernorm"])
    assert result.fired == {} and "RMS" in reasons(result)


def test_scale_varying_over_batch_axes_is_not_folded():
    g = text_model("(float[2,5,8] x) => (float[2,5,8] y)", ln_inits((8,), g_shape=(5, 1)),
                   layernorm_text(bias=False))
    result = fuse(g, ["fuse-layernorm"])
    assert result.fired == {"layernorm": 1}
    assert census(result.graph) == {"LayerNormalization": 1, "Mul": 1, "Identity": 1}
    assert "varies over axes that are not normalized" in reasons(result)


def test_half_precision_layernorm_is_refused():
    g = text_model("(float16[2,8] x) => (float16[2,8] y)",
                   [const("eps", np.float16(1e-3), "float16"), const("two", np.float16(2), "float16")],
                   "m = ReduceMean<axes=[-1]>(x)\n d = Sub(x, m)\n sq = Pow(d, two)\n v = ReduceMean<axes=[-1]>(sq)\n"
                   "ve = Add(v, eps)\n s = Sqrt(ve)\n y = Div(d, s)")
    result = fuse(g, ["fuse-layernorm"])
    assert result.fired == {} and "f16 is not fused" in reasons(result)


# -- Gelu ----------------------------------------------------------------------------------------------------------
GELU_INITS = [const("sqrt2", np.float32(SQRT2)), const("isqrt2", np.float32(1 / SQRT2)),
              const("one", np.float32(1)), const("half", np.float32(0.5)), const("two", np.float32(2)),
              const("three", np.float32(3)), const("c3", np.float32(0.044715)),
              const("k", np.float32(math.sqrt(2 / math.pi))), const("kc3", np.float32(math.sqrt(2 / math.pi) * 0.044715))]

ERF_FORMS = {
    "torch": "h = Div(x, sqrt2)\n e = Erf(h)\n a = Add(e, one)\n p = Mul(x, a)\n y = Mul(p, half)",
    "half_x_first": "h = Mul(x, isqrt2)\n e = Erf(h)\n a = Add(one, e)\n hx = Mul(half, x)\n y = Mul(hx, a)",
    "x_half": "h = Mul(isqrt2, x)\n e = Erf(h)\n a = Add(e, one)\n hx = Mul(x, half)\n y = Mul(hx, a)",
    "div_two": "h = Div(x, sqrt2)\n e = Erf(h)\n a = Add(e, one)\n p = Mul(a, x)\n y = Div(p, two)",
    "nested": "h = Div(x, sqrt2)\n e = Erf(h)\n a = Add(e, one)\n ah = Mul(a, half)\n y = Mul(x, ah)",
}
TANH_FORMS = {
    "pow": "p3 = Pow(x, three)\n c = Mul(c3, p3)\n s = Add(x, c)\n t = Mul(k, s)\n th = Tanh(t)\n"
           "a = Add(one, th)\n hx = Mul(half, x)\n y = Mul(hx, a)",
    "cube": "x2 = Mul(x, x)\n p3 = Mul(x2, x)\n c = Mul(p3, c3)\n s = Add(c, x)\n t = Mul(s, k)\n th = Tanh(t)\n"
            "a = Add(th, one)\n p = Mul(x, a)\n y = Mul(p, half)",
    "fast": "x2 = Mul(x, x)\n q = Mul(c3, x2)\n r = Add(one, q)\n t1 = Mul(x, k)\n t = Mul(t1, r)\n th = Tanh(t)\n"
            "a = Add(th, one)\n p = Mul(x, a)\n y = Mul(p, half)",
    "expanded": "p3 = Pow(x, three)\n c = Mul(kc3, p3)\n l = Mul(k, x)\n t = Add(l, c)\n th = Tanh(t)\n"
                "a = Add(one, th)\n p = Mul(a, x)\n y = Mul(half, p)",
}


def gelu_model(body, shape=(2, 3, 8), inits=GELU_INITS, extra_out=""):
    return text_model(f"(float[{shape_text(shape)}] x) => (float[{shape_text(shape)}] y{extra_out})", inits, body)


@pytest.mark.parametrize("form", sorted(ERF_FORMS))
def test_erf_gelu_forms(form):
    result = fuse(gelu_model(ERF_FORMS[form]), ["fuse-gelu"])
    assert result.fired == {"gelu_erf": 1} and census(result.graph) == {"Gelu": 1}
    assert result.graph.nodes[0].op.approximate == "none"


@pytest.mark.parametrize("form", sorted(TANH_FORMS))
def test_tanh_gelu_forms(form):
    result = fuse(gelu_model(TANH_FORMS[form]), ["fuse-gelu"])
    assert result.fired == {"gelu_tanh": 1} and census(result.graph) == {"Gelu": 1}
    assert result.graph.nodes[0].op.approximate == "tanh"


@st.composite
def erf_gelu_bodies(draw):
    """0.5 * x * (1 + erf(x / sqrt 2)) with every binary op's operands in a random order and a random grouping."""
    def pair(a, b):
        return (a, b) if draw(st.booleans()) else (b, a)

    arg = "h = Div(x, sqrt2)" if draw(st.booleans()) else "h = Mul({}, {})".format(*pair("x", "isqrt2"))
    lines = [arg, "e = Erf(h)", "a = Add({}, {})".format(*pair("e", "one"))]
    grouping = draw(st.sampled_from(["(xa)h", "(xh)a", "x(ah)", "(xa)/2"]))
    if grouping == "(xa)h":
        lines += ["p = Mul({}, {})".format(*pair("x", "a")), "y = Mul({}, {})".format(*pair("p", "half"))]
    elif grouping == "(xh)a":
        lines += ["p = Mul({}, {})".format(*pair("x", "half")), "y = Mul({}, {})".format(*pair("p", "a"))]
    elif grouping == "x(ah)":
        lines += ["p = Mul({}, {})".format(*pair("a", "half")), "y = Mul({}, {})".format(*pair("x", "p"))]
    else:
        lines += ["p = Mul({}, {})".format(*pair("x", "a")), "y = Div(p, two)"]
    return "\n".join(lines)


@PROPERTY
@given(body=erf_gelu_bodies(), shape=st.lists(st.integers(1, 5), min_size=1, max_size=3))
def test_erf_gelu_in_any_arrangement(body, shape):
    result = fuse(gelu_model(body, tuple(shape)), ["fuse-gelu"])
    assert result.fired == {"gelu_erf": 1} and census(result.graph) == {"Gelu": 1}


@pytest.mark.parametrize("replace, reason", [
    (("isqrt2", "c075"), "the erf argument is x * 0.75, not x / sqrt(2)"),
    (("sqrt2", "c141"), "the erf argument is x * 0.7092198"),
    (("one", "two"), "the constant added to erf is 2, not 1"),
    (("half", "quarter"), "the outer factor is 0.25, not 0.5"),
])
def test_erf_gelu_with_a_wrong_constant_is_left_alone(replace, reason):
    inits = GELU_INITS + [const("c075", np.float32(0.75)), const("c141", np.float32(1.41)),
                          const("quarter", np.float32(0.25))]
    body = ERF_FORMS["half_x_first"] if replace[0] == "isqrt2" else ERF_FORMS["torch"]
    body = body.replace(replace[0] + ")", replace[1] + ")").replace("(" + replace[0] + ",", "(" + replace[1] + ",")
    body = body.replace(", " + replace[0] + ")", ", " + replace[1] + ")")
    result = fuse(gelu_model(body, inits=inits), ["fuse-gelu"])
    assert result.fired == {} and "Gelu" not in census(result.graph)
    assert reason in reasons(result)


@pytest.mark.parametrize("swap, reason", [
    (("c3", "c05"), "the cubic coefficient is 0.050000001, not 0.044715"),
    (("k", "c08"), "the tanh argument scales x by 0.80000001"),
])
def test_tanh_gelu_with_a_wrong_constant_is_left_alone(swap, reason):
    inits = GELU_INITS + [const("c05", np.float32(0.05)), const("c08", np.float32(0.8))]
    body = TANH_FORMS["pow"].replace(f"({swap[0]},", f"({swap[1]},")
    result = fuse(gelu_model(body, inits=inits), ["fuse-gelu"])
    assert result.fired == {} and reason in reasons(result)


def test_gelu_whose_constant_raises_the_rank_is_left_alone():
    inits = GELU_INITS + [const("half4", np.full((1, 1, 1, 1), 0.5, np.float32))]
    body = ERF_FORMS["torch"].replace("Mul(p, half)", "Mul(p, half4)")
    g = text_model("(float[2,3,8] x) => (float[1,2,3,8] y)", inits, body)
    result = fuse(g, ["fuse-gelu"])
    assert result.fired == {} and "constants broadcast the result to f32[1,2,3,8]" in reasons(result)


def test_gelu_whose_inner_sum_escapes_is_left_alone():
    result = fuse(gelu_model(ERF_FORMS["torch"], extra_out=", float[2,3,8] a"), ["fuse-gelu"])
    assert result.fired == {} and "'a' is also used outside the pattern" in reasons(result)


def test_gated_gelu_keeps_its_gate():
    body = ERF_FORMS["torch"].replace("y = Mul(p, half)", "gl = Mul(p, half)\n y = Mul(gl, gate)")
    g = text_model("(float[2,8] x, float[2,8] gate) => (float[2,8] y)", GELU_INITS, body)
    result = fuse(g, ["fuse-gelu"])
    assert result.fired == {"gelu_erf": 1} and census(result.graph) == {"Gelu": 1, "Mul": 1}


def test_an_erf_that_is_not_a_gelu_is_ignored():
    g = text_model("(float[2,8] x, float[2,8] z) => (float[2,8] y)", GELU_INITS,
                   "h = Div(z, sqrt2)\n e = Erf(h)\n a = Add(e, one)\n p = Mul(x, a)\n y = Mul(p, half)")
    result = fuse(g, ["fuse-gelu"])
    assert result.fired == {} and not result.refusals


def test_dense_then_gelu_then_dense_activation():
    g = text_model("(float[2,3,8] x) => (float[2,3,4] y)", GELU_INITS + [const("w", rand(8, 4)), const("b", rand(4))],
                   "h0 = MatMul(x, w)\n hb = Add(h0, b)\n"
                   + ERF_FORMS["torch"].replace("x", "hb").replace("y =", "y ="))
    result = fuse(g, ["fuse-gelu", "fuse-dense", "fuse-activation"])
    assert result.fired == {"gelu_erf": 1, "dense_from_matmul": 1, "dense_bias": 1, "dense_activation": 1}
    assert census(result.graph) == {"Dense": 1} and result.graph.nodes[0].op.activation.op_type == "Gelu"


# -- real models ---------------------------------------------------------------------------------------------------
FUSIONS = ["fuse-layernorm", "fuse-gelu", "fuse-dense", "fuse-batchnorm", "fuse-activation"]


def optimize_real(name):
    path = ROOT / "tests/data/models" / name
    g = accelgen.load(str(path))
    result = fuse(g, cleanup() + FUSIONS)
    feeds = random_inputs(g, seed=5)
    theirs = run_ort(onnx.load(str(path)), feeds)
    ours = accelgen.run(result.graph, feeds)
    for out, want in theirs.items():
        np.testing.assert_allclose(ours[out], want, rtol=1e-4, atol=1e-5, err_msg=out)
    return result


def test_legacy_layernorm_model():
    result = optimize_real("legacy_layernorm.onnx")
    assert census(result.graph) == {"Dense": 2, "LayerNormalization": 1, "Gelu": 1}
    assert result.fired["layernorm"] == 1 and result.fired["gelu_erf"] == 1


def test_bert_layer_model():
    result = optimize_real("bert_layer.onnx")
    ops = census(result.graph)
    assert ops["LayerNormalization"] == 2 and ops["Dense"] == 6
    assert not {"ReduceMean", "Pow", "Sqrt", "Erf"} & set(ops)
    gelu_dense = [n for n in result.graph.nodes if n.op_type == "Dense" and n.op.activation is not None]
    assert [n.op.activation.op_type for n in gelu_dense] == ["Gelu"]
    assert all(n.op.epsilon == pytest.approx(1e-12) for n in result.graph.nodes if n.op_type == "LayerNormalization")
