"""The command line: inspect, run, and one-line errors with exit status 2."""

import pickle
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, parser

from accelgen.cli import common as cli
from accelgen.cli import main
from accelgen.errors import AccelgenError

MLP = """<ir_version: 8, opset_import: ["" : 17]>
g (float[N,4] x) => (float[N,3] y) <float[4,3] w = {1,2,3,4,5,6,7,8,9,10,11,12}, float[3] b = {1,1,1}> {
    h = MatMul(x, w)
    z = Add(h, b)
    y = Relu(z)
}"""


@pytest.fixture
def mlp(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(parser.parse_model(MLP), path)
    return path


def test_inspect_table(mlp, capsys):
    assert main(["inspect", str(mlp), "--input-shape", "x=2x4"]) == 0
    out = capsys.readouterr().out
    assert "MatMul" in out and "2x3" in out and "24" in out  # 2*4*3 MACs
    assert "total: 3 nodes, 15 parameters, 24 MACs" in out


def test_inspect_ir(mlp, capsys):
    assert main(["inspect", str(mlp), "--ir"]) == 0
    assert "MatMul(%x, @w)" in capsys.readouterr().out


def test_run_to_npz(mlp, tmp_path, capsys):
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    assert main(["run", str(mlp), "--input", f"x={tmp_path / 'x.npy'}", "--output", str(out)]) == 0
    w = np.arange(1, 13, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(np.load(out)["y"], np.maximum(x @ w + 1, 0))
    assert main(["run", str(mlp), "--input", f"x={tmp_path / 'x.npy'}", "--output", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["run", str(mlp), "--input", f"x={tmp_path / 'x.npy'}", "--output", str(out), "--force"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["inspect", "missing.onnx"], "no such file"),
    (["inspect", "MODEL", "--input-shape", "x=1xq"], "integers"),
    (["inspect", "MODEL", "--input-shape", "q=1x4"], "'q'"),
    (["run", "MODEL", "--input", "x=none.npy"], "no such file"),
    (["run", "MODEL"], "missing 'x'"),
])
def test_user_errors_are_one_line_exit_2(mlp, capsys, argv, message):
    argv = [str(mlp) if a == "MODEL" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("accelgen: error:") and message in err and len(err.strip().splitlines()) == 1


def test_console_script_and_debug(mlp):
    r = subprocess.run([sys.executable, "-m", "accelgen.cli", "inspect", "nope.onnx"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "accelgen.cli", "--debug", "inspect", "nope.onnx"], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "Traceback" in r.stderr


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("accelgen: error:") and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("shape, message", [
    ("=1x2", "expected NAME="),
    ("x", "expected NAME="),
    ("x=1x-2", "non-negative integers"),
    ("x=1.5", "non-negative integers"),
    ("x=1x", "non-negative integers"),
    ("x=1_0x4", "non-negative integers"),  # int() would read 10
    ("x=+1x4", "non-negative integers"),
    ("x=", "rank 2"),  # a scalar shape, for a rank-2 input
    ("x=99999999999999999999x4", "elements"),
])
def test_malformed_input_shapes(mlp, capsys, shape, message):
    assert main(["inspect", str(mlp), "--input-shape", shape]) == 2
    assert message in _err(capsys)


def test_input_shape_given_twice(mlp, capsys):
    assert main(["inspect", str(mlp), "--input-shape", "x=1x4", "--input-shape", "x=2x4"]) == 2
    assert "already given" in _err(capsys)


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((1, 4), np.float32))
    np.savez(tmp_path / "other.npz", a=np.ones((1, 4), np.float32))
    with open(tmp_path / "pickled.npy", "wb") as f:
        pickle.dump({"x": 1}, f)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "folder.npy").mkdir()
    return tmp_path


@pytest.mark.parametrize("spec, message", [
    ("x=other.npz", "the archive has no array 'x'"),
    ("other.npz", "no such input; the model's inputs are 'x' (shapes taken from the --input data: a=1x4)"),
    ("x=pickled.npy", "pickled Python objects, which accelgen never loads"),
    ("x=objects.npy", "pickled Python objects"),
    ("x=empty.npy", "not a valid .npy/.npz file"),
    ("x=folder.npy", "is a folder"),
    ("=x.npy", "expected NAME=FILE.npy"),
])
def test_bad_input_files(mlp, files, capsys, monkeypatch, spec, message):
    monkeypatch.chdir(files)
    assert main(["run", str(mlp), "--input", spec]) == 2
    assert message in _err(capsys)


def test_input_given_twice(mlp, files, capsys, monkeypatch):
    monkeypatch.chdir(files)
    assert main(["run", str(mlp), "--input", "x=x.npy", "--input", "x=x.npy"]) == 2
    assert "already given" in _err(capsys)


def test_input_path_containing_an_equals_sign(mlp, tmp_path, capsys):
    folder = tmp_path / "lr=0.1"
    folder.mkdir()
    np.savez(folder / "inputs.npz", x=np.ones((1, 4), np.float32))
    assert main(["run", str(mlp), "--input", str(folder / "inputs.npz")]) == 0
    assert "[[23. 27. 31.]]" in capsys.readouterr().out


def test_input_shape_and_data_shapes_combine(tmp_path, capsys):
    # --input-shape fixes one input; the data fixes the other (it used to be ignored once any --input-shape was given).
    path = tmp_path / "add.onnx"
    onnx.save(parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[A,B] x, float[C,D] z) => (float[A,B] y) { y = Add(x, z) }"""), path)
    np.save(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    np.save(tmp_path / "z.npy", np.ones((2, 3), np.float32))
    assert main(["run", str(path), "--input", f"x={tmp_path / 'x.npy'}", "--input", f"z={tmp_path / 'z.npy'}",
                 "--input-shape", "x=2x3"]) == 0
    assert "float32[2, 3]" in capsys.readouterr().out


@pytest.mark.parametrize("output, message", [
    ("missing/out.npz", "the folder 'missing' does not exist"),
    ("x.npy/out.npz", "does not exist"),  # a file where a folder should be
    (".", "is a folder"),
    ("", "needs a file name"),
])
def test_bad_output_paths(mlp, files, capsys, monkeypatch, output, message):
    monkeypatch.chdir(files)
    assert main(["run", str(mlp), "--input", "x=x.npy", "--output", output]) == 2
    assert message in _err(capsys)


def test_output_is_written_at_exactly_the_given_name(mlp, files, capsys, monkeypatch):
    # np.savez appended ".npz", so the exists-check looked at the wrong file and a second run overwrote it.
    monkeypatch.chdir(files)
    assert main(["run", str(mlp), "--input", "x=x.npy", "--output", "result"]) == 0
    assert (files / "result").is_file() and not (files / "result.npz").exists()
    assert list(np.load(files / "result")) == ["y"]
    assert main(["run", str(mlp), "--input", "x=x.npy", "--output", "result"]) == 2
    assert "exists" in _err(capsys)


def test_output_permission_denied(mlp, files, capsys, monkeypatch):
    monkeypatch.chdir(files)
    monkeypatch.setattr(cli.os, "access", lambda *a: False)
    assert main(["run", str(mlp), "--input", "x=x.npy", "--output", "out.npz"]) == 2
    assert "permission denied" in _err(capsys)


def test_failed_write_keeps_the_old_output(mlp, files, capsys, monkeypatch):
    monkeypatch.chdir(files)
    (files / "out.npz").write_bytes(b"old")

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli.np.lib.format, "write_array", fail)
    assert main(["run", str(mlp), "--input", "x=x.npy", "--output", "out.npz", "--force"]) == 2
    assert "cannot write it: No space left on device" in _err(capsys)
    assert (files / "out.npz").read_bytes() == b"old" and sorted(p.name for p in files.iterdir() if ".tmp" in p.name) == []


def test_output_named_like_a_savez_parameter(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[2] x) => (float[2] file, float[2] allow_pickle) { file = Relu(x)
        allow_pickle = Neg(x) }"""), path)
    np.save(tmp_path / "x.npy", np.ones(2, np.float32))
    assert main(["run", str(path), "--input", f"x={tmp_path / 'x.npy'}", "--output", str(tmp_path / "o.npz")]) == 0
    out = np.load(tmp_path / "o.npz")
    np.testing.assert_array_equal(out["allow_pickle"], [-1, -1])


