"""Bad requests give one clear accelgen error each, and write nothing."""

import onnx
import onnx.parser
import pytest

import accelgen
from accelgen.backends.hls import compile
from accelgen.errors import OptionError, UnsupportedOpsError


def test_unknown_part(jet_graph, tmp_path):
    with pytest.raises(OptionError, match="unknown FPGA part 'xc-nonexistent'"):
        compile(jet_graph[1], out_dir=tmp_path / "p", part="xc-nonexistent")
    assert not (tmp_path / "p").exists()


def test_reuse_factor_must_divide(jet_graph, tmp_path):
    with pytest.raises(OptionError, match=r"reuse factor 3 does not divide its 1024 multiplications \(16x64\)"):
        compile(jet_graph[1], out_dir=tmp_path / "p", strategy="resource", reuse_factor=3)
    assert not (tmp_path / "p").exists()


def test_existing_folder_needs_force(jet_graph, tmp_path):
    out = tmp_path / "p"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OptionError, match="already exists; pass --force"):
        compile(jet_graph[1], out_dir=out)
    compile(jet_graph[1], out_dir=out, force=True)
    assert (out / "notes.txt").read_text() == "mine"  # force replaces only what accelgen writes


def test_unsupported_ops_listed_at_once(tmp_path):
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8] x) => (float[1,8] y) { a = Sin(x) \n b = Cos(a) \n c = Sin(b) \n y = Add(c, x) }""")
    for node, name in zip(model.graph.node, ["sin1", "cos1", "sin2", "add"]):
        node.name = name
    with pytest.raises(UnsupportedOpsError) as e:
        compile(accelgen.load(model), out_dir=tmp_path / "p", calibration={"x": None})
    text = str(e.value)
    assert "Sin x2 ('sin1', 'sin2')" in text and "Cos x1 ('cos1')" in text and "Add" not in text
    assert not (tmp_path / "p").exists()


def test_float_graph_needs_calibration(jet_graph, tmp_path):
    with pytest.raises(OptionError, match="needs calibration data"):
        compile(jet_graph[0], out_dir=tmp_path / "p", precision="fixed<16,6>")


@pytest.mark.parametrize("options, message", [
    ({"tune_trials": 10}, "--tune-trials means nothing for the hls target"),
    ({"io": "stream"}, "io stream is not implemented"),
    ({"strategy": "fast"}, "strategy must be one of latency, resource"),
    ({"clock_ns": 0}, "clock period must be a positive"),
    ({"reuse_factor": 0}, "reuse factor must be a positive integer"),
])
def test_bad_options(jet_graph, tmp_path, options, message):
    with pytest.raises(OptionError, match=message):
        compile(jet_graph[1], out_dir=tmp_path / "p", **options)


def test_fully_unrolled_layer_must_fit_the_part(jet_graph, tmp_path):
    with pytest.raises(OptionError, match=r"layer ./net/net.0/Gemm_0_0. \(Dense\) needs 1024 multipliers in parallel but xc7z020clg400-1 has 220 DSPs"):
        compile(jet_graph[1], out_dir=tmp_path / "p", part="xc7z020clg400-1")


def test_per_layer_config(jet_graph, tmp_path):
    q = jet_graph[1]
    name = q.nodes[1].name
    project = compile(q, out_dir=tmp_path / "p", config={name: {"strategy": "resource", "reuse_factor": 8}})
    kernels = [layer["kernel"] for layer in project.manifest["layers"]]
    assert kernels[1] == "dense resource, reuse 8, 256 multipliers" and kernels[0].startswith("dense latency")
