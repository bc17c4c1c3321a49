"""Post-training quantization of the example MLP and CNN: the default is safe, and fixed-point execution is
deterministic, counts saturation, and rounds exactly where the types say."""

import numpy as np
import pytest

import accelgen
from accelgen.errors import QuantizationError
from accelgen.ir.fixed import quantize as fixed_quantize
from accelgen.ir.types import FixedType
from tests.quant.datasets import ROOT, digits, jets


def jet_graph(batch=256):
    g = accelgen.load(ROOT / "examples" / "jet_mlp" / "jet_mlp.onnx", input_shapes={"input": (batch, 16)})
    return accelgen.optimize(g)


def agreement(float_graph, q_graph, name, x, batch) -> float:
    same = 0
    for i in range(0, len(x), batch):
        f = next(iter(accelgen.run(float_graph, {name: x[i:i + batch]}).values()))
        z = next(iter(accelgen.run(q_graph, {name: x[i:i + batch]}).values()))
        same += int((f.argmax(-1) == z.argmax(-1)).sum())
    return same / len(x)


def total_bits(q) -> int:
    """Bits of every weight and every activation tensor of a quantized graph."""
    values = list(q.constants.values()) + list(q.inputs) + [v for n in q.nodes for v in n.outputs]
    return sum(v.type.numel * v.dtype.width for v in values if isinstance(v.dtype, FixedType))


def test_jet_mlp_auto_agrees_with_float_and_is_no_wider_than_uniform_16_6():
    g = jet_graph()
    calib, _ = jets(1024, seed=1)
    held_out, _ = jets(2560, seed=2)
    q = accelgen.quantize(g, {"input": calib})
    assert agreement(g, q, "input", held_out, 256) >= 0.995
    uniform = accelgen.quantize(g, {"input": calib}, precision="fixed<16,6>")
    assert total_bits(q) <= total_bits(uniform)
    assert [n.op_type for n in q.nodes] == ["Dense"] * 4 + ["Softmax"]


def test_digits_cnn_auto_agrees_with_float():
    data = digits()
    g = accelgen.optimize(accelgen.load(ROOT / "examples" / "digits_cnn" / "digits_cnn.onnx",
                                        input_shapes={"image": (360, 1, 8, 8)}))
    q = accelgen.quantize(g, {"image": data["train"][:1080]})
    assert agreement(g, q, "image", data["test"], 360) >= 0.995
    logits = accelgen.run(q, {"image": data["test"]})["logits"]
    assert (logits.argmax(-1) == data["test_labels"]).mean() >= 0.97


def test_every_tensor_is_fixed_and_execution_is_deterministic():
    g = jet_graph(batch=8)
    q = accelgen.quantize(g, {"input": jets(64, seed=1)[0]})
    for v in [*q.inputs, *q.constants.values(), *(o for n in q.nodes for o in n.outputs)]:
        assert isinstance(v.dtype, FixedType), v
    x = jets(8, seed=3)[0]
    a, b = accelgen.run(q, {"input": x}), accelgen.run(q, {"input": x})
    np.testing.assert_array_equal(a["output"], b["output"])
    out_type = q.outputs[0].dtype
    np.testing.assert_array_equal(fixed_quantize(out_type, a["output"])[0], a["output"])  # on the type's grid


def test_dense_is_exact_accumulation_then_one_rounding():
    g = jet_graph(batch=8)
    q = accelgen.quantize(g, {"input": jets(64, seed=1)[0]})
    dense = q.nodes[0]
    x = jets(8, seed=4)[0]
    xq = fixed_quantize(q.inputs[0].dtype, x)[0]
    w, b = dense.inputs[1].data, dense.inputs[2].data
    want = fixed_quantize(dense.outputs[0].dtype, np.maximum(xq @ w + b, 0))[0]
    stats = {}
    got = {}
    accelgen.run(q, {"input": x}, stats=stats, observe=lambda v, a: got.__setitem__(v.name, a))
    np.testing.assert_array_equal(got[dense.outputs[0].name], want)
    acc = dense.op.param("accum")
    assert acc.width <= 53 and acc.fractional == q.inputs[0].dtype.fractional + dense.inputs[1].dtype.fractional


def test_saturation_is_counted_not_hidden():
    g = jet_graph(batch=8)
    q = accelgen.quantize(g, {"input": jets(64, seed=1)[0]})
    stats = {}
    accelgen.run(q, {"input": jets(8, seed=5)[0] * 50}, stats=stats)  # far outside the calibrated range
    assert stats["input"].overflows > 0
    assert sum(s.overflows for s in stats.values()) >= stats["input"].overflows


