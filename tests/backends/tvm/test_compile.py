"""The TVM backend end to end: compile the examples, load the library in a fresh process, agree with onnxruntime."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import accelgen
from accelgen.backends.tvm import compile as tvm_compile
from accelgen.backends.tvm import load_compiled
from accelgen.errors import ModelLoadError, OptionError
from tests.ortcheck import run_ort

ROOT = Path(__file__).resolve().parents[3]
MODELS = {
    "jet_mlp": "examples/jet_mlp/jet_mlp.onnx",
    "digits_cnn": "examples/digits_cnn/digits_cnn.onnx",
    "tiny_transformer": "examples/tiny_transformer/tiny_transformer.onnx",
    "encoder": "tests/data/models/encoder_torchscript.onnx",
    "bert_layer": "tests/data/models/bert_layer.onnx",  # additive mask from an int64 input, Cast, erf GELU
}

# Loads the folder with load_compiled in a new interpreter (nothing compiled there), runs it, saves the outputs.
FRESH = """
import sys, numpy as np
from accelgen.backends.tvm import load_compiled
m = load_compiled(sys.argv[1])
inputs = dict(np.load(sys.argv[2]))
np.savez(sys.argv[3], **m.run(inputs))
import accelgen.backends.tvm.lower  # noqa: the loader must not have needed the compiler
"""


def sample_inputs(graph, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for v in graph.inputs:
        dtype = v.dtype.np_dtype
        if np.dtype(dtype).kind == "f":
            out[v.name] = rng.standard_normal(v.shape).astype(dtype)
        else:
            out[v.name] = rng.integers(0, 2, v.shape).astype(dtype)
    return out


@pytest.mark.parametrize("name", MODELS)
def test_compiles_loads_fresh_and_agrees_with_onnxruntime(name, tmp_path):
    path = ROOT / MODELS[name]
    graph = accelgen.load(str(path))
    inputs = sample_inputs(graph)
    want = run_ort(onnx.load(str(path)), inputs)

    module = tvm_compile(graph, target="tvm-cpu", out_dir=tmp_path / "lib")
    assert module.manifest["unscheduled_kernels"] == []  # every kernel got our CPU schedule
    assert {p.name for p in (tmp_path / "lib").iterdir()} == {"model.so", "manifest.json", "run_model.py"}
    for key, value in module.run(inputs).items():
        np.testing.assert_allclose(value, want[key], rtol=1e-4, atol=1e-5, err_msg=key)

    np.savez(tmp_path / "in.npz", **inputs)
    subprocess.run([sys.executable, "-c", FRESH, str(tmp_path / "lib"), str(tmp_path / "in.npz"),
                    str(tmp_path / "out.npz")], check=True, cwd=ROOT)
    fresh = np.load(tmp_path / "out.npz")
    assert set(fresh.files) == set(want)
    for key in want:
        assert fresh[key].dtype == want[key].dtype
        np.testing.assert_allclose(fresh[key], want[key], rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mlp") / "lib"
    tvm_compile(accelgen.load(str(ROOT / MODELS["jet_mlp"])), out_dir=out, threads=1)
    return out


def test_manifest_benchmark_and_summary(mlp_dir):
    manifest = json.loads((mlp_dir / "manifest.json").read_text())
    assert manifest["accelgen_version"] == accelgen.__version__
    assert manifest["inputs"] == [{"name": "input", "shape": [1, 16], "dtype": "float32"}]
    assert manifest["outputs"] == [{"name": "output", "shape": [1, 5], "dtype": "float32"}]
    assert manifest["target"]["name"] == "tvm-cpu" and manifest["target"]["mcpu"] and manifest["threads"] == 1
    module = load_compiled(mlp_dir)
    timing = module.benchmark(repeat=5, min_repeat_ms=1)
    assert 0 < timing["median_s"] < 0.1
    assert "tvm-cpu" in module.summary() and "input float32[1, 16]" in module.summary()


def test_standalone_runner_needs_only_tvm_and_numpy(mlp_dir, tmp_path):
    x = np.random.default_rng(1).standard_normal((1, 16)).astype(np.float32)
    np.savez(tmp_path / "x.npz", input=x)
    done = subprocess.run([sys.executable, str(mlp_dir / "run_model.py"), str(tmp_path / "x.npz"), "--out",
                           str(tmp_path / "y.npz")], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert "median latency" in done.stdout
    want = accelgen.run(accelgen.load(str(ROOT / MODELS["jet_mlp"])), {"input": x})["output"]
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["output"], want, rtol=1e-4, atol=1e-5)


def test_folder_from_another_accelgen_version_is_refused(mlp_dir, tmp_path):
    other = tmp_path / "old"
    other.mkdir()
    for f in mlp_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["accelgen_version"] = "0.0.1"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="built by accelgen 0.0.1.*recompile"):
        load_compiled(other)
    with pytest.raises(ModelLoadError, match="not a compiled TVM folder"):
        load_compiled(tmp_path)


def test_existing_folder_needs_force_and_keeps_foreign_files(tmp_path):
    graph = accelgen.load(str(ROOT / MODELS["jet_mlp"]))
    out = tmp_path / "lib"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OptionError, match="already exists"):
        tvm_compile(graph, out_dir=out)
    tvm_compile(graph, out_dir=out, force=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.so").is_file()


@pytest.mark.parametrize("options, message", [
    ({"part": "xcvu13p"}, "part mean nothing"),
    ({"tune_trials": -1}, "tune_trials must be"),
    ({"threads": 0}, "threads must be"),
    ({"target": "tvm-cuda", "tune_trials": 4}, "tvm-cpu only"),
    ({"target": "tvm-cuda", "cuda_arch": "ampere"}, "cuda_arch must look like sm_80"),
    ({"cuda_arch": "sm_80"}, "cuda_arch mean nothing"),
])
def test_options_that_mean_nothing_are_refused(options, message, tmp_path):
    graph = accelgen.load(str(ROOT / MODELS["jet_mlp"]))
    with pytest.raises(OptionError, match=message):
        accelgen.backends.compile(graph, **{"target": "tvm-cpu", "out_dir": tmp_path / "x", **options})
    assert not (tmp_path / "x").exists()
