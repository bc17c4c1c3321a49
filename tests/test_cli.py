"""The command line: inspect, run, and one-line errors with exit status 2."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import parser

from accelgen.cli import main

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
