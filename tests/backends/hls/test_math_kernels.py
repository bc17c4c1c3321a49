"""MatMul between activations, Div (by a tensor, broadcasting, by a constant), Reciprocal, Sqrt, Exp,
GatherElements and QONNX Trunc in the HLS backend (layers_math.py, kernels/ag_math.h): every output bit for bit as
the interpreter on the quantized graph, over inputs spread wider than the calibration data (saturation, negative
radicands, division by zero); io stream; the estimator's costs; and the error for what stays unsupported."""

import numpy as np
import pytest
from onnx import helper

import accelgen
from accelgen.backends.hls import compile
from accelgen.backends.hls.layers_math import trunc_steps
from accelgen.errors import UnsupportedOpsError
from tests.backends.hls.test_lint import lint_problems, needs_gxx
from tests.onnxmodels import const, text_model
from tests.quant.test_imported import QONNX, build, quant_node

MATH_OUTPUTS = ("y_mm", "y_div", "y_divb", "y_divc", "y_exp", "y_sqrt", "y_rec", "y_ge")


def math_model() -> accelgen.Graph:
    """An attention written out by hand (Q K^T, then times V broadcast over the heads), Div by a tensor, by a
    broadcast column and by a constant, Exp, Sqrt and Reciprocal of a signed tensor, GatherElements."""
    idx = np.random.default_rng(0).integers(-4, 4, size=(1, 2, 3, 2))
    body = """
    kt = Transpose <perm = [0, 1, 3, 2]> (k)
    s = MatMul(q, kt)
    y_mm = MatMul(s, v)
    y_div = Div(q, d)
    y_divb = Div(k, col)
    y_divc = Div(q, three)
    y_exp = Exp(q)
    y_sqrt = Sqrt(d)
    y_rec = Reciprocal(d)
    y_ge = GatherElements <axis = 3> (q, idx)
    """
    outputs = ", ".join(f"float[1,2,3,{n}] {name}" for name, n in zip(MATH_OUTPUTS, (5, 4, 4, 4, 4, 4, 4, 2)))
    return text_model(f"(float[1,2,3,4] q, float[1,2,3,4] k, float[1,1,3,5] v, float[1,2,3,4] d, "
                      f"float[1,1,3,1] col) => ({outputs})",
                      [const("idx", idx, "int64"), const("three", np.array([3.0]))], body)


def _shapes():
    return {"q": (2, 3, 4), "k": (2, 3, 4), "v": (1, 3, 5), "d": (2, 3, 4), "col": (1, 3, 1)}


def quantized_math() -> accelgen.Graph:
    rng = np.random.default_rng(1)
    calib = {name: rng.normal(size=(50, *shape)).astype(np.float32) for name, shape in _shapes().items()}
    calib["d"] = rng.uniform(-1, 3, size=(50, *_shapes()["d"])).astype(np.float32)  # signed, mostly positive
    calib["col"] = rng.uniform(-3, -0.5, size=(50, *_shapes()["col"])).astype(np.float32)
    return accelgen.quantize(accelgen.optimize(math_model()), calib)


