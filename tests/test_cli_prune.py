"""`accelgen prune`: report table, --out ONNX, clear one-line errors (exit 2)."""

import json

import numpy as np
import pytest

import accelgen
from accelgen.cli import main
from tests.quant.datasets import ROOT, jets

MLP = str(ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx")


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "calib.npz"
    np.savez(path, input=jets(256, seed=1)[0])
    return path


def test_prune_with_calibration_writes_onnx(calib, tmp_path, capsys):
    out = tmp_path / "pruned.onnx"
    assert main(["prune", MLP, "--sparsity", "0.75", "--calibration", str(calib), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "75.0%" in text and "argmax agreement" in text and "wrote the pruned model" in text
    graph = accelgen.load(out)
    weights = [v.data for v in graph.constants.values() if v.data.ndim == 2]
    assert sum(np.count_nonzero(w) for w in weights) / sum(w.size for w in weights) == pytest.approx(0.25, abs=1e-3)
    assert main(["prune", MLP, "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["prune", MLP, "--out", str(out), "--force", "--method", "nm", "--n-m", "2:4"]) == 0


@pytest.mark.parametrize("args, message", [
    (["--sparsity", "1"], "sparsity must be in [0, 1)"),
    (["--method", "block", "--block", "3x4"], "does not divide"),
    (["--method", "nm", "--n-m", "5:4"], "1 <= N <= M"),
    (["--method", "nm", "--sparsity", "0.75"], "contradicts --n-m"),
    (["--n-m", "two"], "expected two integers"),
    (["--layers", "nope"], "unknown layer(s) 'nope'"),
])
def test_errors_are_one_line(args, message, capsys):
    assert main(["prune", MLP, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_layers_limits_pruning(capsys):
    assert main(["prune", MLP, "--layers", "/net/net.0/Gemm_0_0", "--sparsity", "0.5", "--scope", "layer"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "50.0%" in next(l for l in lines if l.startswith("/net/net.0/")) and "0.0%" in lines[2]


def test_estimate_and_compile_prune_first(calib, tmp_path, capsys):
    assert main(["estimate", MLP, "--calibration", str(calib)]) == 0
    dense = capsys.readouterr().out
    assert main(["estimate", MLP, "--calibration", str(calib), "--prune", "0.75"]) == 0
    pruned = capsys.readouterr().out
    assert "75.0%" in pruned and "calibration samples the reconstruction fitted" in pruned
    dsp = lambda text: int(text.split("DSP ")[1].split()[0])
    assert dsp(pruned) < 0.3 * dsp(dense)
    out = tmp_path / "prj"
    assert main(["compile", MLP, "--out", str(out), "--calibration", str(calib), "--prune-method", "nm"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert "50.0%" in capsys.readouterr().out and manifest["multipliers"] <= 4256 // 2


@pytest.mark.parametrize("args, message", [
    (["--prune", "1.5"], "sparsity must be in [0, 1)"),
    (["--prune-method", "nm", "--prune", "0.75"], "contradicts --prune-n-m"),
    (["--prune-method", "block", "--prune-block", "3x4"], "does not divide"),
])
def test_estimate_prune_errors(args, message, capsys):
    assert main(["estimate", MLP, *args]) == 2
    assert message in capsys.readouterr().err
