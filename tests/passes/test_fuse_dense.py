"""fuse-dense, fuse-batchnorm and fuse-activation: which rules fire on small ONNX-text models, that the outputs
agree before and after (rtol 1e-5), the folds on random weights and shapes, the near-misses left alone with their
reasons, and the real exported MLPs and CNNs."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accelgen
from accelgen.ir.ops.activations import Clip, LeakyRelu
from accelgen.passes.base import random_inputs
from tests.onnxmodels import const, text_model
from tests.ortcheck import run_ort
from tests.passes.passcheck import census, cleanup, fuse, rand, reasons

ROOT = Path(__file__).resolve().parents[2]
PROPERTY = settings(max_examples=25, deadline=None)


# -- fuse-dense ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x_shape, b_shape", [
    ((16,), (8,)), ((4, 16), (8,)), ((4, 16), (1, 8)), ((2, 5, 16), (8,)), ((2, 5, 16), (1, 1, 8)),
    ((2, 5, 16), ()), ((4, 16), (1,)),
])
@pytest.mark.parametrize("bias_first", [False, True])
def test_matmul_add_becomes_dense(x_shape, b_shape, bias_first):
    out = x_shape[:-1] + (8,)
    add = "Add(b, h)" if bias_first else "Add(h, b)"
    g = text_model(f"(float[{','.join(map(str, x_shape))}] x) => (float[{','.join(map(str, out))}] y)",
                   [const("w", rand(16, 8)), const("b", rand(*b_shape, seed=1))], f"h = MatMul(x, w)\n y = {add}")
    result = fuse(g, ["fuse-dense"])
    assert result.fired == {"dense_from_matmul": 1, "dense_bias": 1}
    assert census(result.graph) == {"Dense": 1}
    dense = result.graph.nodes[0]
    assert dense.inputs[2].shape == (8,) and dense.inputs[1].name == "w"


def test_sub_of_a_constant_becomes_a_negated_bias():
    g = text_model("(float[3,16] x) => (float[3,8] y)", [const("w", rand(16, 8)), const("c", rand(8, seed=1))],
                   "h = MatMul(x, w)\n y = Sub(h, c)")
    result = fuse(g, ["fuse-dense"])
    assert result.fired == {"dense_from_matmul": 1, "dense_bias_sub": 1}
    np.testing.assert_array_equal(result.graph.nodes[0].inputs[2].data, -rand(8, seed=1))


def test_constant_minus_dense_is_not_a_bias():
    g = text_model("(float[3,16] x) => (float[3,8] y)", [const("w", rand(16, 8)), const("c", rand(8, seed=1))],
                   "h = MatMul(x, w)\n y = Sub(c, h)")
    assert census(fuse(g, ["fuse-dense"]).graph) == {"Dense": 1, "Sub": 1}


@PROPERTY
@given(m=st.integers(1, 4), k=st.integers(1, 6), n=st.integers(1, 6), trans_b=st.booleans(),
       alpha=st.sampled_from([1.0, 0.5, -2.0, 0.37]), beta=st.sampled_from([1.0, 0.0, 3.0, -0.25]),
       c_kind=st.sampled_from(["none", "vector", "row", "scalar"]), seed=st.integers(0, 1000))
def test_gemm_folds_alpha_beta_and_transb(m, k, n, trans_b, alpha, beta, c_kind, seed):
    b = rand(n, k, seed=seed) if trans_b else rand(k, n, seed=seed)
    c_shape = {"none": None, "vector": (n,), "row": (1, n), "scalar": ()}[c_kind]
    inits = [const("b", b)] + ([const("c", rand(*c_shape, seed=seed + 1))] if c_shape is not None else [])
    args = "x, b, c" if c_shape is not None else "x, b"
    g = text_model(f"(float[{m},{k}] x) => (float[{m},{n}] y)", inits,
                   f"y = Gemm<alpha={alpha}, beta={beta}, transB={int(trans_b)}>({args})")
    result = fuse(g, ["fuse-dense"])
    assert result.fired == {"dense_from_gemm": 1}
    dense = result.graph.nodes[0]
    assert census(result.graph) == {"Dense": 1} and dense.inputs[1].shape == (k, n)
    assert len(dense.inputs) == (2 if c_shape is None or beta == 0 else 3)


@PROPERTY
@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), k=st.integers(1, 8), n=st.integers(1, 8),
       seed=st.integers(0, 1000))
def test_matmul_add_folds_for_random_token_shapes(batch, k, n, seed):
    x_shape = (*batch, k)
    g = text_model(f"(float[{','.join(map(str, x_shape))}] x) => (float[{','.join(map(str, (*batch, n)))}] y)",
                   [const("w", rand(k, n, seed=seed)), const("b", rand(n, seed=seed + 1))],
                   "h = MatMul(x, w)\n y = Add(b, h)")
    assert fuse(g, ["fuse-dense"]).fired == {"dense_from_matmul": 1, "dense_bias": 1}


@pytest.mark.parametrize("b_shape, reason", [
    ((4, 8), "not one value per output feature"),
    ((8, 1), "not one value per output feature"),
    ((4, 1), "not one value per output feature"),
    ((1, 1, 8), "raise the rank"),
])
def test_bias_that_broadcasts_over_other_axes_is_left_alone(b_shape, reason):
    y_shape = np.broadcast_shapes((4, 8), b_shape) if b_shape != (8, 1) else (8, 8)
    x_rows = 8 if b_shape == (8, 1) else 4
    g = text_model(f"(float[{x_rows},16] x) => (float[{','.join(map(str, y_shape))}] y)",
                   [const("w", rand(16, 8)), const("b", rand(*b_shape, seed=1))], "h = MatMul(x, w)\n y = Add(h, b)")
    result = fuse(g, ["fuse-dense"])
    assert result.fired == {"dense_from_matmul": 1}
    assert census(result.graph) == {"Dense": 1, "Add": 1}
    assert reason in reasons(result)


def test_gemm_near_misses_are_refused_with_reasons():
    g = text_model("(float[8,4] x, float[8,6] bdyn) => (float[4,6] y1, float[4,6] y2, float[4,6] y3, float[4,6] y4)",
                   [const("b", rand(8, 6)), const("c", rand(4, 6)), const("col", rand(4, 1))],
                   "xt = Transpose<perm=[1,0]>(x)\n"
                   "y1 = Gemm<transA=1>(x, b)\n"
                   "y2 = Gemm(xt, b, c)\n"
                   "y3 = Gemm(xt, bdyn)\n"  # weight given at run time: not a Dense
                   "y4 = Gemm(xt, b, col)")
    result = fuse(g, ["fuse-dense"])
    assert result.fired == {}
    text = reasons(result)
    assert "transA=1" in text and "C: constant of shape (4, 6)" in text and "C: constant of shape (4, 1)" in text
    assert "weight B is not a constant" in text


def test_shared_weight_makes_two_denses_sharing_it():
    g = text_model("(float[2,16] x1, float[3,16] x2) => (float[2,8] y1, float[3,8] y2)",
                   [const("w", rand(16, 8)), const("b", rand(8, seed=1))],
                   "h1 = MatMul(x1, w)\n y1 = Add(h1, b)\n h2 = MatMul(x2, w)\n y2 = Add(h2, b)")
    result = fuse(g, ["fuse-dense"])
    assert result.fired == {"dense_from_matmul": 2, "dense_bias": 2}
    d1, d2 = result.graph.nodes
    assert d1.inputs[1] is d2.inputs[1]


def test_matmul_output_used_elsewhere_keeps_its_add():
    g = text_model("(float[2,16] x) => (float[2,8] y, float[2,8] z)", [const("w", rand(16, 8)), const("b", rand(8))],
                   "h = MatMul(x, w)\n y = Add(h, b)\n z = Relu(h)")
    result = fuse(g, ["fuse-dense"])
    assert result.fired == {"dense_from_matmul": 1}
    assert census(result.graph) == {"Dense": 1, "Add": 1, "Relu": 1}


def test_matmul_without_a_2d_constant_weight_is_not_dense():
    g = text_model("(float[2,3,4] x, float[4,5] wdyn) => (float[2,3,5] y, float[2,3,5] z)",
                   [const("w3", rand(2, 4, 5))], "y = MatMul(x, wdyn)\n z = MatMul(x, w3)")
    result = fuse(g, ["fuse-dense"])
    assert result.fired == {} and census(result.graph) == {"MatMul": 2}
    assert "Dense takes a 2-D weight" in reasons(result)


def test_half_precision_matmul_add_is_bit_exact_but_gemm_with_c_is_refused():
    w, b = const("w", rand(16, 8), "float16"), const("b", rand(8), "float16")
    g = text_model("(float16[4,16] x) => (float16[4,8] y, float16[4,8] z)", [w, b],
                   "h = MatMul(x, w)\n y = Add(h, b)\n z = Gemm(x, w, b)")
    feeds = random_inputs(g)
    result = fuse(g, ["fuse-dense"], feeds)
    assert result.fired == {"dense_from_matmul": 1, "dense_bias": 1}
    assert "float16" in reasons(result) or "f16" in reasons(result)
    np.testing.assert_array_equal(accelgen.run(result.graph, feeds)["y"], accelgen.run(g, feeds)["y"])


# -- fuse-batchnorm ------------------------------------------------------------------------------------------------
def bn_params(c, seed):
    rng = np.random.default_rng(seed)
    scale, bias, mean = (rng.uniform(-1.5, 1.5, c).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.1, 2.0, c).astype(np.float32)
    return [const("s", scale), const("bb", bias), const("mu", mean), const("var", var)]


@PROPERTY
@given(groups=st.integers(1, 3), cin_per=st.integers(1, 3), cout_per=st.integers(1, 3), kernel=st.integers(1, 3),
       bias=st.booleans(), eps=st.sampled_from([1e-5, 1e-3, 0.1]), seed=st.integers(0, 1000))
def test_conv_batchnorm_folds_into_the_conv(groups, cin_per, cout_per, kernel, bias, eps, seed):
    cin, cout = groups * cin_per, groups * cout_per
    size = 5 - kernel + 1
    inits = [const("w", rand(cout, cin_per, kernel, kernel, seed=seed))] + bn_params(cout, seed)
    if bias:
        inits.append(const("cb", rand(cout, seed=seed + 7)))
    g = text_model(f"(float[1,{cin},5,5] x) => (float[1,{cout},{size},{size}] y)", inits,
                   f"h = Conv<group={groups}>(x, w{', cb' if bias else ''})\n"
                   f"y = BatchNormalization<epsilon={eps}>(h, s, bb, mu, var)")
    result = fuse(g, ["fuse-batchnorm"])
    assert result.fired == {"conv_batchnorm": 1} and census(result.graph) == {"Conv": 1}
    assert result.graph.nodes[0].op.group == groups


@PROPERTY
@given(m=st.integers(1, 4), k=st.integers(1, 6), n=st.integers(1, 6), layer=st.sampled_from(["matmul", "gemm",
       "dense"]), seed=st.integers(0, 1000))
def test_batchnorm_after_a_dense_layer_folds_into_its_weights(m, k, n, layer, seed):
    inits = [const("w", rand(k, n, seed=seed)), const("c", rand(n, seed=seed + 1))] + bn_params(n, seed)
    first = {"matmul": "h = MatMul(x, w)", "gemm": "h = Gemm(x, w, c)",
             "dense": "h0 = MatMul(x, w)\n h = Add(h0, c)"}[layer]
    g = text_model(f"(float[{m},{k}] x) => (float[{m},{n}] y)", inits,
                   f"{first}\n y = BatchNormalization(h, s, bb, mu, var)")
    passes = ["fuse-dense", "fuse-batchnorm"] if layer == "dense" else ["fuse-batchnorm"]
    result = fuse(g, passes)
    assert result.fired["dense_batchnorm"] == 1 and census(result.graph) == {"Dense": 1}


def test_batchnorm_over_tokens_is_not_a_feature_fold():
    # On [B, T, N] BatchNormalization's channel axis 1 is T: per token, not per output feature.
    g = text_model("(float[2,5,16] x) => (float[2,5,8] y)", [const("w", rand(16, 8))] + bn_params(5, 0),
                   "h = MatMul(x, w)\n y = BatchNormalization(h, s, bb, mu, var)")
    result = fuse(g, ["fuse-dense", "fuse-batchnorm"])
    assert census(result.graph) == {"Dense": 1, "BatchNormalization": 1}
    assert "output has rank 3" in reasons(result)


def test_batchnorm_after_an_activation_is_not_folded():
    g = text_model("(float[4,16] x) => (float[4,8] y)", [const("w", rand(16, 8))] + bn_params(8, 0),
                   "h = MatMul(x, w)\n r = Relu(h)\n y = BatchNormalization(r, s, bb, mu, var)")
    result = fuse(g, ["fuse-dense", "fuse-activation", "fuse-batchnorm"])
    assert census(result.graph) == {"Dense": 1, "BatchNormalization": 1}


def test_batchnorm_on_a_shared_conv_output_is_left_alone():
    g = text_model("(float[1,2,4,4] x) => (float[1,3,4,4] y, float[1,3,4,4] z)",
                   [const("w", rand(3, 2, 1, 1))] + bn_params(3, 0),
                   "h = Conv(x, w)\n y = BatchNormalization(h, s, bb, mu, var)\n z = Relu(h)")
    result = fuse(g, ["fuse-batchnorm"])
    assert result.fired == {} and census(result.graph) == {"Conv": 1, "BatchNormalization": 1, "Relu": 1}


def test_decomposed_batchnorm_after_a_dense_folds():
    # Brevitas' last TFC layer: MatMul, then Sub(mean), Div(sqrt(var + eps)), Mul(gamma), Add(beta).
    n = 6
    inits = [const("w", rand(10, n)), const("mu", rand(n, seed=1)), const("sd", rand(n, seed=2, low=0.5, high=2)),
             const("g", rand(n, seed=3)), const("be", rand(1, seed=4))]
    g = text_model(f"(float[1,10] x) => (float[1,{n}] y)", inits,
                   "h = MatMul(x, w)\n a = Sub(h, mu)\n b = Div(a, sd)\n c = Mul(g, b)\n y = Add(c, be)")
    result = fuse(g, ["fuse-dense", "fuse-batchnorm"])
    assert census(result.graph) == {"Dense": 1}
    assert result.fired == {"dense_from_matmul": 1, "dense_bias_sub": 1, "dense_scale": 2, "dense_shift": 1}


def test_affine_fold_refuses_zero_divisors_and_token_outputs():
    g = text_model("(float[2,10] x, float[2,3,10] t) => (float[2,4] y, float[2,3,4] z)",
                   [const("w", rand(10, 4)), const("d", np.array([1, 0, 2, 3], np.float32)), const("s", rand(4))],
                   "h = MatMul(x, w)\n y = Div(h, d)\n ht = MatMul(t, w)\n z = Mul(ht, s)")
    result = fuse(g, ["fuse-dense", "fuse-batchnorm"])
    assert census(result.graph) == {"Dense": 2, "Div": 1, "Mul": 1}
    assert "zeros" in reasons(result) and "rank 3" in reasons(result)


# -- fuse-activation -----------------------------------------------------------------------------------------------
ACTIVATIONS = [
    ("Relu", "r = Relu(h)", 17), ("LeakyRelu", "r = LeakyRelu<alpha=0.3>(h)", 17), ("Sigmoid", "r = Sigmoid(h)", 17),
    ("Tanh", "r = Tanh(h)", 17), ("HardSigmoid", "r = HardSigmoid(h)", 17), ("HardSwish", "r = HardSwish(h)", 17),
    ("Elu", "r = Elu(h)", 17), ("Selu", "r = Selu(h)", 17), ("Softplus", "r = Softplus(h)", 17),
    ("Clip", "r = Clip(h, lo, hi)", 17), ("Gelu", "r = Gelu(h)", 20), ("Gelu", 'r = Gelu<approximate="tanh">(h)', 20),
]


@pytest.mark.parametrize("name, line, opset", ACTIVATIONS)
def test_dense_absorbs_its_activation(name, line, opset):
    g = text_model("(float[3,16] x) => (float[3,8] r)",
                   [const("w", rand(16, 8)), const("b", rand(8)), const("lo", np.float32(-0.2)),
                    const("hi", np.float32(0.3))],
                   f"h0 = MatMul(x, w)\n h = Add(h0, b)\n {line}", opset)
    result = fuse(g, ["fuse-dense", "fuse-activation"])
    assert result.fired["dense_activation"] == 1 and census(result.graph) == {"Dense": 1}
    assert result.graph.nodes[0].op.activation.op_type == name


def test_activation_attributes_are_kept():
    g = text_model("(float[3,16] x) => (float[3,8] y, float[3,8] z)",
                   [const("w", rand(16, 8)), const("lo", np.float32(0)), const("hi", np.float32(6))],
                   "h1 = MatMul(x, w)\n y = LeakyRelu<alpha=0.25>(h1)\n h2 = MatMul(x, w)\n z = Clip(h2, lo, hi)")
    result = fuse(g, ["fuse-dense", "fuse-activation"])
    assert [n.op.activation for n in result.graph.nodes] == [LeakyRelu(alpha=0.25), Clip(min=0.0, max=6.0)]


def test_conv_absorbs_its_activation():
    g = text_model("(float[1,2,5,5] x) => (float[1,3,5,5] y)", [const("w", rand(3, 2, 3, 3)), const("b", rand(3))],
                   "h = Conv<pads=[1,1,1,1]>(x, w, b)\n y = Relu(h)")
    result = fuse(g, ["fuse-activation"])
    assert result.fired == {"conv_activation": 1} and census(result.graph) == {"FusedConv": 1}
    assert result.graph.nodes[0].op.conv.pads == (1, 1, 1, 1)


def test_activation_near_misses():
    # a Dense output also used elsewhere, an activation that is not elementwise, a PRelu with its slope tensor
    g = text_model("(float[3,16] x) => (float[3,8] y, float[3,8] z, float[3,8] s, float[3,8] p)",
                   [const("w", rand(16, 8)), const("slope", rand(8))],
                   "h = MatMul(x, w)\n y = Relu(h)\n z = Neg(h)\n h2 = MatMul(x, w)\n s = Softmax(h2)\n"
                   "h3 = MatMul(x, w)\n p = PRelu(h3, slope)")
    result = fuse(g, ["fuse-dense", "fuse-activation"])
    assert "dense_activation" not in result.fired
    assert census(result.graph) == {"Dense": 3, "Relu": 1, "Neg": 1, "Softmax": 1, "PRelu": 1}


# -- real models ---------------------------------------------------------------------------------------------------
REAL = [
    ("tests/data/models/keras_mlp.onnx", {"Dense": 3, "Softmax": 1}, None),
    ("tests/data/models/keras_cnn.onnx", {"Transpose": 2, "FusedConv": 2, "MaxPool": 2, "Reshape": 1, "Dense": 2},
     None),
    ("tests/data/models/frozen_batch_mlp.onnx", {"Dense": 3}, {"x": (4, 16)}),
    ("examples/jet_mlp/jet_mlp.onnx", {"Dense": 4, "Softmax": 1}, None),
    ("examples/digits_cnn/digits_cnn.onnx", {"FusedConv": 2, "MaxPool": 2, "Flatten": 1, "Dense": 2}, None),
    ("/work/shared/models/TFC_1W1A.onnx", {"Reshape": 1, "Mul": 1, "Sub": 1, "BipolarQuant": 4, "Dense": 4}, None),
    ("/work/shared/models/TFC_1W2A.onnx", {"Reshape": 1, "Mul": 1, "Sub": 1, "Quant": 4, "Dense": 4}, None),
    ("/work/shared/models/unsw_nb15-mlp-w2a2.onnx",
     {"Add": 1, "Div": 1, "Dense": 4, "Quant": 3, "BipolarQuant": 1}, None),
]


@pytest.mark.parametrize("path, want, shapes", REAL, ids=[Path(p).stem for p, _, _ in REAL])
def test_real_models(path, want, shapes):
    file = Path(path) if Path(path).is_absolute() else ROOT / path
    if not file.exists():
        pytest.skip(f"{file} is not present")
    g = accelgen.load(str(file), input_shapes=shapes)
    result = fuse(g, cleanup() + ["fuse-dense", "fuse-batchnorm", "fuse-activation"])
    assert census(result.graph) == want
    if shapes is None and "Quant" not in str(want):  # still agrees with onnxruntime (which lacks QONNX ops)
        feeds = random_inputs(g, seed=3)
        theirs = run_ort(onnx.load(str(file)), feeds)
        ours = accelgen.run(result.graph, feeds)
        for name, value in theirs.items():
            np.testing.assert_allclose(ours[name], value, rtol=1e-4, atol=1e-5)