def math_inputs(n: int, seed: int = 5) -> dict[str, np.ndarray]:
    """float32 inputs wider than the calibration, with exact zeros in the divisors (x / 0, 0 / 0)."""
    rng = np.random.default_rng(seed)
    feeds = {name: (3 * rng.normal(size=(n, *shape))).astype(np.float32) for name, shape in _shapes().items()}
    feeds["d"] = rng.uniform(-4, 6, size=(n, *_shapes()["d"])).astype(np.float32)
    feeds["d"][:, 0, 0, :2] = 0
    feeds["col"][: n // 10] = 0
    feeds["q"][: n // 20, 0, 0, 0] = 0
    return feeds


def trunc_model():
    """A QONNX Quant (8 bits, scale 2**-4) into Trunc version 1 (FLOOR to 4 bits) and version 2 (ROUND, narrow,
    to 4 bits of scale 2**-2)."""
    nodes = [quant_node("x", "xq", "q"),
             helper.make_node("Trunc", ["xq", "q_s", "q_z", "q_b", "t_b"], ["y_trunc"], domain=QONNX),
             helper.make_node("Trunc", ["xq", "q_s", "q_z", "q_b", "t2_s", "t_b"], ["y_trunc2"], domain=QONNX,
                              rounding_mode="ROUND", signed=1, narrow=1)]
    f32 = np.float32
    inits = {"q_s": f32(2**-4), "q_z": f32(0), "q_b": f32(8), "t_b": f32(4), "t2_s": f32(2**-2)}
    m = build(nodes, {"x": (f32, [1, 16])}, {"y_trunc": (f32, [1, 16]), "y_trunc2": (f32, [1, 16])}, inits,
              qonnx=True)
    rng = np.random.default_rng(0)
    return accelgen.quantize(accelgen.optimize(accelgen.load(m)), {"x": rng.normal(size=(50, 16)).astype(f32)})


def _reference(q, feeds, n):
    runs = [accelgen.run(q, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
    return {out.name: np.concatenate([r[out.name] for r in runs]) for out in q.outputs}


def _assert_bit_exact(got, want):
    for name, ref in want.items():
        np.testing.assert_array_equal(got[name].reshape(ref.shape), ref, err_msg=name)


@pytest.fixture(scope="module")
def math_project(tmp_path_factory):
    q = quantized_math()
    return q, compile(q, out_dir=tmp_path_factory.mktemp("math") / "p")


@needs_gxx
def test_math_kernels_bit_exact(math_project):
    q, project = math_project
    n = 300
    feeds = math_inputs(n)
    want = _reference(q, feeds, n)
    got = project.predict(feeds)
    _assert_bit_exact(got, want)
    ap = project.predict({k: v[:60] for k, v in feeds.items()}, types="ap")  # the Xilinx headers, zeros included
    for name in ap:
        np.testing.assert_array_equal(ap[name], got[name][:60], err_msg=name)
    types = {v.name: v.dtype for v in q.values()}
    assert np.any(want["y_rec"] == types["y_rec"].max)  # 1 / 0 saturates
    assert np.any(want["y_div"] == types["y_div"].max) and np.any(want["y_div"] == types["y_div"].min)
    assert np.any(want["y_sqrt"] == 0) and np.unique(want["y_sqrt"]).size > 100  # negative radicands give 0
    assert np.unique(want["y_mm"]).size > 1000


def test_math_layers_and_lint(math_project):
    q, project = math_project
    code = "".join(p.read_text() for p in (project.path / "firmware").glob("*.cpp"))
    for call in ("ag::matmul<", "ag::divide<", "ag::divide_broadcast<", "ag::scale_by<", "ag::exponential<",
                 "ag::square_root<", "ag::reciprocal<", "ag::gather<"):
        assert call in code, call
    assert lint_problems(project) == []


@needs_gxx
def test_math_kernels_io_stream(math_project, tmp_path):
    q, parallel = math_project
    stream = compile(q, out_dir=tmp_path / "s", io="stream")
    feeds = math_inputs(100, seed=9)
    got, want = stream.predict(feeds), parallel.predict(feeds)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@needs_gxx
def test_matmul_one_dimensional_operands(tmp_path):
    """A 1-D operand gains (then loses) a unit dim: [1, 3, 4] x [4] and [4] x [1, 4, 2]."""
    g = text_model("(float[1,3,4] a, float[4] u, float[1,4,2] b) => (float[1,3] y1, float[1,2] y2)", [],
                   "y1 = MatMul(a, u) \n y2 = MatMul(u, b)")
    rng = np.random.default_rng(0)
    shapes = {"a": (3, 4), "u": (4,), "b": (4, 2)}
    q = accelgen.quantize(accelgen.optimize(g), {"a": rng.normal(size=(50, 3, 4)).astype(np.float32),
                                                 "u": rng.normal(size=(200,)).astype(np.float32),
                                                 "b": rng.normal(size=(50, 4, 2)).astype(np.float32)})
    project = compile(q, out_dir=tmp_path / "p")
    n = 100
    feeds = {k: (3 * rng.normal(size=(n, *shape))).astype(np.float32) for k, shape in shapes.items()}
    got = project.predict(feeds)
    runs = [accelgen.run(q, {k: v[i] if k == "u" else v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
    for name in ("y1", "y2"):
        want = np.stack([r[name] for r in runs])
        np.testing.assert_array_equal(got[name].reshape(want.shape), want, err_msg=name)


@needs_gxx
def test_trunc_bit_exact(tmp_path):
    q = trunc_model()
    project = compile(q, out_dir=tmp_path / "t")
    n = 200
    x = (8 * np.random.default_rng(2).normal(size=(n, 16))).astype(np.float32)
    want = _reference(q, {"x": x}, n)
    _assert_bit_exact(project.predict({"x": x}), want)
    assert all(np.unique(want[k]).size >= 9 for k in want)  # every level x's type reaches
    assert lint_problems(project) == []


def test_trunc_thresholds_give_the_interpreters_levels():
    """On every value of x's type, the level after the thresholds x reached is the node's own result."""
    q = trunc_model()
    for node in (n for n in q.nodes if n.op_type == "Trunc"):
        x, y = node.inputs[0].dtype, node.outputs[0].dtype
        levels, steps = trunc_steps(node, x, y)
        raw = np.arange(x.raw_min, x.raw_max + 1)
        values = np.ldexp(raw.astype(np.float64), -x.fractional)
        want = node.op.compute([values, *(np.asarray(v.data) for v in node.inputs[1:])])[0]
        np.testing.assert_array_equal(levels[np.searchsorted(steps, raw, side="right")], want)


def test_math_estimates():
    q = quantized_math()
    report = accelgen.estimate(q, target="hls")
    rows = {row.name: row for row in report.layers}
    for name in ("MatMul", "MatMul_0", "Div", "Div_0", "Exp", "Sqrt", "Reciprocal"):
        assert rows[name].lut > 0, name
    assert rows["Div_1"].dsp == 24  # by a constant: x * q(1/3) per element
    assert rows["MatMul"].dsp == 3 * 4 and rows["MatMul_0"].dsp == 5 * 3  # n * k multipliers, 16-bit operands
    assert rows["Div"].dsp == 24 and rows["Reciprocal"].dsp == 0  # one product per quotient; 1/x has none
    assert rows["GatherElements"].lut == 0  # wiring
    assert report.config["top level"] == "DATAFLOW"  # so the row loops stay loops: one row per cycle
    assert rows["MatMul"].latency_cycles >= 2 * 3 and rows["MatMul_0"].latency_cycles >= 2 * 3
    stream = accelgen.estimate(q, target="hls", io="stream")
    assert stream.dsp == report.dsp and stream.latency_cycles > 0
    t = {row.name: row for row in accelgen.estimate(trunc_model(), target="hls").layers}
    assert t["Trunc"].lut > 0 and t["Trunc"].dsp == 0


def test_unsupported_ops_still_listed(tmp_path):
    g = text_model("(float[1,8] x) => (float[1,8] y)", [],
                   "a = Log(x) \n b = Div(a, x) \n c = Sin(b) \n y = Exp(c)")
    with pytest.raises(UnsupportedOpsError) as e:
        compile(g, out_dir=tmp_path / "p", calibration={"x": None})
    text = str(e.value)
    assert "Log x1" in text and "Sin x1" in text
    assert "Div" not in text and "Exp" not in text
