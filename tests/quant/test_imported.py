"""Import of already-quantized models: QONNX Quant / BipolarQuant / Trunc and ONNX QDQ keep their own decisions in
fixed point. Power-of-two scales give exact FixedTypes (and ap_fixed casts where the modes match); other scales
become exact integer levels whose scale moves into the next layer's weights (`prepare_imported`). Checked against
QONNX's executor (tests/data/qonnx_reference), onnxruntime, and exact rational arithmetic."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import accelgen
from accelgen.errors import QuantizationError
from accelgen.ir.fixed import quantize as fixed_quantize
from accelgen.ir.ops.quant import AP_ROUNDING, Quant, _levels, grid_type, pow2_exponents
from accelgen.ir.types import FixedType, Overflow, Rounding
from accelgen.quant.context import exact_type
from accelgen.quant.imported import prepare_imported
from tests.quant.datasets import ROOT, jets

REFERENCE = Path(__file__).parents[1] / "data" / "qonnx_reference"
SHARED = next((p for p in (ROOT / "shared" / "models", ROOT.parent / "shared" / "models") if p.is_dir()), None)
QONNX = "qonnx.custom_op.general"
MODES = ["ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "ROUND_TO_ZERO", "HALF_UP", "HALF_DOWN"]


def f32(*values):
    return np.array(values, np.float32)


def build(nodes, inputs, outputs, inits, opset=19, qonnx=False):
    """A model from onnx.helper nodes; inputs/outputs: name -> (numpy dtype, shape); inits: name -> array."""
    info = lambda n, t: helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(t[0])), t[1])  # noqa
    g = helper.make_graph(nodes, "m", [info(n, t) for n, t in inputs.items()],
                          [info(n, t) for n, t in outputs.items()],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(QONNX, 1)] if qonnx else [])
    m = helper.make_model(g, opset_imports=opsets)
    m.ir_version = 9
    return m


def quant_node(x, y, prefix, **attrs):
    return helper.make_node("Quant", [x, f"{prefix}_s", f"{prefix}_z", f"{prefix}_b"], [y], domain=QONNX, **attrs)


def observed(graph, feeds) -> dict[str, np.ndarray]:
    seen = {}
    accelgen.run(graph, feeds, observe=lambda v, a: seen.__setitem__(v.name, a))
    return seen


# -- QONNX reference cases (outputs of QONNX's own executor) ---------------------------------------------------------

POW2_CASES = {  # case -> (output type, whether the type's own cast is the op)
    "quant_s4_narrow_ties": ("fixed<4,1,RND_CONV,SAT_SYM>", True),
    "quant_floor": ("fixed<6,3,TRN,SAT>", True),
    "quant_down": ("fixed<6,3,TRN_ZERO,SAT>", True),
    "quant_half_up": ("fixed<6,3,RND_INF,SAT>", True),
    "quant_half_down": ("fixed<6,3,RND_ZERO,SAT>", True),
    "quant_ceil": ("fixed<6,3,TRN,SAT>", False),  # no ap_fixed mode rounds up: computed exactly anyway
    "quant_up": ("fixed<6,3,TRN,SAT>", False),
    "quant_1bit_signed": ("fixed<2,1,RND_CONV,SAT>", False),  # bipolar +-0.5
    "bipolar_brevitas_domain": ("fixed<2,2,TRN,SAT>", False),  # +-1
    "trunc_v1_floor": ("fixed<5,3,TRN,SAT>", False),
    "trunc_v1_round": ("fixed<5,3,TRN,SAT>", False),
    "trunc_v1_ceil": ("fixed<5,3,TRN,SAT>", False),
    "trunc_v2_signed": ("fixed<4,5,TRN,SAT>", False),
    "trunc_v2_unsigned_narrow_round": ("ufixed<3,3,TRN,SAT>", False),
}
OTHER_SCALES = ["quant_s8_round", "quant_u3_zeropt_perchannel", "quant_u5_narrow", "intquant_s6",
                "bipolar_perchannel"]


@pytest.mark.parametrize("case", sorted(POW2_CASES))
def test_power_of_two_quantizers_are_exact_fixed_types(case):
    ref = np.load(REFERENCE / f"{case}.npz")
    x = ref["in_x"]
    q = accelgen.quantize(accelgen.load(REFERENCE / f"{case}.onnx"), {"x": x}, activation_bits=32)
    (node,) = q.nodes
    want_type, want_cast = POW2_CASES[case]
    assert str(node.outputs[0].dtype) == want_type
    assert node.op.param("cast") is want_cast and node.op.param("exact") is True
    stats = {}
    got = accelgen.run(q, {"x": x}, stats=stats)["y"]
    np.testing.assert_array_equal(got, ref["out_y"])  # bit for bit with QONNX's executor
    assert stats["y"].overflows == 0  # the op clips itself; its type holds every result
    if want_cast:  # then assigning the input to the type is the whole op, as the HLS code will do it
        xq = fixed_quantize(q.inputs[0].dtype, x)[0]
        np.testing.assert_array_equal(FixedType.parse(want_type).quantize(xq), ref["out_y"])


@pytest.mark.parametrize("case", OTHER_SCALES)
def test_other_scales_decide_exactly_and_round_only_the_product(case):
    """Scales like 0.05: the integer decisions are exact (the QONNX reference is reproduced bit for bit by levels *
    scale in float32); a quantized graph that cannot move the scale into a next layer rounds the product to its
    calibrated type and says so (exact=False)."""
    ref = np.load(REFERENCE / f"{case}.npz")
    x = ref["in_x"]
    graph = accelgen.load(REFERENCE / f"{case}.onnx")
    (node,) = graph.nodes
    params = [np.asarray(v.data, np.float64) for v in node.inputs[1:]]
    xs = x.astype(np.float64)
    if node.op_type == "BipolarQuant":
        levels = np.where(xs >= 0, 1.0, -1.0)
    else:
        levels = node.op.fixed_levels([xs, *params])
    np.testing.assert_array_equal((levels * params[0]).astype(np.float32), ref["out_y"])
    q = accelgen.quantize(graph, {"x": x}, activation_bits=32)
    assert q.nodes[0].op.param("exact") is False
    out_type = q.outputs[0].dtype
    got = accelgen.run(q, {"x": x})["y"]
    assert np.abs(got - levels * params[0]).max() <= out_type.lsb / 2  # one rounding, of the exact product


def rational_levels(x: float, s: float, z: int, lo: int, hi: int, mode: str) -> int:
    """QONNX's quantization in exact rational arithmetic: R(clip(x / s + z, lo, hi))."""
    u = min(max(Fraction(x) / Fraction(s) + z, lo), hi)
    floor = u.numerator // u.denominator
    frac = u - floor
    if frac == 0:
        return floor
    up = {"FLOOR": False, "CEIL": True, "DOWN": u < 0, "ROUND_TO_ZERO": u < 0, "UP": u > 0,
          "HALF_UP": frac > Fraction(1, 2) or (frac == Fraction(1, 2) and u > 0),
          "HALF_DOWN": frac > Fraction(1, 2) or (frac == Fraction(1, 2) and u < 0),
          "ROUND": frac > Fraction(1, 2) or (frac == Fraction(1, 2) and floor % 2 == 1)}
    up["HALF_EVEN"] = up["ROUND"]
    return floor + int(up[mode])


