"""io stream: layers as DATAFLOW processes joined by hls::stream FIFOs. The C simulation equals the fixed-point
interpreter (and so the io parallel design) bit for bit; the generated code has the stream structure and pragmas,
passes the synthesizability lint, and its Vitis testbench builds warning-free and passes."""

import re
import subprocess

import numpy as np
import pytest

import accelgen
from accelgen.backends.hls import compile
from tests.backends.hls.conftest import interpreter
from tests.backends.hls.test_firmware import (
    FORBIDDEN,
    firmware_files,
    needs_gxx,
    strip_comments,
)
from tests.onnxmodels import const, text_model
from tests.quant.datasets import jets


@pytest.fixture(scope="module")
def jet_stream(jet_graph, tmp_path_factory):
    _, q, calib = jet_graph
    return compile(q, out_dir=tmp_path_factory.mktemp("hls") / "jet_stream", io="stream", calibration=calib)


@pytest.fixture(scope="module")
def cnn_stream(cnn_graph, tmp_path_factory):
    _, q, calib, _ = cnn_graph
    return compile(q, out_dir=tmp_path_factory.mktemp("hls") / "cnn_stream", io="stream", calibration=calib)


def test_jet_mlp_stream_bit_exact(jet_graph, jet_stream, jet_project):
    _, q, _ = jet_graph
    x, _ = jets(300, seed=11)
    y = jet_stream.predict({"input": x})["output"]
    np.testing.assert_array_equal(y, interpreter(q, "input", x))
    np.testing.assert_array_equal(y, jet_project.predict({"input": x})["output"])  # = io parallel


def test_jet_mlp_stream_resource_bit_exact(jet_graph, tmp_path):
    _, q, _ = jet_graph
    project = compile(q, out_dir=tmp_path / "p", io="stream", strategy="resource", reuse_factor=8)
    x, _ = jets(300, seed=12)
    np.testing.assert_array_equal(project.predict({"input": x})["output"], interpreter(q, "input", x))


def test_digits_cnn_stream_bit_exact(cnn_graph, cnn_stream):
    _, q, _, d = cnn_graph
    x = d["test"][300:600]
    np.testing.assert_array_equal(cnn_stream.predict({"image": x})[q.outputs[0].name], interpreter(q, "image", x))


@pytest.fixture(scope="module")
def fanout(tmp_path_factory):
    """The input feeds two layers (a fan-out process copies it) and r is both an output and read by the Add."""
    rng = np.random.default_rng(5)
    g = text_model("(float[1,16] x) => (float[1,16] r, float[1,16] y)",
                   [const("w", rng.normal(0, 0.3, (16, 16)).astype(np.float32)),
                    const("b", rng.normal(0, 0.1, 16).astype(np.float32))],
                   "a = MatMul(x, w)\nc = Add(a, b)\nr = Relu(c)\ny = Add(r, x)")
    x = rng.normal(0, 1, (300, 16)).astype(np.float32)
    q = accelgen.quantize(accelgen.optimize(g), {"x": x})
    return q, compile(q, out_dir=tmp_path_factory.mktemp("hls") / "fanout", io="stream", calibration={"x": x})


def test_fanout_and_output_read_by_a_layer(fanout):
    q, project = fanout
    code = (project.path / "firmware" / f"{project.top}.cpp").read_text()
    # one-letter graph names get a tensor_ prefix in C (they could clash with the templates' locals)
    assert "void tensor_x_fanout(" in code and "tensor_x_to_l0_dense" in code and "tensor_x_to_l1_add" in code
    x = np.random.default_rng(6).normal(0, 1.5, (300, 16))
    got = project.predict({"x": x})
    for name in ("r", "y"):
        want = np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})[name] for i in range(len(x))])
        np.testing.assert_array_equal(got[name], want)


def test_stream_structure_and_pragmas(jet_stream):
    top = jet_stream.top
    header = (jet_stream.path / "firmware" / f"{top}.h").read_text()
    assert (f"void {top}(hls::stream<input_frame_t> &input_stream, hls::stream<output_frame_t> &output_stream);"
            in header)
    code = (jet_stream.path / "firmware" / f"{top}.cpp").read_text()
    assert "#pragma HLS DATAFLOW" in code and "#pragma HLS PIPELINE" not in code
    assert "#pragma HLS INTERFACE axis port = input_stream" in code
    depths = re.findall(r"#pragma HLS STREAM variable = (\w+) depth = (\d+)", code)
    assert len(depths) == 4 and all(d == "1" for _, d in depths)  # one frame per tensor of the MLP
    assert len(re.findall(r"^void l\d+_\w+_stage\(", code, re.MULTILINE)) == 5
    assert jet_stream.manifest["options"]["io"] == "stream"


