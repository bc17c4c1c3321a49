"""1-D and grouped (depthwise) convolutions and 1-D max pooling in the HLS backend: a 1-D op runs on the 2-D kernels
as an image of height 1, a grouped one reads only its own group's channels. The C simulation equals the fixed-point
interpreter bit for bit in both io forms (io stream's convolutions fed by another layer through the line buffer);
the estimate and compile's fit check count a grouped convolution's real products, not a dense one's."""

import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import accelgen
from accelgen.backends.hls import compile, estimate
from accelgen.backends.hls import estimate_model as m
from accelgen.errors import OptionError
from tests.backends.hls.conftest import interpreter
from tests.backends.hls.test_lint import gxx, lint_problems, needs_gxx

SAMPLES = 200


def conv_model(name: str, x_shape: list[int], y_shape: list[int], layers: list[dict], seed: int = 0):
    """A chain of Conv (+ Relu unless relu=False) and MaxPool nodes on input x: each layer a dict of a "w" shape
    (a Conv with bias, any Conv attributes) or "pool" (the MaxPool attributes). Weights are kept away from zero
    and from powers of two, so every one is a real product."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i, spec in enumerate(layers):
        spec = dict(spec)
        relu = spec.pop("relu", True)
        if "pool" in spec:
            nodes.append(helper.make_node("MaxPool", [x], [f"p{i}"], name=f"pool{i}", **spec["pool"]))
            x = f"p{i}"
            continue
        shape = spec.pop("w")
        fan_in = int(np.prod(shape[1:]))
        w = rng.uniform(0.3, 1.0, shape) * rng.choice([-1, 1], shape) / np.sqrt(fan_in)
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(rng.normal(0, 0.1, shape[0]).astype(np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", **spec))
        x = f"c{i}"
        if relu:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return accelgen.optimize(accelgen.load(model))


# 1-D: a plain conv1d fed by the input, a strided dilated conv1d and a conv1d in 2 groups fed by convolutions (the
# line buffer in io stream), a 1-D max pool with padding, then a depthwise conv1d (channel multiplier 2) after it.
SEQ = ([1, 4, 24], [1, 12, 5], [
    {"w": [6, 4, 3], "pads": [1, 1]},
    {"w": [6, 6, 3], "pads": [2, 1], "strides": [2], "dilations": [2]},
    {"w": [6, 3, 3], "group": 2, "pads": [1, 1]},
    {"pool": {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}},
    {"w": [12, 1, 3], "group": 6, "pads": [1, 0], "relu": False},
])
# 2-D: a plain conv, a strided depthwise 3x3 (MobileNet's), a 3x3 conv in 2 groups with asymmetric padding and a 2x2
# max pool
IMG = ([1, 3, 10, 10], [1, 6, 2, 2], [
    {"w": [8, 3, 3, 3], "pads": [1, 1, 1, 1]},
    {"w": [8, 1, 3, 3], "group": 8, "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"w": [6, 4, 3, 3], "group": 2, "pads": [1, 0, 1, 2]},
    {"pool": {"kernel_shape": [2, 2], "strides": [2, 2]}},
])
MODELS = {"seq": SEQ, "img": IMG}


def quantized_model(name: str):
    """MODELS[name], quantized from 300 unit-normal samples (test_lint.py lints its firmware too)."""
    i = list(MODELS).index(name)
    shape, y_shape, layers = MODELS[name]
    x = np.random.default_rng(10 + i).normal(size=(300, *shape[1:])).astype(np.float32)
    return accelgen.quantize(conv_model(name, shape, y_shape, layers, seed=i), {"x": x})


@pytest.fixture(scope="module")
def quantized():
    return {name: quantized_model(name) for name in MODELS}


@pytest.fixture(scope="module")
def projects(quantized, tmp_path_factory):
    """Each model in both io forms; the C-sim libraries are built on first predict."""
    root = tmp_path_factory.mktemp("conv_forms")
    return {(name, io): compile(q, out_dir=root / f"{name}_{io}", io=io)
            for name, q in quantized.items() for io in ("parallel", "stream")}


def test_graphs_have_the_forms(quantized):
    """The optimizer keeps the forms under test: FusedConv/Conv with their groups, 1-D and 2-D."""
    seq = [(n.op_type, getattr(n.op.op, "conv", n.op.op).group if "Conv" in n.op_type else None,
            len(n.inputs[0].shape)) for n in quantized["seq"].nodes]
    assert seq == [("FusedConv", 1, 3), ("FusedConv", 1, 3), ("FusedConv", 2, 3), ("MaxPool", None, 3),
                   ("Conv", 6, 3)]
    img = [(n.op_type, getattr(n.op.op, "conv", n.op.op).group if "Conv" in n.op_type else None)
           for n in quantized["img"].nodes]
    assert img == [("FusedConv", 1), ("FusedConv", 8), ("FusedConv", 2), ("MaxPool", None)]


@pytest.mark.parametrize("io", ["parallel", "stream"])
@pytest.mark.parametrize("name", list(MODELS))
def test_csim_bit_exact(quantized, projects, name, io):
    q = quantized[name]
    shape = q.inputs[0].shape
    x = np.random.default_rng(20).normal(0, 1.5, (SAMPLES, *shape[1:]))  # wider than calibration: saturation too
    np.testing.assert_array_equal(projects[name, io].predict({"x": x})["y"], interpreter(q, "x", x))


@pytest.mark.parametrize("name", list(MODELS))
def test_stream_convolutions_fed_by_a_layer_use_the_line_buffer(projects, name):
    code = (projects[name, "stream"].path / "firmware" / f"{projects[name, 'stream'].top}.cpp").read_text()
    convs = len(MODELS[name][2]) - 1  # every layer but the pool is a convolution; the first reads the input port
    assert len(re.findall(r"ag::conv2d_line_buffer<", code)) == convs - 1
    assert len(re.findall(r"ag::conv2d<", code)) == 1


def test_kernel_configs(projects):
    """A 1-D layer is the 2-D kernel at height 1; a grouped one stores group_in_c channels per output."""
    params = (projects["seq", "parallel"].path / "firmware" / "parameters.h").read_text()

    def config(cname: str) -> dict[str, int]:
        body = params[params.index(f"struct config_{cname} {{"):]
        body = body[:body.index("};")]
        return {k: int(v) for k, v in re.findall(r"static const \w+ (\w+) = (-?\d+);", body)}

    second = config("l1_fusedconv")
    assert {k: second[k] for k in ("in_h", "k_h", "stride_h", "dilation_h", "pad_top", "out_h")} == \
        {"in_h": 1, "k_h": 1, "stride_h": 1, "dilation_h": 1, "pad_top": 0, "out_h": 1}
    assert (second["in_w"], second["k_w"], second["stride_w"], second["dilation_w"], second["pad_left"],
            second["out_w"]) == (24, 3, 2, 2, 2, 12)
    grouped, depthwise = config("l2_fusedconv"), config("l4_conv")
    assert (grouped["groups"], grouped["group_in_c"], grouped["group_out_c"]) == (2, 3, 3)
    assert (depthwise["groups"], depthwise["group_in_c"], depthwise["group_out_c"]) == (6, 1, 2)
    pool = config("l3_maxpool")
    assert (pool["in_h"], pool["k_h"], pool["in_w"], pool["k_w"], pool["out_w"]) == (1, 1, 12, 3, 6)


def test_multipliers_are_the_real_products(projects):
    """Per output pixel: out_c * group_in_c * taps, no multiplier for another group's channels."""
    layers = {x["node"]: x for x in projects["img", "parallel"].manifest["layers"]}
    assert layers["conv1_0"]["multipliers"] == 8 * 3 * 3 and "depthwise conv2d" in layers["conv1_0"]["kernel"]
    assert layers["conv2_0"]["multipliers"] == 6 * 4 * 3 * 3 and "conv2d in 2 groups" in layers["conv2_0"]["kernel"]
    seq = {x["node"]: x for x in projects["seq", "parallel"].manifest["layers"]}
    assert seq["conv4"]["multipliers"] == 12 * 3 and seq["conv0_0"]["kernel"].startswith("conv1d ")
    assert seq["pool3"]["kernel"] == "maxpool1d 3"


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_firmware_lint_clean(projects, io):
    for name in MODELS:
        assert lint_problems(projects[name, io]) == []