@pytest.mark.parametrize("mode", MODES)
def test_levels_are_exact_for_any_float32_scale(mode):
    rng = np.random.default_rng(3)
    for s in map(float, f32(0.1, 0.03, 0.08842458, 1.4530896, 8.083283, 0.125)):
        k = rng.integers(-40, 40, 60)
        ties = (k + 0.5) * s  # exact in float64: the hardest inputs
        near = np.nextafter(ties, np.where(rng.random(60) < 0.5, -np.inf, np.inf))
        x = np.concatenate([ties, near, k * s, rng.normal(0, 10 * s, 60)])
        for z, lo, hi in [(0, -8, 7), (3, 0, 15), (-2, -7, 7)]:
            got = _levels(x, s, z, lo, hi, mode)
            want = [rational_levels(v, s, z, lo, hi, mode) for v in x]
            np.testing.assert_array_equal(got, want, err_msg=f"scale {s}, zero point {z}")


@pytest.mark.parametrize("signed,narrow", [(1, 0), (1, 1), (0, 0), (0, 1)])
@pytest.mark.parametrize("mode", MODES)
def test_power_of_two_quant_in_fixed_point_equals_the_float_op(signed, narrow, mode):
    """Every mode, range and zero point: the quantized graph reproduces the float op (itself checked against QONNX)
    exactly, the output type holds the results, and the type's cast is the op wherever `cast` says so."""
    x = (np.arange(-160, 160, dtype=np.float32) / 16).reshape(1, -1)  # ties at every half step of scale 0.25
    for bits, scale, zeropt in [(4, 0.25, 0), (3, 2.0, 0), (5, 0.25, 2), (2, 0.5, 0)]:
        m = build([quant_node("x", "y", "q", signed=signed, narrow=narrow, rounding_mode=mode)],
                  {"x": (np.float32, x.shape)}, {"y": (np.float32, x.shape)},
                  {"q_s": f32(scale), "q_z": f32(zeropt), "q_b": f32(bits)}, qonnx=True)
        g = accelgen.load(m)
        want = accelgen.run(g, {"x": x})["y"]
        q = accelgen.quantize(g, {"x": x})
        assert fixed_quantize(q.inputs[0].dtype, x)[0].tolist() == x.tolist()
        stats = {}
        got = accelgen.run(q, {"x": x}, stats=stats)["y"]
        np.testing.assert_array_equal(got, want, err_msg=f"{bits} bits, scale {scale}, zero point {zeropt}")
        assert stats["y"].overflows == 0
        node = q.nodes[0]
        t = node.outputs[0].dtype
        assert t.lsb == scale and node.op.param("exact")
        if node.op.param("cast"):
            np.testing.assert_array_equal(t.quantize(x), want)
            assert t.width == bits and t.rounding is AP_ROUNDING[mode]
        assert node.op.param("cast") == (zeropt == 0 and mode not in ("CEIL", "UP") and not (narrow and not signed)
                                         and not (bits == 1 and signed))


