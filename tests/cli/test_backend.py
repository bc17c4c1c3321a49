"""`accelgen estimate` (terminal table, --json, --html) and the estimate summary `accelgen compile` prints."""

import json

import numpy as np

from accelgen.cli import main
from accelgen.report import Report
from tests.quant.datasets import ROOT, jets

JET_MLP = str(ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx")


def test_estimate_prints_the_table_and_writes_json_and_html(tmp_path, capsys):
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    argv = ["estimate", JET_MLP, "--target", "hls", "--part", "xczu7ev-ffvc1156-2-e", "--clock", "5",
            "--precision", "fixed<16,6>", "--json", str(out_json), "--html", str(out_html)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "latency" in out and "% of part" in out and "/net/net.7/Softmax" in out
    report = Report.from_json(out_json)
    assert report.part == "xczu7ev-ffvc1156-2-e" and len(report.layers) == 5
    assert f"latency {report.latency_cycles} cycles" in out and f"DSP {report.dsp} " in out
    assert out_html.read_text().count("<svg") == 9
    assert main(argv) == 2 and "--force" in capsys.readouterr().err  # nothing overwritten silently
    assert main(argv + ["--force", "--strategy", "resource", "--reuse-factor", "4"]) == 0
    assert json.loads(out_json.read_text())["config"]["strategy"] == "resource"


def test_estimate_of_a_float_model_without_data_or_uniform_precision(capsys):
    assert main(["estimate", JET_MLP]) == 2
    assert "calibration" in capsys.readouterr().err


def test_compile_prints_the_estimate_and_writes_it_into_the_project(tmp_path, capsys):
    x, _ = jets(64, seed=3)
    np.savez(tmp_path / "calib.npz", input=x)
    out = tmp_path / "proj"
    assert main(["compile", JET_MLP, "--target", "hls", "--out", str(out), "--calibration",
                 str(tmp_path / "calib.npz")]) == 0
    printed = capsys.readouterr().out
    report = Report.from_json(out / "report" / "estimate.json")
    assert f"estimate: {report.summary()}" in printed
    assert (out / "report" / "estimate.md").read_text() == report.to_markdown()
    assert "<svg" in (out / "report" / "estimate.html").read_text()


def test_compile_and_estimate_with_per_channel_weights(tmp_path, capsys):
    x, _ = jets(64, seed=3)
    np.savez(tmp_path / "calib.npz", input=x)
    out = tmp_path / "proj"
    assert main(["compile", JET_MLP, "--target", "hls", "--out", str(out), "--calibration",
                 str(tmp_path / "calib.npz"), "--per-channel", "--csim"]) == 0
    kernels = [layer["kernel"] for layer in json.loads((out / "manifest.json").read_text())["layers"]]
    assert any("per-channel weights" in k for k in kernels)
    assert main(["estimate", JET_MLP, "--calibration", str(tmp_path / "calib.npz"), "--per-channel"]) == 0
    capsys.readouterr()
    assert main(["compile", JET_MLP, "--target", "tvm-cpu", "--out", str(tmp_path / "tvm"), "--per-channel"]) == 2
    assert "per_channel" in capsys.readouterr().err
