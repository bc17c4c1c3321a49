"""The roofline estimate for tvm-cpu next to the measured per-op profile, and the cached machine peaks."""

import json
from pathlib import Path

import pytest

import accelgen
from accelgen.backends.tvm import roofline
from accelgen.cli import main as cli
from accelgen.errors import OptionError

ROOT = Path(__file__).resolve().parents[3]
TRANSFORMER = str(ROOT / "examples/tiny_transformer/tiny_transformer.onnx")
MLP = str(ROOT / "examples/jet_mlp/jet_mlp.onnx")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ACCELGEN_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def report(cache_dir):
    return accelgen.estimate(accelgen.load(TRANSFORMER), target="tvm-cpu", threads=1, repeat=3)


def test_every_op_is_estimated_once_and_every_kernel_is_attributed(report):
    optimized = accelgen.optimize(accelgen.load(TRANSFORMER))
    names = [name for row in report.layers for name in row.name.split(" + ")]
    assert names == [n.name for n in optimized.nodes]
    mha = [r for r in report.layers if "MultiHeadAttention" in r.op]
    assert len(mha) == 2 and all(r.kernels > 5 and r.macs > 0 for r in mha)  # projections, scores, softmax...
    for row in report.layers:
        costs = [n.op.cost([v and v.type for v in n.inputs], [v.type for v in n.outputs])
                 for n in optimized.nodes if n.name in row.name.split(" + ")]
        assert row.macs == sum(c.macs for c in costs) and row.bytes == sum(c.bytes for c in costs)
        assert row.estimate_us > 0 and row.measured_us is not None
        if row.kernels:
            assert row.measured_us > 0 and row.ratio == pytest.approx(row.measured_us / row.estimate_us)
    assert report.measured_us == pytest.approx(sum(r.measured_us for r in report.layers))
    large = [r for r in report.layers if r.large]
    assert large and all(r.measured_us >= 0.1 * report.measured_us for r in large)
    assert report.large_within_target == all(0.5 <= r.ratio <= 2 for r in large)
    assert len(report.warnings) == sum(not 0.5 <= r.ratio <= 2 for r in large)


def test_report_formats(report, tmp_path):
    data = json.loads(report.to_json())
    assert data["peaks"]["gflops"] > 0 and data["layers"][0]["estimate_us"] > 0
    markdown = report.to_markdown()
    assert "| ops | kind | MACs |" in markdown and "GFLOP/s peak" in markdown and "large kernels" in markdown
    text = report.to_text()
    assert text.splitlines()[2].split()[:3] == ["ops", "kind", "MACs"] and len(text.splitlines()) >= 4 + len(
        report.layers)
    html = report.to_html(tmp_path / "r.html")
    assert "<svg" in html and "measured (us)" in html and (tmp_path / "r.html").read_text() == html


def test_machine_peaks_are_measured_once_and_cached(report, cache_dir, monkeypatch):
    cached = json.loads((cache_dir / "tvm_cpu_peaks.json").read_text())
    (entry,) = cached.values()
    assert entry["gflops"] > 1 and entry["dram_gbs"] > 0.1 and entry["cache_gbs"] > 0.1
    monkeypatch.setattr(roofline, "_measure_peaks", lambda target: pytest.fail("peaks measured again"))
    again = accelgen.estimate(accelgen.load(MLP), target="tvm-cpu", threads=1, measure=False)
    assert again.peaks == entry and all(r.measured_us is None for r in again.layers)


def test_cli_estimate_for_tvm_cpu(cache_dir, capsys):
    assert cli(["estimate", MLP, "--target", "tvm-cpu", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "roofline estimate" in out and "measured us" in out and "DSP" not in out


@pytest.mark.parametrize("options, message", [
    ({"target": "tvm-cuda"}, "not available"),
    ({"target": "tvm-cpu", "part": "xcvu13p"}, "part mean nothing"),
    ({"target": "tvm-cpu", "threads": 0}, "threads must be"),
])
def test_bad_requests_are_refused(options, message):
    with pytest.raises(OptionError, match=message):
        accelgen.estimate(accelgen.load(MLP), **options)