def test_uniform_precision_uses_that_type():
    g = jet_graph(batch=8)
    q = accelgen.quantize(g, {"input": jets(64, seed=1)[0]}, precision="fixed<16,6>")
    assert {str(n.outputs[0].dtype) for n in q.nodes if n.op_type == "Dense"} == {"fixed<16,6>"}


def test_overrides_by_op_type_and_node_name():
    g = jet_graph(batch=8)
    first = g.nodes[0].name
    q = accelgen.quantize(g, {"input": jets(64, seed=1)[0]},
                          overrides={"Dense": {"width": 12}, first: {"type": "fixed<20,8,RND,SAT>"}})
    types = [str(n.outputs[0].dtype) for n in q.nodes if n.op_type == "Dense"]
    assert types[0] == "fixed<20,8,RND,SAT>" and all(t.startswith("ufixed<12,") or t.startswith("fixed<12,")
                                                     for t in types[1:])


@pytest.mark.parametrize("kwargs, message", [
    ({"calibration": {}}, "non-empty"),
    ({"calibration": {"input": np.zeros((0, 16), np.float32)}}, "shape|empty"),
    ({"calibration": {"input": np.zeros((8, 15), np.float32)}}, "shape"),
    ({"calibration": {"x": np.zeros((8, 16), np.float32)}}, "unknown .'x'.; missing .'input'."),
    ({"precision": "fixed<-4,2>"}, "width"),
    ({"precision": "fixed<8,10>"}, "integer bits .10. exceed the width .8."),
    ({"precision": "floaty"}, "fixed-point type|precision"),
    ({"weight_bits": 0}, "weight_width"),
    ({"margin": 0.5}, "margin"),
])
def test_invalid_requests_are_clear_errors(kwargs, message):
    g = jet_graph(batch=8)
    args = {"calibration": {"input": jets(8, seed=1)[0]}, **kwargs}
    with pytest.raises(QuantizationError, match=message):
        accelgen.quantize(g, **args)


def test_graph_is_left_unchanged():
    g = jet_graph(batch=8)
    text = str(g)
    accelgen.quantize(g, {"input": jets(8, seed=1)[0]})
    assert str(g) == text


def _fused_untabled_model(path):
    """Conv + HardSwish, Gemm + LeakyRelu and a HardSigmoid: the optimizer fuses all three into the linear ops."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("HardSwish", ["c"], ["h"], name="hswish"),
             helper.make_node("Flatten", ["h"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["g"], name="fc"),
             helper.make_node("LeakyRelu", ["g"], ["l"], alpha=0.1, name="leaky"),
             helper.make_node("Gemm", ["l", "w3"], ["d"], name="fc2"),
             helper.make_node("HardSigmoid", ["d"], ["y"], name="hsig")]
    inits = [numpy_helper.from_array(rng.normal(size=(3, 2, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(0.1 * rng.normal(size=(108, 4)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "b2"),
             numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "w3")]
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return accelgen.load(str(path))


def test_fused_activations_without_a_table_are_split_off(tmp_path):
    """MobileNetV3's Conv + HardSwish: optimize fuses it, and quantize used to crash on it (no table for a fused
    HardSwish); the activation now gets its own fixed-point node, close to float."""
    g = _fused_untabled_model(tmp_path / "m.onnx")
    o = accelgen.optimize(g)
    assert [n.op_type for n in o.nodes] == ["FusedConv", "Reshape", "Dense", "Dense"]
    rng = np.random.default_rng(1)
    q = accelgen.quantize(o, {"x": rng.normal(size=(200, 2, 6, 6)).astype(np.float32)})
    assert [n.op_type for n in q.nodes] == ["Conv", "HardSwish", "Reshape", "Dense", "LeakyRelu", "Dense",
                                            "HardSigmoid"]
    assert [n.op_type for n in o.nodes] == ["FusedConv", "Reshape", "Dense", "Dense"]  # the input is unchanged
    x = rng.normal(size=(20, 1, 2, 6, 6)).astype(np.float32)
    for sample in x:
        np.testing.assert_allclose(accelgen.run(q, {"x": sample})["y"], accelgen.run(g, {"x": sample})["y"],
                                   atol=2e-3)
