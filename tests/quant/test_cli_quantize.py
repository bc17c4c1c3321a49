"""`accelgen quantize`: calibration from .npz in chunks, auto/uniform precision, per-layer config, search, report
table and JSON; bad inputs exit 2 with one line."""

import json

import numpy as np
import pytest

from accelgen.cli import main
from accelgen.cli.quantize import chunk_batch
from accelgen.quant.config import load_config
from tests.quant.datasets import ROOT, jets

MLP = str(ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    np.savez(folder / "calib.npz", input=jets(500, seed=1)[0])
    np.savez(folder / "held.npz", input=jets(300, seed=2)[0])
    return folder


def quantize(*args):
    return main(["quantize", MLP, *map(str, args)])


def test_default_prints_accuracy_and_bits(data, capsys):
    assert quantize("--calibration", data / "calib.npz") == 0
    out = capsys.readouterr().out
    assert "argmax agreement" in out and "100.00%" in out and "500 samples" in out
    assert "range seen" not in out  # the per-tensor table needs --report
    assert "measured on --calibration data" in out


def test_report_table_and_held_out_data(data, capsys):
    assert quantize("--calibration", data / "calib.npz", "--eval", data / "held.npz", "--report") == 0
    out = capsys.readouterr().out
    assert "range seen" in out and "ufixed<16,4,RND,SAT>" in out and "Softmax" in out
    assert "300 samples" in out and "measured on --eval data" in out


def test_calibration_runs_in_chunks_that_divide_the_samples(data, capsys):
    assert chunk_batch(500) == 250 and chunk_batch(500, 300) == 100 and chunk_batch(1024) == 256
    assert chunk_batch(7) == 7 and chunk_batch(257) == 1
    assert quantize("--calibration", data / "calib.npz", "--print-ir") == 0
    assert "%input: fixed<16,4,RND,SAT>[250,16]" in capsys.readouterr().out
    assert quantize("--calibration", data / "calib.npz", "--input-shape", "input=5x16", "--print-ir") == 0
    assert "[5,16]" in capsys.readouterr().out


def test_uniform_precision_and_widths(data, capsys):
    assert quantize("--calibration", data / "calib.npz", "--precision", "ap_fixed<16,6>", "--report") == 0
    out = capsys.readouterr().out
    assert "Dense    fixed<16,6>" in out and "100.00%" not in out  # hls4ml's default type loses agreement
    assert quantize("--calibration", data / "calib.npz", "--weight-bits", "8", "--activation-bits", "12",
                    "--report") == 0
    out = capsys.readouterr().out
    assert "ufixed<12,4,RND,SAT>" in out and "fixed<8,1,RND_CONV,SAT>" in out


def test_config_file_native_and_hls4ml(data, tmp_path, capsys):
    native = tmp_path / "layers.yaml"
    native.write_text("Dense: {width: 10}\nSoftmax:\n  type: ufixed<8,1,RND,SAT>\n")
    assert quantize("--calibration", data / "calib.npz", "--config", native, "--report") == 0
    out = capsys.readouterr().out
    assert "ufixed<10,4,RND,SAT>" in out and "ufixed<8,1,RND,SAT>" in out
    hls = tmp_path / "hls4ml.yaml"
    hls.write_text("Model:\n  Precision: fixed<18,8>\n  ReuseFactor: 1\nLayerType:\n  Softmax:\n"
                   "    Precision: {result: 'ufixed<8,1,RND,SAT>', accum: 'fixed<32,16>'}\n")
    assert quantize("--calibration", data / "calib.npz", "--config", hls, "--report") == 0
    captured = capsys.readouterr()
    assert "Dense    fixed<18,8>" in captured.out and "ufixed<8,1,RND,SAT>" in captured.out
    notes = captured.err.splitlines()
    assert len(notes) == 2 and all(line.startswith("accelgen: note:") for line in notes)
    assert any("ReuseFactor" in n for n in notes) and any("accum" in n for n in notes)


def test_search_writes_config_and_json(data, tmp_path, capsys):
    saved, report = tmp_path / "chosen.yaml", tmp_path / "report.json"
    assert quantize("--calibration", data / "calib.npz", "--search", "--min-agreement", "0.99",
                    "--save-config", saved, "--json", report) == 0
    out = capsys.readouterr().out
    assert "search: 72,688 ->" in out and "chosen per-layer settings" in out
    d = json.loads(report.read_text())
    assert d["search"]["metric"] == "agreement" and d["search"]["value"] >= 0.99
    assert d["total_bits"] == d["search"]["total_bits"] < d["search"]["start_bits"]
    assert load_config(saved).overrides == d["search"]["overrides"]
    # the saved settings reproduce the searched types
    assert quantize("--calibration", data / "calib.npz", "--config", saved, "--json", report, "--force") == 0
    assert json.loads(report.read_text())["tensors"] == d["tensors"]


def test_search_by_cosine(data, capsys):
    assert quantize("--calibration", data / "calib.npz", "--min-cosine", "0.9999", "--max-evaluations", "10") == 0
    out = capsys.readouterr().out
    assert "cosine 1.0000 ->" in out and "10 evaluations" in out


@pytest.fixture
def bad(tmp_path, data):
    np.savez(tmp_path / "wrong_name.npz", x=jets(8, seed=1)[0])
    np.savez(tmp_path / "wrong_shape.npz", input=np.zeros((8, 15), np.float32))
    np.savez(tmp_path / "ragged.npz", input=np.zeros((8, 16), np.float32), other=np.zeros((4, 2)))
    np.savez(tmp_path / "empty.npz")
    np.savez(tmp_path / "nan.npz", input=np.full((8, 16), np.nan, np.float32))
    np.save(tmp_path / "plain.npy", np.zeros((8, 16), np.float32))
    (tmp_path / "bad.yaml").write_text("Dense: {bits: 3}\n")
    (tmp_path / "typo.yaml").write_text("/net/net.0/Gemm: {width: 8}\n")
    (tmp_path / "exists.json").write_text("{}")
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["--calibration", "{t}/missing.npz"], "no such file"),
    (["--calibration", "{t}"], "folder"),
    (["--calibration", "{t}/plain.npy"], ".npz archive"),
    (["--calibration", "{t}/empty.npz"], "no arrays"),
    (["--calibration", "{t}/ragged.npz"], "same number of samples"),
    (["--calibration", "{t}/wrong_name.npz"], "unknown"),
    (["--calibration", "{t}/wrong_shape.npz"], "shape|inner dimensions"),
    (["--calibration", "{t}/nan.npz"], "NaN"),
    (["--calibration", "{d}/calib.npz", "--input-shape", "input=3x16"], "shape"),
    (["--calibration", "{d}/calib.npz", "--precision", "fixed<8,10,XX>"], "--precision"),
    (["--calibration", "{d}/calib.npz", "--precision", "float32"], "--precision"),
    (["--calibration", "{d}/calib.npz", "--weight-bits", "0"], "weight_width"),
    (["--calibration", "{d}/calib.npz", "--margin", "0.5"], "margin"),
    (["--calibration", "{d}/calib.npz", "--config", "{t}/bad.yaml"], "'Dense'.*'bits'"),
    (["--calibration", "{d}/calib.npz", "--config", "{t}/typo.yaml"], "did you mean"),
    (["--calibration", "{d}/calib.npz", "--config", "{t}/missing.yaml"], "cannot read"),
    (["--calibration", "{d}/calib.npz", "--min-agreement", "1.5"], "bound"),
    (["--calibration", "{d}/calib.npz", "--min-agreement", "0.9", "--min-cosine", "0.9"], "not both"),
    (["--calibration", "{d}/calib.npz", "--search", "--precision", "fixed<16,6>"], "miss the bound"),
    (["--calibration", "{d}/calib.npz", "--json", "{t}/exists.json"], "--force"),
    (["--calibration", "{d}/calib.npz", "--save-config", "{t}/out.yaml"], "--search"),
])
def test_bad_inputs_exit_2_with_one_line(bad, data, capsys, args, message):
    import re

    code = quantize(*[a.format(t=bad, d=data) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("accelgen: error:"), err
    assert re.search(message, lines[0]), lines[0]
