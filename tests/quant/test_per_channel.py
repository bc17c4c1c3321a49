"""Per-channel weight quantization: each output channel stored at the full weight width and shifted back exactly
in the accumulator ("column_shifts"); and low-bit weights with wide activations (weight_bits < activation_bits)."""

import numpy as np
import pytest

import accelgen
from accelgen.errors import QuantizationError
from accelgen.ir.fixed import quantize as fixed_quantize
from accelgen.ir.graph import Graph
from accelgen.ir.ops.activations import Relu
from accelgen.ir.ops.conv import Conv
from accelgen.ir.ops.fused import Dense
from accelgen.ir.types import F32, FixedType, TensorType
from accelgen.quant.context import column_shifts
from tests.quant.datasets import ROOT, digits, jets
from tests.quant.test_quantize import agreement, jet_graph, total_bits


def cosine(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def uneven_dense(batch=64, seed=0) -> Graph:
    """x[B, 16] -> Dense(16 -> 8): column n of W has magnitude ~2**-n, the shape per-tensor types serve worst."""
    rng = np.random.default_rng(seed)
    g = Graph("uneven")
    x = g.add_input("x", TensorType((batch, 16), F32))
    w = rng.choice([-1.0, 1.0], (16, 8)) * rng.uniform(0.3, 0.9, (16, 8))
    w[0] = 0.95  # every column's maximum in [0.5, 1): shifted by n bits, column n fills the type like column 0
    w = (w * np.exp2(-np.arange(8))).astype(np.float32)
    b = (rng.normal(size=8) * 0.01).astype(np.float32)
    y = g.add_node(Dense(), [x, g.add_constant("W", w), g.add_constant("b", b)], ["y"], "dense").outputs[0]
    g.outputs = [y]
    return g


def column_errors(g, q, x) -> np.ndarray:
    """Per output column, the max error relative to that column's float magnitude."""
    f, z = accelgen.run(g, {"x": x})["y"], accelgen.run(q, {"x": x})["y"]
    return np.abs(z - f).max(axis=0) / np.abs(f).max(axis=0)


def test_per_channel_dense_is_exact_shift_of_full_width_columns():
    g = uneven_dense()
    rng = np.random.default_rng(1)
    calib, x = rng.normal(size=(256, 16)).astype(np.float32), rng.normal(size=(64, 16)).astype(np.float32)
    q = accelgen.quantize(g, {"x": calib}, weight_bits=6, per_channel=True)
    node = q.nodes[0]
    shifts = node.op.param("column_shifts")
    assert shifts == tuple(-n for n in range(8))  # column n is 2**-n times smaller
    w_type = node.inputs[1].dtype
    assert w_type.width == 6
    stored = node.inputs[1].data
    # every column uses the top binade of the type: the full 6 bits
    assert np.all(np.abs(stored).max(axis=0) >= 2.0 ** (w_type.integer - 2))
    # the node computes round(((x @ W') * 2**k) + b): no rounding before the output type
    xq = fixed_quantize(q.inputs[0].dtype, x)[0]
    want = fixed_quantize(node.outputs[0].dtype, np.ldexp(xq @ stored, np.array(shifts)) + node.inputs[2].data)[0]
    np.testing.assert_array_equal(accelgen.run(q, {"x": x})["y"], want)
    # the exact sums fit their declared types
    accum, col = node.op.param("accum"), node.op.param("column_accum")
    assert accum.fractional == q.inputs[0].dtype.fractional + w_type.fractional
    assert col.fractional == accum.fractional + 7 and col.width <= 53
    assert np.array_equal(fixed_quantize(col, np.ldexp(xq @ stored, np.array(shifts)) + node.inputs[2].data)[0],
                          np.ldexp(xq @ stored, np.array(shifts)) + node.inputs[2].data)


def test_per_channel_gives_small_columns_their_precision():
    g = uneven_dense()
    rng = np.random.default_rng(2)
    calib, x = rng.normal(size=(256, 16)).astype(np.float32), rng.normal(size=(64, 16)).astype(np.float32)
    plain = column_errors(g, accelgen.quantize(g, {"x": calib}, weight_bits=6), x)
    per_channel = column_errors(g, accelgen.quantize(g, {"x": calib}, weight_bits=6, per_channel=True), x)
    assert plain[-1] > 0.3  # the smallest column has about one bit left per-tensor
    assert per_channel.max() < 0.1
    assert np.all(per_channel[1:] < plain[1:])


def test_same_storage_bits_and_plain_path_unchanged():
    g = jet_graph(batch=64)
    calib = jets(512, seed=1)[0]
    plain = accelgen.quantize(g, {"input": calib}, weight_bits=6)
    pc = accelgen.quantize(g, {"input": calib}, weight_bits=6, per_channel=True)
    assert total_bits(pc) == total_bits(plain)
    assert all(n.op.param("column_shifts") is None for n in plain.nodes)
    assert any(n.op.param("column_shifts") for n in pc.nodes)
    for a, b in zip(plain.nodes, pc.nodes):  # only the weights and the accumulator change
        assert a.outputs[0].dtype == b.outputs[0].dtype


def outputs(g, name, x, batch):
    return np.concatenate([next(iter(accelgen.run(g, {name: x[i:i + batch]}).values()))
                           for i in range(0, len(x), batch)])


def test_jet_mlp_per_channel_at_4_bit_weights():
    g = jet_graph()
    calib, _ = jets(1024, seed=1)
    held_out, _ = jets(2560, seed=2)
    plain = accelgen.quantize(g, {"input": calib}, weight_bits=4)
    pc = accelgen.quantize(g, {"input": calib}, weight_bits=4, per_channel=True)
    f = outputs(g, "input", held_out, 256)
    assert cosine(f, outputs(pc, "input", held_out, 256)) > cosine(f, outputs(plain, "input", held_out, 256))
    assert agreement(g, pc, "input", held_out, 256) >= 0.995


def test_cnn_per_channel_fused_conv_is_exact_and_helps_at_5_bits():
    data = digits()
    g = accelgen.optimize(accelgen.load(ROOT / "examples" / "digits_cnn" / "digits_cnn.onnx",
                                        input_shapes={"image": (360, 1, 8, 8)}))
    calib, test = data["train"][:1080], data["test"]
    plain = accelgen.quantize(g, {"image": calib}, weight_bits=5)
    pc = accelgen.quantize(g, {"image": calib}, weight_bits=5, per_channel=True)
    f = accelgen.run(g, {"image": test})["logits"]
    z_plain, z_pc = accelgen.run(plain, {"image": test})["logits"], accelgen.run(pc, {"image": test})["logits"]
    assert cosine(f, z_pc) > cosine(f, z_plain)
    assert (f.argmax(-1) == z_pc.argmax(-1)).mean() >= 0.99

    # The first FusedConv: shifting after the accumulation equals convolving with the shifted weights.
    conv = pc.nodes[0]
    shifts = conv.op.param("column_shifts")
    assert conv.op_type == "FusedConv" and shifts is not None and min(shifts) < 0
    seen = {}
    accelgen.run(pc, {"image": test}, observe=lambda v, a: seen.__setitem__(v.name, a))
    effective = np.ldexp(conv.inputs[1].data, np.array(shifts).reshape(-1, 1, 1, 1))
    exact = Conv(**conv.op.op.conv.attrs()).compute([seen[conv.inputs[0].name], effective, conv.inputs[2].data])[0]
    want = fixed_quantize(conv.outputs[0].dtype, np.maximum(exact, 0))[0]
    np.testing.assert_array_equal(seen[conv.outputs[0].name], want)


def test_overrides_switch_per_channel_per_layer():
    g = jet_graph(batch=64)
    calib = jets(512, seed=1)[0]
    first = g.nodes[0].name
    q = accelgen.quantize(g, {"input": calib}, weight_bits=6, per_channel=True,
                          overrides={first: {"per_channel": False}})
    assert q.nodes[0].op.param("column_shifts") is None and q.nodes[1].op.param("column_shifts")
    q = accelgen.quantize(g, {"input": calib}, weight_bits=6, overrides={first: {"per_channel": True}})
    assert q.nodes[0].op.param("column_shifts") and q.nodes[1].op.param("column_shifts") is None


def test_column_shifts_never_overflow_on_rounding():
    storage = FixedType(4, 1, True, "RND_CONV", "SAT")  # holds [-1, 0.875] in steps of 1/8
    w = np.array([[0.9, 0.24, 0.001, 0.0], [-0.5, 0.2, 0.0, 0.0]])
    # column 1: 0.24 * 4 = 0.96 rounds to 1.0 (overflow), so it is scaled by 2 only; column 3 is all zero
    assert column_shifts(w, storage, axis=1) == (0, -1, -9, 0)
    assert column_shifts(w, storage, axis=1, max_shift=3) == (0, -1, -3, 0)


def test_low_bit_weights_with_wide_activations():
    g = jet_graph()
    calib, _ = jets(1024, seed=1)
    held_out, _ = jets(2560, seed=2)
    q = accelgen.quantize(g, {"input": calib}, weight_bits=4, activation_bits=18, per_channel=True)
    weights = [n.inputs[1].dtype for n in q.nodes if n.op_type == "Dense"]
    assert {t.width for t in weights} == {4}
    assert all(n.outputs[0].dtype.width == 18 for n in q.nodes if n.op_type == "Dense")
    assert agreement(g, q, "input", held_out, 256) >= 0.995


def test_per_channel_must_be_a_bool():
    g = jet_graph(batch=8)
    with pytest.raises(QuantizationError, match="per_channel"):
        accelgen.quantize(g, {"input": jets(64, seed=1)[0]}, per_channel="yes")


def test_relu_dense_per_channel_by_hand():
    """A Dense with a fused Relu and per-channel weights: the activation acts on the shifted, biased sum."""
    rng = np.random.default_rng(3)
    g = Graph("relu_dense")
    x = g.add_input("x", TensorType((32, 8), F32))
    w = (rng.normal(size=(8, 4)) * np.array([1.0, 0.1, 0.01, 1.0])).astype(np.float32)
    b = (rng.normal(size=4) * 0.05).astype(np.float32)
    g.outputs = [g.add_node(Dense(activation=Relu()), [x, g.add_constant("W", w), g.add_constant("b", b)],
                            ["y"], "dense").outputs[0]]
    data = rng.normal(size=(128, 8)).astype(np.float32)
    q = accelgen.quantize(g, {"x": data}, weight_bits=8, per_channel=True)
    node = q.nodes[0]
    shifts = np.array(node.op.param("column_shifts"))
    xq = fixed_quantize(q.inputs[0].dtype, data[:32])[0]
    want = fixed_quantize(node.outputs[0].dtype,
                          np.maximum(np.ldexp(xq @ node.inputs[1].data, shifts) + node.inputs[2].data, 0))[0]
    np.testing.assert_array_equal(accelgen.run(q, {"x": data[:32]})["y"], want)
