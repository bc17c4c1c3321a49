"""Fused table activations (Sigmoid, Tanh) index the node's LookupTable exactly as the interpreter does."""

import numpy as np
import pytest

import accelgen
from accelgen.backends.hls import compile
from tests.backends.hls.conftest import interpreter
from tests.onnxmodels import const, text_model


def mlp(activation: str) -> accelgen.Graph:
    rng = np.random.default_rng(3)
    w1 = rng.normal(0, 0.6, (8, 12)).astype(np.float32)
    b1 = rng.normal(0, 0.3, (12,)).astype(np.float32)
    w2 = rng.normal(0, 0.6, (12, 4)).astype(np.float32)
    return text_model("(float[1,8] x) => (float[1,4] y)",
                      [const("w1", w1), const("b1", b1), const("w2", w2)],
                      f"h0 = MatMul(x, w1)\nh1 = Add(h0, b1)\nh = {activation}(h1)\ny = MatMul(h, w2)")


@pytest.mark.parametrize("activation", ["Sigmoid", "Tanh"])
def test_table_activation_bit_exact(activation, tmp_path):
    g = accelgen.optimize(mlp(activation))
    calib = {"x": np.random.default_rng(0).normal(0, 1.5, (400, 8)).astype(np.float32)}
    q = accelgen.quantize(g, calib, table_size=256)
    dense = q.nodes[0]
    assert dense.op_type == "Dense" and dense.op.op.activation.op_type == activation
    assert dense.op.param("activation_table") is not None
    project = compile(q, out_dir=tmp_path / "p", calibration=calib)
    x = np.random.default_rng(5).normal(0, 2.5, (300, 8))  # wider than calibration: the table ends clamp
    np.testing.assert_array_equal(project.predict({"x": x})["y"], interpreter(q, "x", x))
