import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

import accelgen
from accelgen.backends.hls import estimate
from accelgen.backends.hls import estimate_model as m
from accelgen.backends.hls.estimate import _refuse_unsupported
from accelgen.backends.hls.parts import find_part
from accelgen.errors import OptionError, UnsupportedOpsError
from tests.quant.datasets import ROOT


def test_report_fields(jet_graph):
    _, q, _ = jet_graph
    r = accelgen.estimate(q, target="hls", part="xcvu13p-flga2577-2-e", clock_ns=5)
    assert r.ii == 1 and r.latency_cycles > 0 and r.latency_ns == r.latency_cycles * 5
    assert len(r.layers) == len(q.nodes)
    assert r.dsp == sum(x.dsp for x in r.layers) and r.dsp > 0
    assert r.lut > 0 and r.ff > 0
    assert 0 < r.utilization["dsp"] < 1


def test_latency_dsp_counts_nonzero_weights_minus_shifts(jet_graph):
    """Fully unrolled: one DSP per nonzero 16-bit-class weight that is not a power of two."""
    _, q, _ = jet_graph
    r = estimate(q, strategy="latency")
    for row, node in zip(r.layers, q.nodes):
        if node.op_type == "Dense":
            assert row.dsp <= np.count_nonzero(node.inputs[1].data)


