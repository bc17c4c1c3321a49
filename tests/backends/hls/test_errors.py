"""Bad requests give one clear accelgen error each, and write nothing (through the API and the CLI)."""

import numpy as np
import onnx
import onnx.parser
import pytest

import accelgen
from accelgen.backends.hls import compile
from accelgen.cli import main
from accelgen.errors import OptionError, UnsupportedOpsError
from tests.quant.datasets import ROOT

JET_ONNX = ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx"


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
    ({"io": "serial"}, "io must be one of parallel, stream, got 'serial'"),
    ({"strategy": "latency", "reuse_factor": 4}, "strategy latency is fully parallel and has no reuse factor"),
    ({"config": {"Dense": {"strategy": "latency", "reuse_factor": 2}}},
     "config 'Dense': strategy latency is fully parallel"),
    ({"config": {"Dens": {"reuse_factor": 2}}}, r"config names \['Dens'\] match no layer"),
    ({"config": {"Softmax": {"reuse_factor": 2}}}, "its HLS kernel has no reuse factor"),
    ({"strategy": "fast"}, "strategy must be one of latency, resource"),
    ({"clock_ns": 0}, "clock period must be a positive"),
    ({"reuse_factor": 0}, "reuse factor must be a positive integer"),
])
def test_bad_options(jet_graph, tmp_path, options, message):
    with pytest.raises(OptionError, match=message):
        compile(jet_graph[1], out_dir=tmp_path / "p", **options)


def test_fully_unrolled_layer_must_fit_the_part(jet_graph, tmp_path):
    with pytest.raises(OptionError, match=r"layer ./net/net.0/Gemm_0_0. \(Dense\) needs 1024 multipliers in parallel "
                       r"but xc7z020clg400-1 has 220 DSPs; use strategy resource .* --reuse-factor 8\b"):
        compile(jet_graph[1], out_dir=tmp_path / "p", part="xc7z020clg400-1")
    assert not (tmp_path / "p").exists()
    # the suggested reuse factor fits: 16x64 / 8 = 128 <= 220, and the 64x32 layer needs 2048 / 16 = 128
    project = compile(jet_graph[1], out_dir=tmp_path / "p", part="xc7z020clg400-1", reuse_factor=16)
    assert max(layer["multipliers"] for layer in project.manifest["layers"]) <= 220


def test_per_layer_config(jet_graph, tmp_path):
    q = jet_graph[1]
    name = q.nodes[1].name
    project = compile(q, out_dir=tmp_path / "p", config={name: {"strategy": "resource", "reuse_factor": 8}})
    kernels = [layer["kernel"] for layer in project.manifest["layers"]]
    assert kernels[1] == "dense resource, reuse 8, 256 multipliers" and kernels[0].startswith("dense latency")


def test_reuse_factor_alone_means_resource(jet_graph, tmp_path):
    q = jet_graph[1]
    project = compile(q, out_dir=tmp_path / "p", reuse_factor=4)
    assert project.manifest["options"]["strategy"] == "resource"
    assert project.manifest["layers"][0]["kernel"] == "dense resource, reuse 4, 256 multipliers"


def test_per_layer_config_from_yaml_by_op_type_and_name(jet_graph, tmp_path):
    """Op-type entries apply to every layer of that type, node names override them; strategy latency on a layer
    means reuse factor 1 there even when the global reuse factor is larger."""
    q = jet_graph[1]
    first, last = q.nodes[0].name, q.nodes[3].name
    (tmp_path / "layers.yaml").write_text(f"Dense:\n  reuse_factor: 16\n'{first}':\n  reuse_factor: 2\n"
                                          f"'{last}':\n  strategy: latency\n")
    project = compile(q, out_dir=tmp_path / "p", config=tmp_path / "layers.yaml", strategy="resource",
                      reuse_factor=4)
    kernels = [layer["kernel"] for layer in project.manifest["layers"]]
    assert kernels[:3] == ["dense resource, reuse 2, 512 multipliers", "dense resource, reuse 16, 128 multipliers",
                           "dense resource, reuse 16, 64 multipliers"]
    assert kernels[3].startswith("dense latency")


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def cli_setup(tmp_path, monkeypatch):
    """A working folder holding only the calibration data; the CLI runs in it."""
    from tests.quant.datasets import jets

    x, _ = jets(200, seed=3)
    np.savez(tmp_path / "calib.npz", input=x)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("flags, message", [
    (["--part", "xc-nonexistent"], "unknown FPGA part 'xc-nonexistent'"),
    (["--strategy", "resource", "--reuse-factor", "3"], "reuse factor 3 does not divide its 1024 multiplications"),
    (["--strategy", "latency", "--reuse-factor", "2"], "strategy latency is fully parallel"),
    (["--part", "xc7z020clg400-1"], "needs 1024 multipliers in parallel but xc7z020clg400-1 has 220 DSPs"),
])
def test_cli_bad_requests_exit_2_and_write_nothing(cli_setup, capsys, flags, message):
    before = _tree(cli_setup)
    argv = ["compile", str(JET_ONNX), "--target", "hls", "--out", "prj", "--calibration", "calib.npz", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("accelgen: error: ") and message in err and "Traceback" not in err
    assert _tree(cli_setup) == before


def test_cli_existing_folder_needs_force(cli_setup, capsys):
    (cli_setup / "prj").mkdir()
    (cli_setup / "prj" / "notes.txt").write_text("mine")
    before = _tree(cli_setup)
    argv = ["compile", str(JET_ONNX), "--target", "hls", "--out", "prj", "--calibration", "calib.npz"]
    assert main(argv) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert _tree(cli_setup) == before
    assert main([*argv, "--force", "--io", "stream"]) == 0
    assert "io stream" in (cli_setup / "prj" / "README.md").read_text()
    assert (cli_setup / "prj" / "notes.txt").read_text() == "mine"
    assert {p.split("/")[0] for p in _tree(cli_setup)} == {"calib.npz", "prj"}  # nothing beside the project


def test_cli_unsupported_ops_listed_at_once(cli_setup, capsys):
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8] x) => (float[1,8] y) { a = Sin(x) \n b = Cos(a) \n c = Sin(b) \n y = Add(c, x) }""")
    onnx.save(model, cli_setup / "m.onnx")
    np.savez(cli_setup / "x.npz", x=np.zeros((4, 8), np.float32))
    before = _tree(cli_setup)
    assert main(["compile", "m.onnx", "--target", "hls", "--out", "prj", "--calibration", "x.npz"]) == 2
    err = capsys.readouterr().err
    assert "Sin x2" in err and "Cos x1" in err and "Add" not in err
    assert _tree(cli_setup) == before


def test_cli_per_layer_config_yaml(cli_setup, capsys):
    (cli_setup / "layers.yaml").write_text("Dense:\n  reuse_factor: 16\n'/net/net.6/Gemm_0':\n  strategy: latency\n")
    argv = ["compile", str(JET_ONNX), "--target", "hls", "--out", "prj", "--calibration", "calib.npz",
            "--config", "layers.yaml", "--io", "stream"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "dense resource, reuse 16, 64 multipliers" in out and "dense latency, 160 multipliers" in out
    (cli_setup / "bad.yaml").write_text("Dense:\n  strategy: latency\n  reuse_factor: 4\n")
    assert main([*argv[:-4], "--config", "bad.yaml", "--out", "prj2"]) == 2
    assert "config 'Dense': strategy latency is fully parallel" in capsys.readouterr().err
    assert not (cli_setup / "prj2").exists()
