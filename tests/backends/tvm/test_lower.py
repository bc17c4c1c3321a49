"""Lowering of the ops the examples do not reach, each checked against onnxruntime, and the refusals."""

import numpy as np
import pytest
from onnx import parser

import accelgen
from accelgen.backends.tvm import compile as tvm_compile
from accelgen.errors import UnsupportedOpsError
from tests.ortcheck import rand, run_ort


def check(text, inputs, tmp_path):
    proto = parser.parse_model(text)
    graph = accelgen.load(proto)
    got = tvm_compile(graph, out_dir=tmp_path / "lib").run(inputs)
    want = run_ort(proto, inputs)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5, err_msg=key)


HEAD = '<ir_version: 8, opset_import: ["" : 17]>\n'


def test_gemm_matmul_elementwise_and_movement(tmp_path):
    w = ", ".join(f"{v:.4f}" for v in rand(32, seed=1))
    text = HEAD + """g (float[3,8] x, float[2,3,8] z) => (float[3,4] gemm, float[2,3,3] zz, float[2,8,3] moved,
                                                         float[2,3] mean, float[2,3,8] ew) {
        w = Constant <value = float[4,8] {""" + w + """}> ()
        c = Constant <value = float[4] {0.5, -1, 2, 0.25}> ()
        gemm = Gemm <alpha = 0.5, beta = 2.0, transB = 1> (x, w, c)
        xt = Transpose <perm = [1, 0]> (x)
        zz = MatMul (z, xt)
        zt = Transpose <perm = [0, 2, 1]> (z)
        three = Constant <value = float {3}> ()
        th = Tanh (zt)
        den = Add (th, three)
        sig = Sigmoid (zt)
        moved = Div (sig, den)
        mean = ReduceMean <keepdims = 0, axes = [-1]> (z)
        e = Erf (z)
        ez = Mul (e, z)
        sm = Softmax <axis = 1> (z)
        ew = Sub (ez, sm)
    }"""
    check(text, {"x": rand(3, 8), "z": rand(2, 3, 8, seed=2)}, tmp_path)


def test_concat_flatten_and_legacy_softmax(tmp_path):
    text = '<ir_version: 8, opset_import: ["" : 11]>\n' + """g (float[2,3,4] x) => (float[2,24] y, float[2,3,8] c) {
        f = Flatten (x)
        y = Softmax <axis = 1> (f)
        r = Relu (x)
        c = Concat <axis = 2> (x, r)
    }"""
    check(text, {"x": rand(2, 3, 4)}, tmp_path)


def test_conv_with_stride_groups_and_pools(tmp_path):
    w = ", ".join(f"{v:.4f}" for v in rand(4 * 2 * 3 * 3, seed=3))
    text = HEAD + """g (float[1,4,9,9] x) => (float[1,4,4,4] mp, float[1,4,3,3] ap, float[1,4,1,1] gp) {
        w = Constant <value = float[4,2,3,3] {""" + w + """}> ()
        b = Constant <value = float[4] {0.1, -0.2, 0.3, 0}> ()
        conv = Conv <group = 2, strides = [2, 2], pads = [1, 1, 1, 1]> (x, w, b)
        y = Relu (conv)
        mp = MaxPool <kernel_shape = [2, 2], strides = [1, 1]> (y)
        ap = AveragePool <kernel_shape = [3, 3], strides = [2, 2], pads = [1, 1, 1, 1], count_include_pad = 1> (y)
        gp = GlobalAveragePool (y)
    }"""
    check(text, {"x": rand(1, 4, 9, 9)}, tmp_path)


@pytest.mark.parametrize("m, k, n", [(6, 37, 40), (5, 7, 48), (1, 3, 5), (9, 16, 33)])
def test_dense_tiles_that_do_not_divide(m, k, n, tmp_path):
    """Widths that are not a multiple of the SIMD width (no packing, narrower vectors) and odd row counts."""
    w = ", ".join(f"{v:.4f}" for v in rand(k * n, seed=4))
    b = ", ".join(f"{v:.4f}" for v in rand(n, seed=5))
    text = HEAD + f"""g (float[{m},{k}] x) => (float[{m},{n}] y) {{
        w = Constant <value = float[{k},{n}] {{{w}}}> ()
        b = Constant <value = float[{n}] {{{b}}}> ()
        mm = MatMul (x, w)
        a = Add (mm, b)
        y = Tanh (a)
    }}"""
    check(text, {"x": rand(m, k)}, tmp_path)


def test_packed_conv_with_strides_dilations_and_uneven_pads(tmp_path):
    """16 output channels: the packed, channels-innermost kernel (the grouped conv above takes the plain one)."""
    w = ", ".join(f"{v:.4f}" for v in rand(16 * 3 * 3 * 3, seed=6))
    b = ", ".join(f"{v:.4f}" for v in rand(16, seed=7))
    text = HEAD + """g (float[1,3,11,10] x) => (float[1,16,5,9] y, float[1,16,9,8] z) {
        w = Constant <value = float[16,3,3,3] {""" + w + """}> ()
        b = Constant <value = float[16] {""" + b + """}> ()
        c = Conv <strides = [2, 1], dilations = [1, 2], pads = [0, 1, 1, 2]> (x, w, b)
        y = Sigmoid (c)
        z = Conv <pads = [0, 0, 0, 0]> (x, w)
    }"""
    check(text, {"x": rand(1, 3, 11, 10)}, tmp_path)


def test_vectorized_reductions_and_tiled_transposes(tmp_path):
    """Reductions over 64 (any SIMD width divides it: split into vector partial results) and transposes whose two
    swapped axes both divide into tiles, next to ones that do not (plain loops)."""
    text = HEAD + """g (float[3,5,64] x, float[1,32,32,16] img) => (float[3,5,64] sm, float[3,5,64] ln,
                                                          float[1,16,32,32] chw, float[3,64,5] xt) {
        sm = Softmax <axis = -1> (x)
        s = Constant <value = float[64] {""" + ", ".join(f"{v:.4f}" for v in rand(64, seed=5)) + """}> ()
        b = Constant <value = float[64] {""" + ", ".join(f"{v:.4f}" for v in rand(64, seed=6)) + """}> ()
        ln = LayerNormalization <axis = -1, epsilon = 1e-5> (x, s, b)
        chw = Transpose <perm = [0, 3, 1, 2]> (img)
        xt = Transpose <perm = [0, 2, 1]> (x)
    }"""
    check(text, {"x": 3 * rand(3, 5, 64), "img": rand(1, 32, 32, 16, seed=7)}, tmp_path)


def test_unsupported_ops_are_listed_with_node_names(tmp_path):
    graph = accelgen.load(parser.parse_model(HEAD + """g (float[2,4] x) => (float[2,4] y) {
        a = Abs (x)
        s = Sin (a)
        y = Floor (s)
    }"""))
    with pytest.raises(UnsupportedOpsError) as info:
        tvm_compile(graph, out_dir=tmp_path / "lib")
    message = str(info.value)
    assert "Abs x1" in message and "Floor x1" in message and "Sin x1" in message
    assert not (tmp_path / "lib").exists()
