"""tvm-cuda: CUDA code generation without a GPU (the source, nvcc's verdict on it, the exported library), and
the errors when running where there is no GPU or no CUDA compiler."""

import json
from pathlib import Path

import numpy as np
import pytest
import tvm

import accelgen
from accelgen.backends.tvm import compile as tvm_compile
from accelgen.backends.tvm import cuda, load_compiled
from accelgen.errors import InvalidModelError, ModelLoadError

ROOT = Path(__file__).resolve().parents[3]
HAS_GPU = tvm.runtime.enabled("cuda") and tvm.cuda(0).exist


@pytest.mark.parametrize("model", ["examples/jet_mlp/jet_mlp.onnx", "tests/data/models/bert_layer.onnx"])
def test_cuda_kernels_are_generated_exported_and_accepted_by_nvcc(model, tmp_path):
    graph = accelgen.load(str(ROOT / model))
    module = tvm_compile(graph, target="tvm-cuda", out_dir=tmp_path / "lib", cuda_arch="sm_86")
    files = {p.name for p in (tmp_path / "lib").iterdir()}
    assert files == {"model.so", "manifest.json", "run_model.py", "kernels.cu"}
    source = (tmp_path / "lib" / "kernels.cu").read_text()
    kernels = source.count('extern "C" __global__')
    assert kernels >= len(accelgen.optimize(graph).nodes) // 2
    assert "blockIdx.x" in source and "threadIdx.x" in source  # every kernel is bound to GPU threads
    assert (tmp_path / "lib" / "model.so").read_bytes().count(b"__global__") == source.count("__global__")
    target = json.loads((tmp_path / "lib" / "manifest.json").read_text())["target"]
    assert target["name"] == "tvm-cuda" and target["kind"] == "cuda" and target["arch"] == "sm_86"
    if cuda.find_nvcc():
        assert target["nvcc_check"].startswith("passed")
    else:
        assert target["nvcc_check"].startswith("skipped: nvcc not found")
    assert "tvm-cuda (sm_86" in module.summary()

    inputs = module.sample_inputs()
    if HAS_GPU:  # on a GPU machine: run and agree with the interpreter
        want = accelgen.run(graph, inputs)
        for key, value in module.run(inputs).items():
            np.testing.assert_allclose(value, want[key], rtol=1e-4, atol=1e-5)
    else:
        with pytest.raises(ModelLoadError, match="no CUDA device.*NVIDIA GPU"):
            module.run(inputs)
        with pytest.raises(ModelLoadError, match="no CUDA device"):
            load_compiled(tmp_path / "lib")


def test_without_nvcc_the_build_still_exports_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(cuda, "find_nvcc", lambda: None)
    module = tvm_compile(accelgen.load(str(ROOT / "examples/jet_mlp/jet_mlp.onnx")), target="tvm-cuda",
                         out_dir=tmp_path / "lib")
    assert "nvcc not found" in module.manifest["target"]["nvcc_check"]
    assert (tmp_path / "lib" / "model.so").is_file()


def test_no_cuda_compiler_at_load_is_a_clear_error(monkeypatch):
    """With a device present but neither NVRTC's bindings nor nvcc, loading stops before TVM fails deep inside."""
    class Device:
        exist = True

    monkeypatch.setattr(tvm.runtime, "enabled", lambda name: True)
    monkeypatch.setattr(tvm, "cuda", lambda index=0: Device())
    monkeypatch.setattr(cuda, "find_nvcc", lambda: None)
    real = cuda.importlib.util.find_spec
    monkeypatch.setattr(cuda.importlib.util, "find_spec", lambda name: None if name == "cuda" else real(name))
    monkeypatch.delenv("TVM_CUDA_COMPILE_MODE", raising=False)
    with pytest.raises(ModelLoadError, match="no CUDA compiler.*NVRTC.*nvcc"):
        cuda.cuda_device()
    monkeypatch.setenv("TVM_CUDA_COMPILE_MODE", "nvcc")
    with pytest.raises(ModelLoadError, match="nvcc not found"):
        cuda.cuda_device()


def test_a_build_tvm_rejects_is_a_clear_error(tmp_path, monkeypatch):
    """A failure inside TVM's CUDA lowering (here: the memory verifier's complaint about an unbound kernel)
    reaches the user as one accelgen error with TVM's last line, not a C++ traceback; nothing is exported."""
    def reject(*args, **kwargs):
        raise tvm.error.InternalError("Traceback ...\n  Memory verification failed: Did you forget to bind?")

    monkeypatch.setattr(cuda.tvm, "compile", reject)
    with pytest.raises(InvalidModelError, match="TVM cannot build this graph for tvm-cuda: .*forget to bind"):
        tvm_compile(accelgen.load(str(ROOT / "examples/jet_mlp/jet_mlp.onnx")), target="tvm-cuda",
                    out_dir=tmp_path / "lib")
    assert not (tmp_path / "lib" / "model.so").exists()