def test_grid_types():
    def shape(t):
        return t.width, t.integer, t.signed

    assert shape(grid_type(-8, 7, -3)) == (4, 1, True)
    assert shape(grid_type(0, 255, 0)) == (8, 8, False)
    assert shape(grid_type(-1, 1, 0)) == (2, 2, True)  # +-1 needs fixed<2,2>: fixed<2,1> stops at 0.5
    assert shape(grid_type(np.array([-8, -8]), np.array([7, 7]), np.array([-3, -1]))) == (6, 3, True)  # per channel
    assert pow2_exponents(f32(0.125, 4.0)).tolist() == [-3, 2] and pow2_exponents(f32(0.1)) is None
    assert Quant(signed=1, narrow=1).fixed_type(f32(0.5), f32(0), f32(8))[0].overflow is Overflow.SAT_SYM


# -- scaled integers: scales that are not powers of two ------------------------------------------------------------

def two_layer_qonnx(scale: float, relu_between: bool = False):
    """x -> Quant(scale, 4 bits) -> MatMul(W) -> y, optionally with a Relu between (which cannot take the scale)."""
    w = np.random.default_rng(0).normal(0, 1, (6, 3)).astype(np.float32)
    nodes = [quant_node("x", "a", "q", signed=1, narrow=0, rounding_mode="ROUND")]
    if relu_between:
        nodes.append(helper.make_node("Relu", ["a"], ["r"]))
    nodes.append(helper.make_node("MatMul", ["r" if relu_between else "a", "w"], ["y"]))
    return build(nodes, {"x": (np.float32, (8, 6))}, {"y": (np.float32, (8, 3))},
                 {"q_s": f32(scale), "q_z": f32(0), "q_b": f32(4), "w": w}, qonnx=True), w


def test_scale_moves_into_the_next_layer_weights():
    m, w = two_layer_qonnx(0.3)
    g = accelgen.load(m)
    x = np.random.default_rng(1).normal(0, 1, (8, 6)).astype(np.float32)
    p = prepare_imported(g)
    assert [n.op_type for n in p.nodes] == ["QuantToInteger", "MatMul"]
    np.testing.assert_array_equal(p.nodes[1].inputs[1].data, (w * np.float32(0.3)).astype(np.float32))
    np.testing.assert_allclose(accelgen.run(p, {"x": x})["y"], accelgen.run(g, {"x": x})["y"], rtol=1e-6, atol=1e-6)
    levels = observed(p, {"x": x})["a"]  # the integer levels
    assert set(np.unique(levels)) <= set(range(-8, 8))
    q = accelgen.quantize(p, {"x": x}, activation_bits=24)
    node = q.nodes[0]
    assert node.outputs[0].dtype == FixedType(4, 4, True, Rounding.RND_CONV, Overflow.SAT)
    assert node.op.param("exact") is True
    np.testing.assert_array_equal(observed(q, {"x": x})["a"], levels)  # decisions bit-identical
    assert prepare_imported(p).nodes[1].inputs[1].data is not None  # idempotent: nothing left to move
    assert [n.op_type for n in prepare_imported(p).nodes] == ["QuantToInteger", "MatMul"]