def test_reuse_factor_trades_dsp_for_cycles(jet_graph):
    _, q, _ = jet_graph
    r2, r8 = (estimate(q, strategy="resource", reuse_factor=rf) for rf in (2, 8))
    assert r8.dsp < r2.dsp and r8.latency_cycles > r2.latency_cycles and r8.ii > r2.ii
    dense = [n for n in q.nodes if n.op_type == "Dense"]
    per = [m.dsp_per_product(n.inputs[0].dtype.width, n.inputs[1].dtype.width) for n in dense]
    expected = sum(p * n.inputs[1].data.size // 8 for p, n in zip(per, dense))
    assert sum(x.dsp for x, n in zip(r8.layers, q.nodes) if n.op_type == "Dense") == expected


def test_dense_reuse_model():
    t = m.Timing(5, 2)
    ours = m.dense_reuse(32, 5, 1, 40, 64, 16, 16, 16, t)  # zeros still read from the ROM
    hls4ml = m.dense_reuse(32, 5, 1, 40, 64, 16, 16, 16, t, skip_zeros=True)
    assert ours.dsp == 3 and hls4ml.dsp == 3 and ours.cycles == hls4ml.cycles == 160 // 3 + 1 - 1
    pruned = m.dense_reuse(64, 32, 1, 512, 2, 16, 16, 16, t, skip_zeros=True)
    assert pruned.dsp == 512 and pruned.ii == 2  # the II constraint stays, zeros cost nothing


def test_dense_reuse_muxes_follow_the_generated_tiles():
    """The model prices the generator's tiles (layers.resource_tiles): x muxes over the input tiles and accumulator
    muxes over the output tiles, none growing with both n_out and R. BERT's FFN Dense at R 256 (9216 multipliers,
    weights in BRAM, 16x16 products in DSPs) costs its 9216 adders and a few 256-input x muxes."""
    from accelgen.backends.hls.layers import resource_tiles

    t = m.Timing(5, 2)
    for n_in, n_out, rf in [(16, 64, 4), (16, 64, 32), (32, 5, 32), (12, 10, 8), (10, 12, 24), (768, 3072, 256)]:
        tile_in, tile_out = resource_tiles(n_in, n_out, n_in * n_out // rf)
        assert tile_in * tile_out * rf == n_in * n_out and n_in % tile_in == 0 and n_out % tile_out == 0
        cost = m.dense_reuse(n_in, n_out, 1, n_in * n_out, rf, 16, 16, 40, t)
        assert f"tiles of {tile_in} inputs x {tile_out} outputs" in cost.notes[0]
    ffn1 = m.dense_reuse(768, 3072, 128, 768 * 3072, 256, 16, 16, 40, t)  # tiles 3 x 3072
    ffn2 = m.dense_reuse(3072, 768, 128, 768 * 3072, 256, 16, 16, 40, t)  # tiles 12 x 768
    assert ffn1.lut == 9216 * 40 + 3 * 16 * 64 and ffn2.lut == 9216 * 40 + 12 * 16 * 64
    assert ffn1.bram18 > 0 and ffn1.dsp == ffn2.dsp == 9216
    # 16x64 at R 32: 32 multipliers on one input a cycle (a 16-input x mux), each column reads and writes back
    # one of 2 accumulators; the 32 x 16-bit x 32 ROM is in LUTs
    narrow = m.dense_reuse(16, 64, 1, 1024, 32, 16, 16, 40, t)
    assert narrow.lut == 32 * 40 + 16 * 4 + 32 * 40 * 1 + 512


def test_operand_widths_choose_dsp_or_lut():
    assert m.dsp_per_product(16, 16) == 1 and m.dsp_per_product(16, 6) == 0 and m.dsp_per_product(32, 32) == 4
    assert list(m.csd_digits(np.array([1, 2, 3, 7, 11, -4]))) == [1, 1, 2, 2, 3, 1]


def test_speed_grade_and_clock_change_depth(jet_graph):
    _, q, _ = jet_graph
    fast = estimate(q, part="xczu7ev-ffvc1156-2-e", clock_ns=10).latency_cycles
    slow = estimate(q, part="xczu3eg-sbva484-1-e", clock_ns=3).latency_cycles
    assert slow > fast


def test_dataflow_composition_for_resource(jet_graph):
    _, q, _ = jet_graph
    r = estimate(q, strategy="resource", reuse_factor=4)
    assert r.config["top level"] == "DATAFLOW"
    assert r.latency_cycles == sum(x.latency_cycles for x in r.layers) + 1
    assert r.ii == max(x.ii for x in r.layers)


def test_looping_kernels_get_a_dataflow_top(cnn_graph, jet_graph):
    """A top-level PIPELINE would unroll the CNN's pixel loops (one copy of each conv per pixel); the generated
    top is a DATAFLOW of kernels that pipeline their own loops, and the estimate composes it that way. The MLP
    (one token) keeps the PIPELINE top."""
    _, q, _, _ = cnn_graph
    r = estimate(q)
    assert r.config["top level"] == "DATAFLOW" and r.ii > 1
    convs = [layer for layer in r.layers if layer.op in ("Conv", "FusedConv")]
    assert convs and all(layer.ii > 1 for layer in convs)
    assert estimate(jet_graph[1]).config["top level"] == "PIPELINE (II=1)"


def test_errors(jet_graph):
    g, q, _ = jet_graph
    with pytest.raises(OptionError, match="unknown FPGA part"):
        estimate(q, part="xc9zzz")
    with pytest.raises(OptionError, match="tune-trials"):
        estimate(q, tune_trials=3)
    with pytest.raises(OptionError, match="calibration"):
        estimate(g)
    with pytest.raises(OptionError, match="uniform --precision"):
        estimate(g, precision="auto")
    with pytest.raises(UnsupportedOpsError, match="LSTM"):
        _refuse_unsupported(SimpleNamespace(nodes=[SimpleNamespace(op_type="LSTM", name="rnn")]))


def test_uniform_precision_needs_no_calibration(jet_graph):
    g, _, calib = jet_graph
    r = estimate(g, precision="fixed<16,6>")
    assert r.dsp > 0 and "no calibration data" in r.config["precision"]
    # the widths come from the precision, not the samples: the same DSP count as with real calibration data
    assert r.dsp == estimate(g, precision="fixed<16,6>", calibration=calib).dsp


def test_pruned_jet_mlp_needs_a_quarter_of_the_multipliers(jet_graph):
    """Issue 8's payoff: with 75% of the weights zero (magnitude pruning), the fully parallel design builds a
    quarter of the multipliers, and so does the resource kernel, which time-shares only the nonzero weights."""
    g, q, calib = jet_graph
    pruned = accelgen.quantize(accelgen.prune(accelgen.optimize(g), 0.75, method="magnitude"), calib)

    def dense_dsp(report):
        return sum(r.dsp for r in report.layers if r.op == "Dense")

    dense, sparse = estimate(q), estimate(pruned)
    nonzero = sum(int(np.count_nonzero(n.inputs[1].data)) for n in pruned.nodes if n.op_type == "Dense")
    assert dense_dsp(sparse) <= nonzero and 0.22 <= dense_dsp(sparse) / dense_dsp(dense) <= 0.26
    assert sparse.lut < 0.3 * dense.lut
    rf = {"strategy": "resource", "reuse_factor": 2}
    assert 0.22 <= dense_dsp(estimate(pruned, **rf)) / dense_dsp(estimate(q, **rf)) <= 0.26


def test_float_graph_with_calibration(jet_graph):
    g, _, calib = jet_graph
    assert estimate(g, calibration=calib).dsp > 0


def test_parts_from_the_issue():
    for name in ("xcvu9p", "xcvu13p", "xcu50", "xcu200", "xcu250", "xcu280", "xczu3eg", "xczu7ev", "xczu9eg",
                 "xc7z020", "xcku115", "xcvc1902"):
        p = find_part(name)
        assert p.dsp > 0 and p.lut > 0 and p.ff > 0 and p.bram_36k > 0
    p = find_part("xczu3eg-sbva484-1-e")
    assert p.name == "xczu3eg-sbva484-1-e" and p.speed_grade == 1 and p.dsp == 360
    assert find_part("xcu250-figd2104-2L-e").dsp == 12288
    assert find_part("xc7z020clg400-1").speed_grade == 1


def test_estimate_is_fast_for_a_large_dense():
    from accelgen.ir.fixed import quantize as _  # noqa: F401 - keep imports honest
    rng = np.random.default_rng(0)
    g = accelgen.load(str(ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx"))
    x = {"input": rng.normal(size=(64, 16))}
    q = accelgen.quantize(accelgen.optimize(g), x)
    t = time.perf_counter()
    estimate(q, strategy="resource", reuse_factor=16)
    assert time.perf_counter() - t < 1.0


def test_accuracy_benchmark(tmp_path):
    script = ROOT / "benchmarks" / "estimator_accuracy.py"
    missing = subprocess.run([sys.executable, str(script), "--csv", str(tmp_path / "none.csv")],
                             check=False, capture_output=True, text=True)
    assert missing.returncode == 0 and "skipped" in missing.stdout
    csv = ROOT.parent / "shared" / "calibration" / "hls_synthesis_reference.csv"
    if not csv.is_file():
        pytest.skip("no ../shared calibration data")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    assert "rows with RF >= 2 within target" in out and " 10 of 10" in out


@pytest.mark.parametrize("table_size, memory", [(256, "LUT ROM"), (4096, "BRAM")])
def test_table_activation_memory(table_size, memory):
    from tests.backends.hls.test_table_activations import mlp

    g = accelgen.optimize(mlp("Sigmoid"))
    calib = {"x": np.random.default_rng(0).normal(0, 1.5, (400, 8)).astype(np.float32)}
    q = accelgen.quantize(g, calib, table_size=table_size)
    row = estimate(q).layers[0]
    assert any(memory in note for note in row.notes)
    assert (row.bram18 > 0) == (memory == "BRAM")


def test_resource_refuses_a_reuse_factor_that_does_not_divide(jet_graph):
    _, q, _ = jet_graph
    with pytest.raises(OptionError, match="does not divide"):
        estimate(q, strategy="resource", reuse_factor=7)


def test_every_project_carries_its_estimate(jet_graph, jet_project):
    from accelgen.report import Report

    _, q, _ = jet_graph
    folder = jet_project.path / "report"
    written = Report.from_json(folder / "estimate.json")
    direct = estimate(q)
    assert (written.latency_cycles, written.ii, written.dsp, written.lut) == (direct.latency_cycles, direct.ii,
                                                                            direct.dsp, direct.lut)
    assert (folder / "estimate.md").read_text() == written.to_markdown()
    assert (folder / "estimate.html").read_text() == written.to_html()


def test_a_design_the_estimator_cannot_model_still_compiles(jet_graph, tmp_path, monkeypatch):
    import importlib

    from accelgen.backends.hls import compile

    est = importlib.import_module("accelgen.backends.hls.estimate")  # the module (the package exports the function)

    def refuse(q, opts):
        raise OptionError("no model for this kernel")

    monkeypatch.setattr(est, "estimate_quantized", refuse)
    _, q, _ = jet_graph
    project = compile(q, out_dir=tmp_path / "p")
    assert "no model for this kernel" in (project.path / "report" / "estimate.md").read_text()
    assert not (project.path / "report" / "estimate.json").exists()