@needs_gxx
def test_stream_firmware_front_end_is_warning_free_with_werror(projects):
    """test_lint.py builds io parallel projects; the line-buffered kernel is io stream's."""
    for name in MODELS:
        done = gxx(projects[name, "stream"], "-fsyntax-only", "-Werror")
        assert done.returncode == 0, done.stderr[-4000:]


def test_estimate_depthwise_dsp_is_channels_times_taps(quantized):
    """Latency form (16-bit products in DSPs, no weight a power of two): the depthwise layer's DSPs are C * K * K,
    the grouped one's out_c * (in_c / 2) * K * K, each a product of one output pixel; the adder trees sum only the
    group's products."""
    q = quantized["img"]
    rows = {r.name: r for r in estimate(q).layers}
    nodes = {n.name: n for n in q.nodes}
    for name, products in (("conv1_0", 8 * 3 * 3), ("conv2_0", 6 * 4 * 3 * 3)):
        node = nodes[name]
        per = m.dsp_per_product(node.inputs[0].dtype.width, node.inputs[1].dtype.width)
        assert per == 1 and rows[name].dsp == products
        assert f"{products} multipliers per pixel" in rows[name].kernel
    assert rows["conv1_0"].latency_cycles >= 5 * 5 and rows["conv2_0"].latency_cycles >= 5 * 5


