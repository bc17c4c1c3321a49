"""MetaSchedule tuning with a database stored next to the library and reused by the next compile."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

import accelgen
from accelgen.backends.tvm import compile as tvm_compile
from accelgen.backends.tvm import load_compiled, tune
from accelgen.errors import OptionError

MLP = str(Path(__file__).resolve().parents[3] / "examples/jet_mlp/jet_mlp.onnx")


def test_tuning_keeps_the_faster_schedule_and_the_second_compile_reuses_the_database(tmp_path):
    graph = accelgen.load(MLP)
    out = tmp_path / "lib"
    module = tvm_compile(graph, out_dir=out, threads=1, tune_trials=2)
    tuning = out / "tuning"
    assert (tuning / "choices.json").is_file() and (tuning / "database_tuning_record.json").is_file()
    records = (tuning / "database_tuning_record.json").read_text().splitlines()
    assert records  # MetaSchedule measured candidates
    choices = json.loads((tuning / "choices.json").read_text())
    for choice in choices.values():  # every kernel decided by measuring both schedules
        assert choice["ours_s"] > 0 and choice["trials"] == 2
        faster = choice["tuned_s"] is not None and choice["tuned_s"] < choice["ours_s"] * (1 - tune.MARGIN)
        assert choice["use"] == ("tuned" if faster else "ours")
    assert set(module.manifest["tuning"]["kernels"]) == {c["kernel"] for c in choices.values()}
    assert "tuned (2 trials/kernel" in module.summary()

    x = np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32)
    want = accelgen.run(graph, {"input": x})["output"]
    np.testing.assert_allclose(module.run({"input": x})["output"], want, rtol=1e-4, atol=1e-5)

    t0 = time.perf_counter()
    again = tvm_compile(graph, out_dir=out, threads=1, tune_trials=2, force=True)
    assert time.perf_counter() - t0 < 15  # no search, no measurement: only the build
    assert "all decided before" in again.manifest["tuning"]["log"][0]
    assert json.loads((tuning / "choices.json").read_text()) == choices
    assert (tuning / "database_tuning_record.json").read_text().splitlines() == records
    np.testing.assert_allclose(load_compiled(out).run({"input": x})["output"], want, rtol=1e-4, atol=1e-5)


def test_missing_tuning_packages_are_named(monkeypatch, tmp_path):
    real = tune.importlib.util.find_spec
    monkeypatch.setattr(tune.importlib.util, "find_spec", lambda name: None if name == "psutil" else real(name))
    with pytest.raises(OptionError, match=r"psutil.*pip install accelgen\[tune\]"):
        tvm_compile(accelgen.load(MLP), out_dir=tmp_path / "lib", tune_trials=4)
    assert not (tmp_path / "lib").exists()


def test_tune_trials_must_be_positive(tmp_path):
    with pytest.raises(OptionError, match="tune_trials must be >= 1"):
        tvm_compile(accelgen.load(MLP), out_dir=tmp_path / "lib", tune_trials=0)