def test_stream_fifo_depth_is_the_tensor_in_frames(cnn_stream):
    code = (cnn_stream.path / "firmware" / f"{cnn_stream.top}.cpp").read_text()
    depths = [int(d) for d in re.findall(r"depth = (\d+)", code)]
    assert depths and max(depths) > 1  # images stream row by row: a FIFO holds every row of every channel


@pytest.mark.parametrize("which", ["jet_stream", "cnn_stream", "fanout"])
def test_stream_firmware_lint_clean(which, request):
    project = request.getfixturevalue(which)
    project = project[1] if isinstance(project, tuple) else project
    problems = [f"{p.name}: {what}" for p in firmware_files(project)
                for pattern, what in FORBIDDEN.items() if re.search(pattern, strip_comments(p.read_text()))]
    assert problems == []


@needs_gxx
@pytest.mark.parametrize("which, weight_files", [("jet_stream", True), ("cnn_stream", False)])
def test_stream_testbench_builds_warning_free_and_passes(which, weight_files, request, tmp_path):
    """Both ways the testbench can get its weights: literals (as synthesis) and the .bin files (as csim)."""
    project = request.getfixturevalue(which)
    top = project.top
    exe = tmp_path / "csim_test"
    flags = ["-DAG_CSIM_WEIGHT_FILES"] if weight_files else []
    build = subprocess.run(["g++", "-std=c++14", "-O1", "-Wall", "-Wextra", "-Wno-unknown-pragmas",
                            "-Wno-free-nonheap-object", *flags, "-isystem", "ap_types", f"tb/{top}_test.cpp",
                            f"firmware/{top}.cpp", "-o", str(exe)],
                           cwd=project.path, capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    assert [line for line in build.stderr.splitlines()
            if re.match(r"(firmware|tb|csim)/[^:]+:\d+(:\d+)?: (warning|error)", line)] == []
    run = subprocess.run([str(exe)], cwd=project.path, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "10 samples, 0 differ" in run.stdout


def test_encoder_block_stream_bit_exact(tmp_path):
    """Self-attention reads one tensor as queries and keys/values (one FIFO, read once); the residual Adds read
    tensors that also feed other layers (fan-out FIFOs)."""
    from tests.backends.hls.encoder_models import encoder_graph

    g = encoder_graph(seq=8, features=16, d_model=16, heads=2, ffn=32, blocks=1)
    rng = np.random.default_rng(7)
    q = accelgen.quantize(g, {"x": rng.normal(size=(200, 8, 16)).astype(np.float32)})
    assert "MultiHeadAttention" in [n.op_type for n in q.nodes]
    project = compile(q, out_dir=tmp_path / "enc", io="stream")
    x = rng.normal(size=(100, 8, 16))
    want = np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})["y"] for i in range(len(x))])
    np.testing.assert_array_equal(project.predict({"x": x})["y"], want)


def test_jet_transformer_stream_bit_exact(tmp_path):
    """The reference work's jet tagger shape (15 particles x 6 features, 3 pre-norm blocks, 2 heads)."""
    from tests.quant.datasets import ROOT

    data = np.load(ROOT / "examples" / "jet_transformer" / "sample.npz")
    g = accelgen.optimize(accelgen.load(str(ROOT / "examples" / "jet_transformer" / "jet_transformer.onnx")))
    q = accelgen.quantize(g, {"x": data["calibration"]})
    project = compile(q, out_dir=tmp_path / "jt", io="stream")
    code = (project.path / "firmware" / f"{project.top}.cpp").read_text()
    # every Dense, LayerNorm and Add runs frame by frame, every attention token by token (its own loops read and
    # write the FIFOs); only the mean over tokens and the 1-token head take whole tensors
    assert code.count("one frame of each tensor per iteration") == 20
    assert code.count("ag::multihead_attention_stream<") == 3
    from tests.backends.hls.test_lint import gxx, lint_problems

    assert lint_problems(project) == []
    done = gxx(project, "-fsyntax-only", "-Werror")
    assert done.returncode == 0, done.stderr[-4000:]
    x, out = data["test"], q.outputs[0].name
    want = np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})[out] for i in range(len(x))])
    np.testing.assert_array_equal(project.predict({"x": x})[out], want)