def test_estimate_model_groups():
    """The grouped model: same multipliers as its weights, a shallower adder tree than a dense conv of the same
    input reads (in_c * taps) would have."""
    t = m.Timing(5, 2)
    raw = np.full(64 * 9, 3)  # 64 channels, 3x3 depthwise: 576 products of two signed digits each
    depthwise = m.conv2d(16, 16, 64 * 9, 64, raw, 16, 16, 32, t, groups=64)
    dense_reads = m.conv2d(16, 16, 64 * 9, 64, raw, 16, 16, 32, t)
    assert depthwise.dsp == 576 and depthwise.delay_ns < dense_reads.delay_ns
    assert depthwise.delay_ns == pytest.approx(m.t_mux(16) + m.T_DSP_MUL + m.tree_depth(10) * m.t_add(32))


def test_stream_estimate_composes_the_new_forms(quantized):
    r = estimate(quantized["seq"], io="stream")
    assert r.config["top level"] == "DATAFLOW of FIFO-linked processes" and r.latency_cycles > 0
    assert [x.kernel.split(" parallel")[0] for x in r.layers if "conv" in x.kernel] == \
        ["conv1d", "conv1d", "conv1d in 2 groups", "depthwise conv1d"]


def test_fit_check_counts_a_depthwise_layer_s_products(tmp_path):
    """On a 220-DSP part a depthwise 5x5 over 8 channels (200 multipliers) fits, where a dense 8-to-8 5x5 (1600)
    would not; over 16 channels (400) it does not, and the error says so."""
    x = np.random.default_rng(3).normal(size=(50, 16, 6, 6)).astype(np.float32)
    for channels, fits in ((8, True), (16, False)):
        g = conv_model("dw", [1, channels, 6, 6], [1, channels, 6, 6],
                       [{"w": [channels, 1, 5, 5], "group": channels, "pads": [2] * 4}])
        q = accelgen.quantize(g, {"x": x[:, :channels]})
        if fits:
            project = compile(q, out_dir=tmp_path / "fits", part="xc7z020-clg400-1")
            assert project.manifest["multipliers"] == channels * 25
        else:
            with pytest.raises(OptionError, match="needs 400 multipliers in parallel but xc7z020"):
                compile(q, out_dir=tmp_path / "too_big", part="xc7z020-clg400-1")
