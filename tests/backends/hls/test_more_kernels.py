"""Kernels for MobileNet-style and trigger models: AveragePool (1-D and 2-D, padding counted or not, ceil_mode,
dilated), GlobalAveragePool, GlobalMaxPool, Clip standalone and fused after a convolution (ReLU6), LeakyRelu,
PRelu, HardSigmoid, HardSwish, Abs, Neg, Max and Min (broadcasting, mixed signedness, three inputs), ReduceMax,
ReduceMin, the comparisons, Where and Sum. The C simulation equals accelgen's fixed-point interpreter bit for bit on every output, over inputs
spread wider than the calibration data (saturation), in io parallel and io stream and with a uniform wrapping
precision; the estimator prices every new kernel."""

import time

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import accelgen
from accelgen.backends.hls import compile, estimate
from accelgen.backends.hls import estimate_model as m
from accelgen.backends.hls.layers import SUPPORTED
from accelgen.errors import UnsupportedOpsError

SAMPLES = 150


def _model(name: str, spec: dict, opset: int = 19) -> accelgen.Graph:
    """A float32 ONNX model from helper nodes: spec["inputs"]/["outputs"] map names to shapes (an output of another
    type: (element type, shape)), spec["inits"] names to arrays (integer arrays stay int64)."""
    def init(k, v):
        v = np.asarray(v)
        return numpy_helper.from_array(v.astype(np.int64 if v.dtype.kind in "iu" else np.float32), k)

    graph = helper.make_graph(
        spec["nodes"], name,
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, s in spec["inputs"].items()],
        [helper.make_tensor_value_info(k, *(s if isinstance(s, tuple) else (TensorProto.FLOAT, s)))
         for k, s in spec["outputs"].items()],
        [init(k, v) for k, v in spec["inits"].items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return accelgen.optimize(accelgen.load(model))


def pool_spec() -> dict:
    """MobileNet's tail (conv + ReLU6, depthwise conv + ReLU6, GlobalAveragePool) and every AveragePool form on
    an image x, 1-D pools on a sequence z."""
    rng = np.random.default_rng(5)
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w0", "b0"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
        n("Clip", ["c0", "zero", "six"], ["r0"], name="relu6_0"),
        n("Conv", ["r0", "w1", "b1"], ["c1"], name="dw1", group=6, strides=[2, 2], pads=[1, 1, 1, 1]),
        n("Clip", ["c1", "zero", "six"], ["r1"], name="relu6_1"),
        n("GlobalAveragePool", ["r1"], ["gap"], name="gap"),
        n("AveragePool", ["x"], ["ap_pad"], name="ap_pad", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("AveragePool", ["x"], ["ap_incl"], name="ap_incl", kernel_shape=[2, 3], strides=[1, 2], pads=[0, 1, 1, 0],
          count_include_pad=1),
        n("AveragePool", ["x"], ["ap_ceil"], name="ap_ceil", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        n("AveragePool", ["x"], ["ap_dil"], name="ap_dil", kernel_shape=[2, 2], strides=[3, 3], dilations=[2, 2],
          pads=[1, 0, 0, 1]),
        n("AveragePool", ["x"], ["ap_same"], name="ap_same", kernel_shape=[2, 2], strides=[4, 4], dilations=[2, 2],
          auto_pad="SAME_UPPER"),  # pads of -1: the input cut short at the end (lim_h, lim_w)
        n("GlobalMaxPool", ["x"], ["gmp"], name="gmp"),
        n("AveragePool", ["z"], ["ap1"], name="ap1", kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1,
          count_include_pad=1),
        n("GlobalAveragePool", ["z"], ["gap1"], name="gap1"),
        n("GlobalMaxPool", ["z"], ["gmp1"], name="gmp1"),
    ]
    inits = {"w0": rng.uniform(0.3, 1, (6, 4, 3, 3)) * rng.choice([-1, 1], (6, 4, 3, 3)) / 4,
             "b0": rng.normal(0, 0.3, 6), "w1": rng.uniform(0.3, 1, (6, 1, 3, 3)) * rng.choice([-1, 1], (6, 1, 3, 3)),
             "b1": rng.normal(0, 0.3, 6), "zero": np.array(0.0), "six": np.array(6.0)}
    outputs = {"gap": [1, 6, 1, 1], "ap_pad": [1, 4, 4, 4], "ap_incl": [1, 4, 8, 4], "ap_ceil": [1, 4, 4, 4],
               "ap_dil": [1, 4, 3, 3], "ap_same": [1, 4, 1, 1], "gmp": [1, 4, 1, 1], "ap1": [1, 3, 6],
               "gap1": [1, 3, 1], "gmp1": [1, 3, 1]}
    return {"inputs": {"x": [1, 4, 8, 8], "z": [1, 3, 10]}, "outputs": outputs, "nodes": nodes, "inits": inits}


def activation_spec() -> dict:
    """Every standalone activation and extremum on a [1, 4, 6] (signed) and on |a| (unsigned: the copy forms and
    comparisons of mixed signedness), with broadcasting operands."""
    rng = np.random.default_rng(6)
    n = helper.make_node
    nodes = [
        n("Clip", ["a", "zero", "six"], ["relu6"], name="relu6"),
        n("Clip", ["a", "lo"], ["clip_lo"], name="clip_lo"),
        n("Clip", ["a", "", "hi"], ["clip_hi"], name="clip_hi"),
        n("Clip", ["a", "hi", "lo"], ["clip_crossed"], name="clip_crossed"),  # min > max: max everywhere
        n("LeakyRelu", ["a"], ["leaky"], name="leaky", alpha=0.1),
        n("PRelu", ["a", "slope"], ["prelu"], name="prelu"),
        n("HardSigmoid", ["a"], ["hsig"], name="hsig"),
        n("HardSwish", ["a"], ["hswish"], name="hswish"),
        n("Abs", ["a"], ["abs"], name="abs"),
        n("Neg", ["a"], ["neg"], name="neg"),
        n("Max", ["a", "b"], ["max"], name="max"),
        n("Min", ["a", "b", "cmin"], ["min3"], name="min3"),
        n("Max", ["abs", "neg"], ["max_mixed"], name="max_mixed"),
        n("Clip", ["abs", "zero", "six"], ["relu6_u"], name="relu6_u"),
        n("LeakyRelu", ["abs"], ["leaky_u"], name="leaky_u", alpha=0.1),
        n("PRelu", ["abs", "slope"], ["prelu_u"], name="prelu_u"),
        n("Abs", ["abs"], ["abs_u"], name="abs_u"),
        n("ReduceMax", ["a", "last"], ["rmax"], name="rmax"),
        n("ReduceMin", ["a", "second"], ["rmin"], name="rmin", keepdims=0),
        n("ReduceMin", ["abs", "both"], ["rmin_u"], name="rmin_u", keepdims=0),
    ]
    inits = {"zero": np.array(0.0), "six": np.array(6.0), "lo": np.array(-0.3), "hi": np.array(1.7),
             "slope": rng.uniform(0.05, 0.4, (4, 1)), "cmin": rng.normal(0, 1, 6), "last": np.array([2]),
             "second": np.array([1]), "both": np.array([1, 2])}
    same = ["relu6", "clip_lo", "clip_hi", "clip_crossed", "leaky", "prelu", "hsig", "hswish", "abs", "neg", "max",
            "min3", "max_mixed", "relu6_u", "leaky_u", "prelu_u", "abs_u"]
    outputs = {**{k: [1, 4, 6] for k in same}, "rmax": [1, 4, 1], "rmin": [1, 6], "rmin_u": [1]}
    return {"inputs": {"a": [1, 4, 6], "b": [1, 1, 6]}, "outputs": outputs, "nodes": nodes, "inits": inits}


def logic_spec() -> dict:
    """The comparisons (broadcasting, constant operands), Where on their results, Sum of one and of three inputs."""
    n = helper.make_node
    nodes = [
        n("Less", ["p", "r"], ["lt"], name="lt"),
        n("LessOrEqual", ["p", "s"], ["le"], name="le"),
        n("Greater", ["r", "cst"], ["gt"], name="gt"),
        n("GreaterOrEqual", ["s", "p"], ["ge"], name="ge"),
        n("Max", ["p", "r"], ["pr_max"], name="pr_max"),
        n("Equal", ["pr_max", "p"], ["eq"], name="eq"),  # true wherever p >= r
        n("Where", ["lt", "p", "r"], ["w"], name="w"),
        n("Where", ["gt", "s", "cst"], ["w2"], name="w2"),
        n("Sum", ["p", "r", "s"], ["sum3"], name="sum3"),
        n("Sum", ["w"], ["sum1"], name="sum1"),
    ]
    shape, flags = [1, 5], (TensorProto.BOOL, [1, 5])
    outputs = {"lt": flags, "le": flags, "gt": flags, "ge": flags, "eq": flags, "w": shape, "w2": shape,
               "sum3": shape, "sum1": shape}
    return {"inputs": {"p": shape, "r": shape, "s": [1, 1]}, "outputs": outputs, "nodes": nodes,
            "inits": {"cst": np.array([0.3, -0.2, 0.0, 1.1, -1.5])}}


def pool_model() -> accelgen.Graph:
    return _model("pools", pool_spec())


def activation_model() -> accelgen.Graph:
    return _model("activations", activation_spec())


def logic_model() -> accelgen.Graph:
    return _model("logic", logic_spec())


def combined_model() -> accelgen.Graph:
    """All three in one graph (test_lint.py's GRAPHS: one project that uses every kernel here)."""
    specs = [pool_spec(), activation_spec(), logic_spec()]
    return _model("more_kernels", {k: {name: v for spec in specs for name, v in spec[k].items()}
                                   if k != "nodes" else [x for spec in specs for x in spec[k]]
                                   for k in specs[0]})


def _calibration(g: accelgen.Graph, scale: float, seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: scale * rng.normal(size=(n, *v.shape[1:])) for v in g.inputs}


def quantized_pools(precision="auto"):
    g = pool_model()
    return accelgen.quantize(g, {k: v.astype(np.float32) for k, v in _calibration(g, 1.0, 0, 300).items()},
                             precision)


def quantized_activations(precision="auto"):
    g = activation_model()
    return accelgen.quantize(g, {k: v.astype(np.float32) for k, v in _calibration(g, 2.0, 0, 300).items()},
                             precision)


def quantized_logic():
    g = logic_model()
    return accelgen.quantize(g, {k: v.astype(np.float32) for k, v in _calibration(g, 1.0, 0, 300).items()})


def quantized_combined():
    """combined_model quantized as the two above are (test_lint.py lints its firmware too)."""
    g = combined_model()
    calib = {**_calibration(g, 1.0, 0, 300),
             **{k: v for k, v in _calibration(g, 2.0, 0, 300).items() if k in ("a", "b")}}
    return accelgen.quantize(g, {k: v.astype(np.float32) for k, v in calib.items()})


MODELS = {"pools": quantized_pools, "activations": quantized_activations,
          "activations_wrap": lambda: quantized_activations("fixed<10,3>"), "logic": quantized_logic}


@pytest.fixture(scope="module")
def quantized():
    return {name: make() for name, make in MODELS.items()}


@pytest.fixture(scope="module")
def projects(quantized, tmp_path_factory):
    root = tmp_path_factory.mktemp("more_kernels")
    out = {name: compile(q, out_dir=root / name) for name, q in quantized.items()}
    for name in ("pools", "activations"):  # io stream: the kernels run on each process's local arrays
        out[f"{name}_stream"] = compile(quantized[name], out_dir=root / f"{name}_stream", io="stream")
    return out


def assert_bit_exact(q, project, feeds: dict[str, np.ndarray]) -> None:
    n = len(next(iter(feeds.values())))
    got = project.predict(feeds)
    refs = [accelgen.run(q, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
    for out in q.outputs:
        ref = np.concatenate([r[out.name] for r in refs])
        np.testing.assert_array_equal(got[out.name].reshape(ref.shape), ref, err_msg=out.name)


def test_graphs_keep_the_ops_under_test(quantized):
    pools = [(n.op_type, getattr(n.op.op, "activation", None)) for n in quantized["pools"].nodes]
    assert [t for t, _ in pools].count("AveragePool") == 6 and ("GlobalAveragePool", None) in pools
    assert [a.op_type for t, a in pools if t == "FusedConv"] == ["Clip", "Clip"]  # ReLU6 fused
    ops = {n.op_type for n in quantized["activations"].nodes}
    assert ops == {"Clip", "LeakyRelu", "PRelu", "HardSigmoid", "HardSwish", "Abs", "Neg", "Max", "Min", "ReduceMax",
                   "ReduceMin"}
    types = {n.name: n.outputs[0].dtype for n in quantized["activations"].nodes}
    assert not types["abs"].signed and types["neg"].signed  # max_mixed compares across signedness
    wrap = {n.outputs[0].dtype.overflow.value for n in quantized["activations_wrap"].nodes}
    assert wrap == {"WRAP"}
    logic = [n.op_type for n in quantized["logic"].nodes]
    assert logic == ["Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Max", "Equal", "Where", "Where", "Sum",
                     "Sum"]


@pytest.mark.parametrize("name", ["pools", "activations", "activations_wrap", "logic", "pools_stream",
                                  "activations_stream"])
def test_csim_bit_exact(quantized, projects, name):
    q = quantized[name.removesuffix("_stream")]
    scale = 2.0 if name.startswith("pools") else 5.0  # 2-2.5x the calibrated spread: outputs saturate
    feeds = _calibration(q, scale, 1, SAMPLES)
    start = time.perf_counter()
    assert_bit_exact(q, projects[name], feeds)
    assert time.perf_counter() - start < 120


def test_saturation_is_reached(quantized):
    """The test inputs reach both clamps of ReLU6 and the saturation of Neg's output type."""
    q = quantized["activations"]
    feeds = _calibration(q, 5.0, 1, 40)
    runs = [accelgen.run(q, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(40)]
    relu6, neg = (np.concatenate([r[k] for r in runs]) for k in ("relu6", "neg"))
    assert relu6.max() == 6.0 and relu6.min() == 0.0
    t = {n.name: n.outputs[0].dtype for n in q.nodes}["neg"]
    assert np.any(neg == t.max) or np.any(neg == t.min)


def test_kernel_descriptions(projects):
    layers = {x["node"]: x for x in projects["pools"].manifest["layers"]}
    assert layers["ap1"]["kernel"] == "avgpool1d 3, count includes padding"
    assert layers["ap_pad"]["kernel"] == "avgpool 3x3"
    assert "reduce" not in layers["gap"]["kernel"] or "globalaveragepool" in layers["gap"]["kernel"]
    acts = {x["node"]: x for x in projects["activations"].manifest["layers"]}
    assert acts["leaky_u"]["kernel"].endswith("a copy") and acts["abs_u"]["kernel"].endswith("a copy")
    assert acts["min3"]["kernel"].startswith("min (comparators) of 3 inputs")


def test_avgpool_constants(projects):
    """One 1/count per output position where the counts differ, a single constant where they do not (as the
    interpreter's counts: AveragePool._sums)."""
    params = (projects["pools"].path / "firmware" / "parameters.h").read_text()

    def n_scales(node_cname: str) -> int:
        body = params[params.index(f"struct config_{node_cname} {{"):]
        return int(body[body.index("n_scales = ") + len("n_scales = "):body.index(";", body.index("n_scales"))])

    cnames = {x["node"]: f"l{x['index']}_{x['op'].lower()}" for x in projects["pools"].manifest["layers"]}
    assert n_scales(cnames["ap_pad"]) == 16  # border windows count fewer taps
    assert n_scales(cnames["ap_incl"]) == 1  # padding counted: every window counts 6
    assert n_scales(cnames["ap1"]) == 6  # padding counted, but not ceil_mode's reach beyond it


def test_estimate_prices_every_new_kernel(quantized):
    for name in ("pools", "activations", "logic"):
        r = estimate(quantized[name])
        assert r.latency_cycles > 0
        rows = {x.name: x for x in r.layers}
        assert set(rows) == {n.name for n in quantized[name].nodes}
    rows = {x.name: x for x in estimate(quantized["activations"]).layers}
    for cheap in ("relu6", "abs", "neg", "max", "min3", "rmax", "rmin"):
        assert rows[cheap].dsp == 0 and rows[cheap].lut > 0, cheap
    assert rows["leaky_u"].lut == 0 and rows["abs_u"].lut == 0  # copies: wiring
    assert rows["hswish"].dsp >= 4 * 6  # x * gate: one multiplier per element (16 x 18 bits)
    assert rows["prelu"].dsp == rows["leaky"].dsp == 4 * 6  # 16-bit x times a 16-18 bit constant: a DSP each
    pools = {x.name: x for x in estimate(quantized["pools"]).layers}
    assert pools["ap_pad"].latency_cycles >= 4 * 4 * 4  # pipelined over channels and output positions
    assert pools["gap"].lut > 0 and pools["gmp"].lut > 0


def test_estimate_model_pools_and_selects():
    """The equations of docs/estimator.md: an average pool is MaxPool's loop with an adder tree and one multiply by
    1/count (a constant one, or a general multiplier fed by a ROM of per-position constants); a max reduction is a
    chain of compare-and-selects; Clip is two comparators per element."""
    t = m.Timing(5, 2)
    one = m.avgpool(4, 16, 9, 16, 64, 20, (20, 18, 3), 1, t)  # 3 has two signed digits: a real product, in a DSP
    assert one.cycles == m.maxpool(4, 16, 9, 16, 64, t).cycles == 4 * 16 - 1
    assert one.delay_ns == pytest.approx(m.t_mux(4 * 64) + 4 * m.t_add(20) + m.T_DSP_MUL) and one.dsp == 1
    per_position = m.avgpool(4, 16, 9, 16, 64, 20, (20, 18, 3), 16, t)
    assert per_position.dsp == 1 and per_position.lut > one.lut  # + the 16-entry LUT ROM
    shift = m.avgpool(4, 16, 4, 16, 64, 18, (18, 2, 1), 1, t)  # 1/4: a shift, no multiplier
    assert shift.dsp == 0
    reduce_max = m.reduction(4, 64, 1, 16, 16, None, False, t, extremum="max")
    assert reduce_max.delay_ns == pytest.approx(63 * (m.t_add(16) + 0.3)) and reduce_max.lut == 63 * 16
    assert reduce_max.notes == ["4 maxima of 64"]
    assert m.compare_select(8, 16, "clip").lut == 8 * 3 * 16  # two comparators and a 3:1 mux
    assert m.compare_select(8, 16, "max").lut == 8 * (16 + 8)  # a comparator and a 2:1 mux
    hswish = m.scaled_select(6, 16, 18, 16, np.full(6, 3), gate_w=18, clamp_w=36)
    assert hswish.dsp == 6 + 6  # x * q(1/6) and x * gate, a DSP each


def test_fused_relu6_in_a_dense_layer_is_bit_exact(tmp_path):
    rng = np.random.default_rng(2)
    n = helper.make_node
    g = _model("mlp6", {"inputs": {"x": [1, 8]}, "outputs": {"y": [1, 5]},
                        "nodes": [n("Gemm", ["x", "w", "b"], ["h"]), n("Clip", ["h", "zero", "six"], ["y"])],
                        "inits": {"w": rng.normal(0, 1, (8, 5)), "b": rng.normal(0, 1, 5), "zero": np.array(0.0),
                                  "six": np.array(6.0)}})
    assert [(x.op_type, x.op.activation.op_type) for x in g.nodes] == [("Dense", "Clip")]
    q = accelgen.quantize(g, {"x": rng.normal(size=(200, 8)).astype(np.float32)})
    project = compile(q, out_dir=tmp_path / "p")
    assert_bit_exact(q, project, {"x": rng.normal(0, 3, (SAMPLES, 8))})


def test_unsupported_ops_are_still_listed(tmp_path):
    """What remains without a kernel is refused with every op type and node name."""
    for op in ("AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Clip", "LeakyRelu", "PRelu", "HardSigmoid",
               "HardSwish", "Abs", "Neg", "Max", "Min", "ReduceMax", "ReduceMin", "Sum", "Where", "Equal", "Less",
               "LessOrEqual", "Greater", "GreaterOrEqual"):
        assert op in SUPPORTED
    n = helper.make_node
    g = _model("rest", {"inputs": {"a": [1, 6], "b": [1, 6]}, "outputs": {"y": [1, 6], "e": [1, 6]},
                        "nodes": [n("Div", ["a", "b"], ["d"], name="div"), n("Sin", ["d"], ["e"], name="sin"),
                                  n("Relu", ["e"], ["y"], name="relu")], "inits": {}})
    rng = np.random.default_rng(0)
    calib = {"a": rng.normal(size=(50, 6)).astype(np.float32), "b": rng.uniform(1, 2, (50, 6)).astype(np.float32)}
    with pytest.raises(UnsupportedOpsError) as e:  # Div has a kernel now (layers_math.py); Sin never had one
        compile(g, out_dir=tmp_path / "p", calibration=calib)
    assert "Sin" in str(e.value) and "sin" in str(e.value) and "Div" not in str(e.value) and "Relu" not in str(e.value)