def test_scale_that_cannot_move_is_rounded_and_marked():
    m, _ = two_layer_qonnx(0.3, relu_between=True)
    p = prepare_imported(accelgen.load(m))
    assert p.nodes[0].op_type == "Quant"  # a Relu cannot take the scale
    x = np.random.default_rng(1).normal(0, 1, (8, 6)).astype(np.float32)
    q = accelgen.quantize(p, {"x": x})
    assert q.nodes[0].op.param("exact") is False and q.nodes[0].op.param("cast") is False


def test_power_of_two_division_becomes_exact_multiplication():
    m = build([helper.make_node("Div", ["x", "c"], ["y"])], {"x": (np.float32, (2, 3))}, {"y": (np.float32, (2, 3))},
              {"c": f32(2.0)})
    p = prepare_imported(accelgen.load(m))
    assert p.nodes[0].op_type == "Mul" and p.nodes[0].inputs[1].data == np.float32(0.5)


def test_sign_decisions_survive_channels_with_tiny_gains():
    """BatchNorm folded into binary weights: one channel's gain is 1e-6 of another's. A shared 16-bit weight type
    rounds the small channel away; normalizing each channel by a power of two keeps every decision (exact in float:
    the float graph's outputs do not change by one bit)."""
    rng = np.random.default_rng(0)
    signs = np.where(rng.random((16, 4)) < 0.5, -1.0, 1.0)
    gains = np.array([1.0, 0.7, 3e-6, 1e-6])
    w = (signs * gains).astype(np.float32)
    b = (np.array([0.5, -0.25, 2e-6, -1.5e-6])).astype(np.float32)
    m = build([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["a"]),
               helper.make_node("BipolarQuant", ["a", "s"], ["y"], domain=QONNX)],
              {"x": (np.float32, (64, 16))}, {"y": (np.float32, (64, 4))}, {"w": w, "b": b, "s": f32(1.0)},
              qonnx=True)
    g = accelgen.optimize(accelgen.load(m))
    x = np.where(rng.random((64, 16)) < 0.5, -1.0, 1.0).astype(np.float32)
    want = accelgen.run(g, {"x": x})["y"]
    p = prepare_imported(g)
    np.testing.assert_array_equal(accelgen.run(p, {"x": x})["y"], want)
    np.testing.assert_array_equal(accelgen.run(accelgen.quantize(p, {"x": x}), {"x": x})["y"], want)


# -- the shared QONNX models (Brevitas / FINN exports) ---------------------------------------------------------------

def shared_graph(name):
    ref = dict(np.load(REFERENCE / f"{name}.npz"))
    (x_name,) = [k.removeprefix("in_") for k in ref if k.startswith("in_")]
    (y_name,) = [k.removeprefix("out_") for k in ref if k.startswith("out_")]
    g = accelgen.optimize(accelgen.load(SHARED / f"{name}.onnx"))
    xs = ref[f"in_{x_name}"]
    calib = np.random.default_rng(11).uniform(0, 1, (64, *xs.shape[2:])).astype(np.float32)  # not the test inputs
    if name.startswith("unsw"):
        calib = np.where(calib >= 0.5, 1, -1).astype(np.float32)
    return g, x_name, y_name, xs, ref[f"out_{y_name}"], calib


@pytest.mark.skipif(SHARED is None, reason="the shared models folder (shared/models) is not present")
def test_unsw_mlp_reproduces_qonnx_bit_for_bit():
    g, x_name, y_name, xs, ys, calib = shared_graph("unsw_nb15-mlp-w2a2")
    q = accelgen.quantize(prepare_imported(g), {x_name: calib})
    kinds = [n.op_type for n in q.nodes]
    assert kinds.count("QuantToInteger") == 3 and kinds[-1] == "BipolarQuant"  # scales 0.088, 8.08, 1.45 moved
    assert all(n.op.param("exact") for n in q.nodes if n.op_type in ("QuantToInteger", "BipolarQuant"))
    for x, y in zip(xs, ys):
        np.testing.assert_array_equal(accelgen.run(q, {x_name: x})[y_name], y)


