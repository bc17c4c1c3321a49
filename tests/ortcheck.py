"""One correctness helper used across the tests: import an ONNX model, run it with accelgen's interpreter and with
onnxruntime, and compare."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

import accelgen


def run_ort(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs)))


def check_against_ort(model: onnx.ModelProto | str, inputs: dict[str, np.ndarray], rtol: float = 1e-4,
                      atol: float = 1e-5, input_shapes=None) -> accelgen.Graph:
    """Assert accelgen agrees with onnxruntime on every output; return the imported graph."""
    proto = onnx.load(model) if isinstance(model, str) else model
    graph = accelgen.load(proto, input_shapes=input_shapes)
    ours = accelgen.run(graph, inputs)
    theirs = run_ort(proto, inputs)
    assert set(ours) == set(theirs), (sorted(ours), sorted(theirs))
    for name, want in theirs.items():
        got = ours[name]
        assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
        assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)
    return graph


def rand(*shape, seed=0, dtype=np.float32, low=-2.0, high=2.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)
