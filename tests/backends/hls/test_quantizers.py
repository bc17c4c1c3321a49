"""QONNX activation quantizers (Quant, IntQuant, QuantToInteger, BipolarQuant) in the HLS backend: a cast when the
output type's cast is the op, otherwise thresholds on x's grid and a table of level values (layers_quant.py).

The thresholds are checked against the interpreter's `Quant.fixed_levels` on every value of small x types over
random modes, scales and zero points; generated projects against `accelgen.run` bit for bit; and the real Brevitas
models in ../shared/models (binary and 2-bit MLPs) compile, build and match (skipped without ../shared)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

import accelgen
from accelgen.backends.hls import compile
from accelgen.backends.hls.layers_quant import thresholds
from accelgen.errors import OptionError
from accelgen.ir.ops.quant import BipolarQuant, Quant
from accelgen.ir.types import FixedType
from tests.backends.hls.test_lint import lint_problems, needs_gxx
from tests.quant.test_imported import MODES, QONNX, SHARED, build, quant_node


def _levels_by_thresholds(op, bits, scale, zeropt, x: FixedType) -> np.ndarray:
    levels, steps = thresholds(op, bits, scale, zeropt, x)
    raw = np.arange(x.raw_min, x.raw_max + 1)
    return levels[np.searchsorted(steps, raw, side="right")] - zeropt  # the level after the steps x reached


@settings(max_examples=300, deadline=None)
@given(mode=st.sampled_from(MODES), signed=st.booleans(), narrow=st.booleans(), bits=st.integers(1, 6),
       scale=st.floats(2.0**-8, 8.0, width=32), zeropt=st.integers(-3, 3), width=st.integers(2, 11),
       integer=st.integers(-3, 7), x_signed=st.booleans())
def test_thresholds_give_the_interpreters_levels(mode, signed, narrow, bits, scale, zeropt, width, integer,
                                                 x_signed):
    op = Quant(signed=int(signed), narrow=int(narrow), rounding_mode=mode)
    x = FixedType(width, integer, x_signed)
    values = np.ldexp(np.arange(x.raw_min, x.raw_max + 1, dtype=np.float64), -x.fractional)
    want = op.fixed_levels([values, np.float32(scale), np.float32(zeropt), np.float32(bits)])
    np.testing.assert_array_equal(_levels_by_thresholds(op, bits, float(scale), float(zeropt), x), want)


def test_bipolar_thresholds():
    x = FixedType(8, 3, True)
    values = np.ldexp(np.arange(x.raw_min, x.raw_max + 1, dtype=np.float64), -x.fractional)
    got = _levels_by_thresholds(BipolarQuant(), 1, 0.5, 0.0, x)
    np.testing.assert_array_equal(got, np.where(values >= 0, 1.0, -1.0))


QUANTIZERS = {  # output -> (Quant attributes, scale, zero point, bits); every one reads x
    "y_half_up": ({"rounding_mode": "HALF_UP"}, 0.37, 1.0, 3),
    "y_ceil_unsigned_narrow": ({"rounding_mode": "CEIL", "signed": 0, "narrow": 1}, 0.25, 2.0, 4),
    "y_cast": ({"rounding_mode": "ROUND", "narrow": 1}, 0.125, 0.0, 5),
    "y_down_8bit": ({"rounding_mode": "DOWN"}, 0.02, 0.0, 8),  # levels -128..127 all within x's range
    "y_bipolar_by_quant": ({}, 0.5, 0.0, 1),
    "y_up_zero_point": ({"rounding_mode": "UP"}, 0.75, -2.0, 3),
}


def quantizer_model():
    """x [1, 48] into each of QUANTIZERS, a BipolarQuant, and a 2-bit quantizer with a scale that is not a power
    of two feeding a MatMul (prepare_imported makes it a QuantToInteger with the scale in the weights)."""
    nodes, inits = [], {}
    for name, (attrs, scale, zeropt, bits) in QUANTIZERS.items():
        nodes.append(quant_node("x", name, name, **attrs))
        inits.update({f"{name}_s": np.float32(scale), f"{name}_z": np.float32(zeropt), f"{name}_b": np.float32(bits)})
    nodes.append(helper.make_node("BipolarQuant", ["x", "bp_s"], ["y_bipolar"], domain=QONNX))
    inits["bp_s"] = np.float32(0.25)
    nodes += [quant_node("x", "a", "a", signed=0), helper.make_node("MatMul", ["a", "w"], ["y_levels_matmul"])]
    inits.update({"a_s": np.float32(0.3), "a_z": np.float32(0.0), "a_b": np.float32(2.0),
                  "w": np.random.default_rng(0).normal(size=(48, 8)).astype(np.float32)})
    outputs = {n: (np.float32, [1, 48]) for n in [*QUANTIZERS, "y_bipolar"]}
    outputs["y_levels_matmul"] = (np.float32, [1, 8])
    return build(nodes, {"x": (np.float32, [1, 48])}, outputs, inits, qonnx=True)


@pytest.fixture(scope="module")
def quantizer_project(tmp_path_factory):
    path = tmp_path_factory.mktemp("quantizers") / "model.onnx"
    path.write_bytes(quantizer_model().SerializeToString())
    g = accelgen.load(str(path))
    calib = {"x": np.random.default_rng(1).normal(size=(200, 1, 48)).astype(np.float32)[:, 0]}
    q = accelgen.quantize(accelgen.optimize(g), calib)
    return q, compile(q, out_dir=tmp_path_factory.mktemp("hls") / "quantizers", calibration=calib)


def test_quantizer_kernels_chosen(quantizer_project):
    q, project = quantizer_project
    kernels = {layer["node"]: layer["kernel"] for layer in project.manifest["layers"]}
    ops = {n.name: n.op_type for n in q.nodes}
    assert "QuantToInteger" in ops.values() and "BipolarQuant" in ops.values()
    assert any("cast" in k for k in kernels.values())
    assert any("255 thresholds" in k for k in kernels.values())  # the 8-bit one
    assert lint_problems(project) == []


@needs_gxx
def test_quantizers_bit_exact(quantizer_project):
    q, project = quantizer_project
    x = 3 * np.random.default_rng(2).normal(size=(200, 48)).astype(np.float32)  # wider than the calibration
    got = project.predict({"x": x})
    for name in got:
        want = np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})[name] for i in range(len(x))])
        np.testing.assert_array_equal(got[name], want.reshape(got[name].shape), err_msg=name)
        assert np.unique(got[name]).size > 1, name


def test_wide_or_per_channel_quantizers_are_refused(tmp_path):
    nodes = [quant_node("x", "y", "q", rounding_mode="CEIL")]
    for bits, scale, what in [(10, np.float32(0.3), "1023 comparators"),
                              (3, np.full((1, 4), 0.3, np.float32), "per channel")]:
        m = build(nodes, {"x": (np.float32, [1, 4])}, {"y": (np.float32, [1, 4])},
                  {"q_s": scale, "q_z": np.float32(0), "q_b": np.float32(bits)}, qonnx=True)
        (tmp_path / "m.onnx").write_bytes(m.SerializeToString())
        calib = {"x": np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)}
        with pytest.raises(OptionError, match=what):
            compile(accelgen.load(str(tmp_path / "m.onnx")), out_dir=tmp_path / f"prj{bits}", calibration=calib)


@needs_gxx
@pytest.mark.skipif(SHARED is None, reason="needs ../shared/models")
@pytest.mark.parametrize("name", ["TFC_1W1A", "TFC_1W2A", "unsw_nb15-mlp-w2a2"])
def test_brevitas_models_compile_and_match(name, tmp_path):
    """The binary / 2-bit MLPs fit without a reuse factor: their 1-bit products are LUT logic, not DSPs (the fit
    check counts 59,792 multipliers for the TFC, 4.9x the part's DSPs), and the C simulation is bit-exact."""
    g = accelgen.load(str(SHARED / f"{name}.onnx"))
    x_name, shape = g.inputs[0].name, tuple(g.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    calib = {x_name: rng.uniform(0, 1, size=(64, *shape)).astype(np.float32)}
    q = accelgen.quantize(accelgen.optimize(g), calib)
    project = compile(q, out_dir=tmp_path / "prj", calibration=calib)
    x = rng.uniform(-0.5, 1.5, size=(60, *shape)).astype(np.float32)  # the C-sim and run see the same values
    out = q.outputs[0].name
    got = project.predict({x_name: x})[out]
    want = np.concatenate([accelgen.run(q, {x_name: x[i:i + 1]})[out] for i in range(len(x))])
    np.testing.assert_array_equal(got, want.reshape(got.shape))