@pytest.fixture
def gather(tmp_path):
    path = tmp_path / "gather.onnx"
    m = parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (int64[2] idx) => (float[2,3] y) <float[4,3] w = {1,2,3,4,5,6,7,8,9,10,11,12}> { y = Gather(w, idx) }""")
    m.graph.node[0].name = "embed"
    onnx.save(m, path)
    return path


@pytest.mark.parametrize("data, message", [
    (np.array([0, 7]), "node 'embed' (Gather): Gather: index 7 is out of range"),
    (np.array([0.0, 1.0]), "float64, the graph expects int64"),
])
def test_bad_data_for_an_integer_input(gather, tmp_path, capsys, data, message):
    np.save(tmp_path / "idx.npy", data)
    assert main(["run", str(gather), "--input", f"idx={tmp_path / 'idx.npy'}"]) == 2
    assert message in _err(capsys)


def test_nan_data_runs(mlp, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.array([[np.nan, 1, 2, 3]], np.float32))
    assert main(["run", str(mlp), "--input", f"x={tmp_path / 'x.npy'}"]) == 0
    captured = capsys.readouterr()
    assert "nan" in captured.out and not captured.err


def test_empty_passes_list(mlp, capsys):
    assert main(["optimize", str(mlp), "--passes", ","]) == 2
    assert "--passes" in _err(capsys)


def test_debug_after_the_subcommand():
    with pytest.raises(AccelgenError):
        main(["inspect", "nope.onnx", "--debug"])


def test_closed_pipe_is_not_a_traceback(tmp_path):
    nodes = [helper.make_node("Relu", [f"v{i}"], [f"v{i + 1}"]) for i in range(3000)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("v0", onnx.TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("v3000", onnx.TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "big.onnx")
    p = subprocess.Popen([sys.executable, "-m", "accelgen.cli", "inspect", str(tmp_path / "big.onnx"), "--ir"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # like `| head -0`: the IR (over 64 KiB) cannot all fit in the pipe
    err = p.stderr.read().decode()
    p.wait()
    assert "Traceback" not in err and "Exception" not in err


def test_unreadable_input_file(mlp, files, capsys, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.chdir(files)
    monkeypatch.setattr(cli.np, "load", denied)
    assert main(["run", str(mlp), "--input", "x=x.npy"]) == 2
    assert "cannot read 'x.npy': Permission denied" in _err(capsys)
