"""Quantized graphs on tvm-cpu: raw integer arithmetic, equal to accelgen.run on the quantized graph bit for bit."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import tvm
from onnx import parser
from tvm import te

import accelgen
from accelgen.backends.tvm import compile as tvm_compile
from accelgen.backends.tvm import load_compiled
from accelgen.backends.tvm.build import make_target
from accelgen.backends.tvm.fixed_lower import RAW, requantize_expr
from accelgen.errors import UnsupportedOpsError
from accelgen.ir.fixed import quantize_raw
from accelgen.ir.types import FixedType, Overflow, Rounding

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("rounding, overflow", list(itertools.product(Rounding, Overflow)))
def test_requantize_matches_quantize_raw(rounding, overflow):
    """Every rounding and overflow mode, narrowing (ties, negative values, out of range) and widening."""
    rng = np.random.default_rng(0)
    raw = np.concatenate([rng.integers(-(1 << 20), 1 << 20, 4000), np.arange(-64, 65) * 8 + 4,  # exact ties
                          [0, 1, -1, (1 << 30) - 1, -(1 << 30)]]).astype(np.int64)
    frac = 10
    target = make_target("tvm-cpu", 1)
    for t in (FixedType(12, 5, True, rounding, overflow), FixedType(9, 3, False, rounding, overflow),
              FixedType(16, 4, True, rounding, overflow)):  # F = 7, 6 (narrowing), 12 (widening)
        a = te.placeholder((raw.size,), RAW, name="a")
        out = te.compute(a.shape, lambda i: requantize_expr(a[i], frac, t))  # noqa: B023 (used at once)
        func = te.create_prim_func([a, out])
        lib = tvm.compile(tvm.IRModule({"main": func}), target=target)
        result = tvm.runtime.tensor(np.zeros(raw.size, np.int64))
        lib["main"](tvm.runtime.tensor(raw), result)
        want, _ = quantize_raw(t, np.ldexp(raw.astype(np.float64), -frac))
        np.testing.assert_array_equal(result.numpy(), want, err_msg=str(t))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    data = np.load(ROOT / "examples/digits_cnn/digits_sample.npz")
    graph = accelgen.optimize(accelgen.load(str(ROOT / "examples/digits_cnn/digits_cnn.onnx")))
    name = graph.inputs[0].name
    quantized = accelgen.quantize(graph, {name: data["images"]})
    out = tmp_path_factory.mktemp("digits") / "lib"
    return quantized, name, data["images"], tvm_compile(quantized, out_dir=out, threads=1), out


def test_digits_cnn_is_bit_exact(digits):
    quantized, name, images, module, _ = digits
    outputs = []
    for i in range(len(images)):
        x = images[i:i + 1]
        want = accelgen.run(quantized, {name: x})
        got = module.run({name: x})
        for key in want:
            assert got[key].dtype == np.float64
            np.testing.assert_array_equal(got[key], want[key])
        outputs.append(next(iter(got.values())))
    assert len({o.argmax() for o in outputs}) > 3  # real predictions, not a saturated constant


def test_digits_cnn_loads_in_a_fresh_module_and_takes_raw_integers(digits):
    quantized, name, images, module, out = digits
    spec = module.inputs[0]
    assert spec["dtype"] == "int64" and spec["fixed"]["width"] == quantized.inputs[0].dtype.width
    raw, _ = quantize_raw(quantized.inputs[0].dtype, images[:1])
    again = load_compiled(out).run({name: raw})  # raw integers go in as they are
    want = accelgen.run(quantized, {name: images[:1]})
    for key in want:
        np.testing.assert_array_equal(again[key], want[key])


def test_mlp_with_residual_add_and_saturation_is_bit_exact(tmp_path):
    rng = np.random.default_rng(3)

    def floats(*shape):
        return ", ".join(f"{v:.5f}" for v in rng.standard_normal(shape).ravel())

    text = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,12] x) => (float[1,6] y) {
        w1 = Constant <value = float[12,6] {""" + floats(12, 6) + """}> ()
        b1 = Constant <value = float[6] {""" + floats(6) + """}> ()
        w2 = Constant <value = float[6,6] {""" + floats(6, 6) + """}> ()
        m1 = MatMul (x, w1)
        a1 = Add (m1, b1)
        h = Relu (a1)
        m2 = MatMul (h, w2)
        y = Add (m2, h)
    }"""
    graph = accelgen.optimize(accelgen.load(parser.parse_model(text)))
    quantized = accelgen.quantize(graph, {"x": rng.standard_normal((64, 12)).astype(np.float32)})
    module = tvm_compile(quantized, out_dir=tmp_path / "lib", threads=1)
    for scale in (0.5, 1.0, 8.0):  # 8x the calibration range: outputs saturate
        x = (scale * rng.standard_normal((1, 12))).astype(np.float32)
        want, got = accelgen.run(quantized, {"x": x}), module.run({"x": x})
        np.testing.assert_array_equal(got["y"], want["y"])


def test_jet_mlp_with_fixed_point_softmax_is_bit_exact(tmp_path):
    """Dense+Relu layers and the softmax's exp and reciprocal tables, inside and past the calibration range."""
    data = np.load(ROOT / "examples/jet_mlp/sample.npz")
    graph = accelgen.optimize(accelgen.load(str(ROOT / "examples/jet_mlp/jet_mlp.onnx")))
    name, x_all = graph.inputs[0].name, data[next(iter(data.keys()))]
    quantized = accelgen.quantize(graph, {name: x_all})
    module = tvm_compile(quantized, out_dir=tmp_path / "lib", threads=1)
    rng = np.random.default_rng(1)
    inputs = [x_all[i:i + 1] for i in range(len(x_all))] + [
        (s * rng.standard_normal((1, x_all.shape[1]))).astype(np.float32) for s in (0.5, 1, 2, 4) for _ in range(5)]
    for x in inputs:
        want, got = accelgen.run(quantized, {name: x}), module.run({name: x})
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def test_table_activations_are_refused_with_their_nodes(tmp_path):
    text = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8] x) => (float[1,4] y) {
        w = Constant <value = float[8,4] {""" + ", ".join(["0.25", "-0.5"] * 16) + """}> ()
        m = MatMul (x, w)
        y = Sigmoid (m)
    }"""
    graph = accelgen.optimize(accelgen.load(parser.parse_model(text)))
    quantized = accelgen.quantize(graph, {"x": np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)})
    with pytest.raises(UnsupportedOpsError, match=r"Sigmoid.*fixed point on tvm-cpu"):
        tvm_compile(quantized, out_dir=tmp_path / "lib")
    assert not (tmp_path / "lib").exists()  # refused before writing anything


def test_estimate_asks_for_the_float_graph(digits):
    from accelgen.errors import OptionError

    with pytest.raises(OptionError, match="before accelgen.quantize"):
        accelgen.estimate(digits[0], target="tvm-cpu")