@pytest.mark.skipif(SHARED is None, reason="the shared models folder (shared/models) is not present")
@pytest.mark.parametrize("name", ["TFC_1W1A", "TFC_1W2A"])
def test_tfc_quantizers_decide_as_qonnx(name):
    """Every quantizer output equals the float graph's (which is QONNX's); the logits are a float BatchNorm that
    fixed point rounds once, to its output type."""
    g, x_name, y_name, xs, ys, calib = shared_graph(name)
    q = accelgen.quantize(prepare_imported(g), {x_name: calib})
    quantizers = [n.outputs[0].name for n in q.nodes if n.op_type in ("Quant", "BipolarQuant")]
    assert len(quantizers) == 4
    out_type = q.outputs[0].dtype
    for x, y in zip(xs, ys):
        fixed, ref = observed(q, {x_name: x}), observed(g, {x_name: x})
        for v in quantizers:
            np.testing.assert_array_equal(fixed[v], ref[v], err_msg=v)
        assert np.abs(fixed[y_name] - y).max() <= 2 * out_type.lsb
        assert fixed[y_name].argmax() == y.argmax()


# -- QDQ (onnxruntime's format) ---------------------------------------------------------------------------------------

def run_ort(model, feeds, optimize=False):
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def power_of_two_qdq(zero_point=0, dtype=np.int8):
    """x -> Q/DQ(2**-4) -> MatMul(DQ(int8 W, 2**-6)) + DQ(int32 b, 2**-10) -> Q/DQ(2**-3) -> y, built by hand (the
    onnxruntime quantizer rarely picks powers of two)."""
    rng = np.random.default_rng(5)
    zp = np.array(zero_point, dtype)
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw"], ["wd"]),
             helper.make_node("DequantizeLinear", ["bq", "sb"], ["bd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["h"]), helper.make_node("Add", ["h", "bd"], ["a"]),
             helper.make_node("QuantizeLinear", ["a", "sy", "zy"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])]
    inits = {"sx": f32(2 ** -4), "zx": zp, "wq": rng.integers(-127, 128, (12, 5)).astype(np.int8),
             "sw": f32(2 ** -6), "bq": rng.integers(-900, 900, 5).astype(np.int32), "sb": f32(2 ** -10),
             "sy": f32(2 ** -3), "zy": np.array(0, np.int8)}
    return build(nodes, {"x": (np.float32, (32, 12))}, {"y": (np.float32, (32, 5))}, inits, opset=13)


@pytest.mark.parametrize("zero_point,dtype", [(0, np.int8), (3, np.int8), (0, np.uint8)])
def test_power_of_two_qdq_matches_onnxruntime_bit_for_bit(zero_point, dtype):
    m = power_of_two_qdq(zero_point, dtype)
    rng = np.random.default_rng(6)
    x = (np.round(rng.uniform(-2, 9 if dtype == np.uint8 else 2, (32, 12)) * 256) / 256).astype(np.float32)
    g = prepare_imported(accelgen.optimize(accelgen.load(m)))
    q = accelgen.quantize(g, {"x": x})
    dq = [n for n in q.nodes if n.op_type == "DequantizeLinear"]
    base = FixedType(8, 4, dtype == np.int8 or zero_point != 0, Rounding.RND_CONV, Overflow.SAT)
    if zero_point == 0:
        assert dq[0].outputs[0].dtype == base and dq[0].op.param("cast") is True
        np.testing.assert_array_equal(base.quantize(x), observed(q, {"x": x})[dq[0].outputs[0].name])
    else:  # levels - 3 range over [-131, 124]: one more bit, and the pair is no longer one cast
        assert dq[0].outputs[0].dtype == FixedType(9, 5, True, Rounding.RND_CONV, Overflow.SAT)
        assert dq[0].op.param("cast") is False
    assert all(n.op.param("exact") for n in dq)
    for optimize in (False, True):
        np.testing.assert_array_equal(accelgen.run(q, {"x": x})["y"], run_ort(m, {"x": x}, optimize)["y"])


def test_onnxruntime_qdq_model_keeps_its_integer_decisions(tmp_path):
    """The jet MLP through onnxruntime's quantize_static (QDQ, scales like 0.0157): the scales move into the next
    layers' weights and every QuantizeLinear makes onnxruntime's integer decisions, except where a value lies within
    the rounding of the float parts between them (weights times scales, the first input, onnxruntime's own float32
    sums) of a decision boundary: off by one level at most, and rarer the wider those parts are carried."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, x):
            self.batches = iter([{"input": x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.batches, None)

    calib, _ = jets(256, seed=1)
    held_out, _ = jets(256, seed=2)
    path = tmp_path / "jet_qdq.onnx"
    logging.disable(logging.WARNING)  # the quantizer's advice to run its pre-processing
    try:
        quantize_static(str(ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx"), str(path), Reader(calib),
                        quant_format=QuantFormat.QDQ)
    finally:
        logging.disable(logging.NOTSET)
    m = onnx.load(path)
    levels = [n.output[0] for n in m.graph.node if n.op_type == "QuantizeLinear"]
    m.graph.output.extend(helper.make_tensor_value_info(v, TensorProto.INT8, None) for v in levels)
    theirs = run_ort(m, {"input": held_out})
    g = prepare_imported(accelgen.optimize(accelgen.load(path, input_shapes={"input": (256, 16)})))
    assert sum(n.op_type == "DequantizeLinear" and n.inputs[1].data.item() == 1.0 for n in g.nodes) == 4
    for options, least in [({}, 0.97), ({"activation_bits": 32, "weight_bits": 24}, 0.999)]:
        q = accelgen.quantize(g, {"input": calib}, **options)
        ours = observed(q, {"input": held_out})
        for v in levels:  # at 16 bits a level can differ where a value sits within an lsb of a decision boundary
            assert (ours[v] == theirs[v]).mean() >= least, (options, v)
            assert np.abs(ours[v].astype(int) - theirs[v]).max() <= 1, (options, v)
        assert (ours["output"].argmax(-1) == theirs["output"].argmax(-1)).mean() == 1.0


# -- weights already on a grid, and errors ----------------------------------------------------------------------------

def test_folded_weight_quantizer_keeps_its_grid():
    """A weight Quant folds at import into constants on its grid (4 bits, scale 2**-3); quantizing keeps every value
    (today in the configured 16-bit weight type, which holds the grid; the grid itself needs fixed<4,1>)."""
    w = np.random.default_rng(2).normal(0, 0.4, (6, 3)).astype(np.float32)
    m = build([quant_node("w", "wq", "q", signed=1, narrow=0, rounding_mode="ROUND"),
               helper.make_node("MatMul", ["x", "wq"], ["y"])], {"x": (np.float32, (4, 6))},
              {"y": (np.float32, (4, 3))}, {"w": w, "q_s": f32(0.125), "q_z": f32(0), "q_b": f32(4)}, qonnx=True)
    g = accelgen.load(m)
    (folded,) = [v for v in g.constants.values() if v.shape == (6, 3)]
    q = accelgen.quantize(g, {"x": np.random.default_rng(3).normal(0, 1, (32, 6)).astype(np.float32)})
    weight = q.nodes[0].inputs[1]
    np.testing.assert_array_equal(weight.data, folded.data)
    np.testing.assert_array_equal(FixedType(4, 1).quantize(folded.data), folded.data)
    assert exact_type(folded.data).width <= 5  # magnitude bits + sign: -8 costs it one bit more than needed


def test_errors_name_the_node():
    x = np.zeros((2, 3), np.float32)
    m = build([helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], domain=QONNX)],
              {"x": (np.float32, (2, 3)), "s": (np.float32, (1,))}, {"y": (np.float32, (2, 3))},
              {"z": f32(0), "b": f32(4)}, qonnx=True)
    with pytest.raises(QuantizationError, match=r"\(Quant\): its scale must be a constant"):
        accelgen.quantize(accelgen.load(m), {"x": x, "s": f32(0.5)})
    m = build([quant_node("x", "y", "q")], {"x": (np.float32, (2, 3))}, {"y": (np.float32, (2, 3))},
              {"q_s": f32(0.5), "q_z": f32(0.5), "q_b": f32(4)}, qonnx=True)
    with pytest.raises(QuantizationError, match="zero point 0.5 is not an integer"):
        accelgen.quantize(accelgen.load(m), {"x": x})
    m = build([helper.make_node("Trunc", ["x", "s", "z", "i", "o"], ["y"], domain=QONNX)], {"x": (np.float32, (2, 3))},
              {"y": (np.float32, (2, 3))}, {"s": f32(0.3), "z": f32(0), "i": f32(8), "o": f32(4)}, qonnx=True)
    with pytest.raises(QuantizationError, match="scale 0.3 is not a power of two"):
        accelgen.quantize(accelgen.load(m), {"x": x})