def test_line_buffered_convolutions_of_every_geometry_bit_exact(tmp_path):
    """Convolutions fed by another layer read pixel frames through a line buffer: strides, asymmetric padding,
    dilation and rectangular kernels, each equal to the interpreter (the first conv reads the input port)."""
    rng = np.random.default_rng(8)

    def w(name, *shape):
        return const(name, rng.normal(0, 0.4, shape).astype(np.float32))

    g = text_model("(float[1,3,13,11] x) => (float[1,3,3,2] y)",
                   [w("w1", 4, 3, 3, 3), w("w2", 5, 4, 3, 3), w("w3", 4, 5, 3, 3), w("w4", 3, 4, 4, 2),
                    w("b2", 5)],
                   "a = Conv <pads = [1, 1, 1, 1]> (x, w1)\nr = Relu(a)\n"
                   "b = Conv <strides = [2, 2], pads = [1, 0, 0, 1]> (r, w2, b2)\n"
                   "c = Conv <dilations = [2, 2], pads = [2, 2, 2, 2]> (b, w3)\n"
                   "y = Conv <strides = [1, 2]> (c, w4)")
    q = accelgen.quantize(accelgen.optimize(g), {"x": rng.normal(size=(200, 3, 13, 11)).astype(np.float32)})
    project = compile(q, out_dir=tmp_path / "conv", io="stream")
    code = (project.path / "firmware" / f"{project.top}.cpp").read_text()
    assert code.count("ag::conv2d_line_buffer<") == 3 and code.count("ag::write_pixels<") == 3
    x = rng.normal(size=(200, 3, 13, 11))
    want = np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})["y"] for i in range(len(x))])
    np.testing.assert_array_equal(project.predict({"x": x})["y"], want)


def test_line_buffered_pooling_bit_exact(tmp_path):
    """Max and average pooling fed by another layer read pixel frames through a line buffer too (padding, strides,
    dilation, ceil mode, count_include_pad), each equal to the interpreter; the firmware passes the lint and
    -Werror."""
    from tests.backends.hls.test_lint import gxx, lint_problems

    rng = np.random.default_rng(9)

    def w(name, *shape):
        return const(name, rng.normal(0, 0.4, shape).astype(np.float32))

    g = text_model("(float[1,3,12,11] x) => (float[1,2,3,3] y)",
                   [w("w1", 4, 3, 3, 3), w("w2", 2, 4, 3, 3)],
                   "a = Conv <pads = [1, 1, 1, 1]> (x, w1)\n"
                   "p = MaxPool <kernel_shape = [3, 2], strides = [2, 1], pads = [1, 0, 1, 1], dilations = [1, 2]> (a)\n"
                   "b = Conv <pads = [1, 1, 1, 1]> (p, w2)\n"
                   "y = AveragePool <kernel_shape = [3, 3], strides = [2, 3], pads = [1, 1, 1, 1], ceil_mode = 1, "
                   "count_include_pad = 1> (b)")
    q = accelgen.quantize(accelgen.optimize(g), {"x": rng.normal(size=(200, 3, 12, 11)).astype(np.float32)})
    project = compile(q, out_dir=tmp_path / "pool", io="stream")
    code = (project.path / "firmware" / f"{project.top}.cpp").read_text()
    assert code.count("ag::maxpool2d_line_buffer<") == 1 and code.count("ag::avgpool2d_line_buffer<") == 1
    assert lint_problems(project) == []
    done = gxx(project, "-fsyntax-only", "-Werror")
    assert done.returncode == 0, done.stderr[-4000:]
    x = 2 * rng.normal(size=(150, 3, 12, 11)).astype(np.float32)
    want = np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})["y"] for i in range(len(x))])
    np.testing.assert_array_equal(project.predict({"x": x})["y"], want)


def test_jet_transformer_stream_resource_bit_exact(tmp_path):
    """With strategy resource the frame-by-frame Dense processes spend their reuse factor on each token (their frame
    loop is not pipelined); the LayerNorm and Add ones still pipeline."""
    from tests.quant.datasets import ROOT

    data = np.load(ROOT / "examples" / "jet_transformer" / "sample.npz")
    g = accelgen.optimize(accelgen.load(str(ROOT / "examples" / "jet_transformer" / "jet_transformer.onnx")))
    q = accelgen.quantize(g, {"x": data["calibration"]})
    project = compile(q, out_dir=tmp_path / "jt", io="stream", strategy="resource", reuse_factor=4)
    code = (project.path / "firmware" / f"{project.top}.cpp").read_text()
    assert code.count("one frame of each tensor per iteration") == 20 and code.count("PIPELINE II = 1") == 13
    x, out = data["test"][:100], q.outputs[0].name
    want = np.concatenate([accelgen.run(q, {"x": x[i:i + 1]})[out] for i in range(len(x))])
    np.testing.assert_array_equal(project.predict({"x": x})[out], want)
