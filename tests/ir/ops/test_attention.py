"""MultiHeadAttention (accelgen's fused op) against a float64 numpy reference, and the ONNX Attention op against
onnxruntime, the ONNX reference implementation and the node test suite."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, shape_inference
from onnx.reference import ReferenceEvaluator

import accelgen
from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.attention import Attention, MultiHeadAttention
from accelgen.ir.types import F32, TensorType
from tests.ortcheck import check_against_ort, rand

ROOT = Path(__file__).resolve().parents[3]


# -- MultiHeadAttention --------------------------------------------------------------------------------------------

def mha_inputs(b=2, s=5, skv=5, e=6, ekv=6, heads=2, hd=3, e_out=4, mask_shape=None, seed=0, self_attention=False):
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.uniform(-1, 1, shape).astype(np.float32)

    width = heads * hd
    xq = r(b, s, e)
    xkv = xq if self_attention else r(b, skv, ekv)
    mask = None if mask_shape is None else r(*mask_shape) * 3
    return [xq, xkv, mask, r(e, width), r(xkv.shape[2], width), r(xkv.shape[2], width), r(width), r(width), r(width),
            r(width, e_out), r(e_out)]


def mha_reference(inputs, heads, hd, scale, causal=False, zero_masked_rows=False):
    """The textbook definition in float64."""
    xq, xkv, mask, wq, wk, wv, bq, bk, bv, wo, bo = [None if a is None else a.astype(np.float64) for a in inputs]
    b, s, _ = xq.shape
    skv = xkv.shape[1]

    def split(x):
        return x.reshape(b, x.shape[1], heads, hd).transpose(0, 2, 1, 3)

    q, k, v = split(xq @ wq + bq), split(xkv @ wk + bk), split(xkv @ wv + bv)
    bias = np.zeros((s, skv)) if mask is None else mask
    if causal:
        bias = bias + np.where(np.arange(skv)[None, :] <= np.arange(s)[:, None], 0, -np.inf)
    scores = q @ k.transpose(0, 1, 3, 2) * scale + bias
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - scores.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
    if zero_masked_rows:
        p = np.where(np.isneginf(np.broadcast_to(bias, scores.shape).max(-1, keepdims=True)), 0, p)
    o = (p @ v).transpose(0, 2, 1, 3).reshape(b, s, heads * hd)
    return o @ wo + bo


def types(inputs):
    return [None if a is None else TensorType.of(a) for a in inputs]


@pytest.mark.parametrize("kwargs", [
    {"self_attention": True},
    {"s": 3, "skv": 7, "ekv": 5},  # cross-attention with another width
    {"mask_shape": (2, 1, 1, 5)},  # padding mask per batch
    {"mask_shape": (5, 5)},
    {"mask_shape": (2, 2, 5, 5)},
    {"b": 1, "s": 1, "skv": 1, "heads": 1, "hd": 1},
])
@pytest.mark.parametrize("causal", [False, True])
def test_mha_matches_definition(kwargs, causal):
    inputs = mha_inputs(**kwargs)
    heads, hd = kwargs.get("heads", 2), kwargs.get("hd", 3)
    op = MultiHeadAttention(num_heads=heads, head_dim=hd, scale=0.4, causal=causal)
    (want_type,) = op.infer(types(inputs))
    (got,) = op.compute(inputs)
    assert got.shape == want_type.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, mha_reference(inputs, heads, hd, 0.4, causal), rtol=1e-5, atol=1e-6)


def test_mha_masked_rows():
    inputs = mha_inputs(mask_shape=(2, 1, 5, 5))
    inputs[2][0, 0, 1, :] = -np.inf  # query 1 of batch 0 may see no key
    plain = MultiHeadAttention(num_heads=2, head_dim=3).compute(inputs)[0]
    assert np.isnan(plain[0, 1]).all() and not np.isnan(plain[1]).any()
    zeroed = MultiHeadAttention(num_heads=2, head_dim=3, zero_masked_rows=True).compute(inputs)[0]
    want = mha_reference(inputs, 2, 3, 1.0, zero_masked_rows=True)
    np.testing.assert_allclose(zeroed, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(zeroed[0, 1], inputs[-1], rtol=1e-6)  # zero attention: only the output bias is left


def test_mha_cost_counts_every_product():
    inputs = mha_inputs(b=2, s=3, skv=7, e=6, ekv=5, heads=2, hd=3, e_out=4)
    op = MultiHeadAttention(num_heads=2, head_dim=3)
    cost = op.cost(types(inputs), op.infer(types(inputs)))
    assert cost.macs == 2 * (3 * 6 * 6 + 2 * 7 * 5 * 6 + 2 * 3 * 7 * 6 + 3 * 6 * 4)


@pytest.mark.parametrize("change, message", [
    (lambda x: x.__setitem__(3, x[3][:, :4]), "Wq has shape"),
    (lambda x: x.__setitem__(9, x[9][:5]), "Wo has shape"),
    (lambda x: x.__setitem__(2, np.zeros((3, 1, 5, 5), np.float32)), "does not broadcast"),
    (lambda x: x.__setitem__(2, np.zeros((1, 1, 1, 5, 5), np.float32)), "does not broadcast"),
    (lambda x: x.__setitem__(1, x[1][:1]), "same B"),
    (lambda x: x.__setitem__(6, x[6].astype(np.float64)), "element types"),
    (lambda x: x.__setitem__(4, None), "only mask may be empty"),
])
def test_mha_rejects_inconsistent_inputs(change, message):
    inputs = mha_inputs()
    change(inputs)
    with pytest.raises(ShapeError, match=message):
        MultiHeadAttention(num_heads=2, head_dim=3).infer(types(inputs))


def test_mha_attributes_checked():
    with pytest.raises(InvalidModelError):
        MultiHeadAttention(num_heads=0, head_dim=4)


# -- ONNX Attention ----------------------------------------------------------------------------------------------

NAMES = ["Q", "K", "V", "attn_mask", "past_key", "past_value", "nonpad_kv_seqlen"]


def attention_model(shapes, attrs=None, n_out=1, opset=23, bool_mask=False):
    """One Attention node; `shapes` gives the inputs in order (None: an empty optional input)."""
    inputs, names = [], []
    for name, shape in zip(NAMES, shapes):
        if shape is None:
            names.append("")
            continue
        dtype = {"attn_mask": TensorProto.BOOL if bool_mask else TensorProto.FLOAT,
                 "nonpad_kv_seqlen": TensorProto.INT64}.get(name, TensorProto.FLOAT)
        inputs.append(helper.make_tensor_value_info(name, dtype, shape))
        names.append(name)
    outs = ["Y", "present_key", "present_value", "qk"][:n_out]
    node = helper.make_node("Attention", names, outs, **(attrs or {}))
    graph = helper.make_graph([node], "g", inputs, [helper.make_empty_tensor_value_info(o) for o in outs])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    m = shape_inference.infer_shapes(m)
    for o in m.graph.output:  # the checker needs typed outputs; accelgen ignores the declared output types
        if not o.type.tensor_type.HasField("shape"):
            o.CopyFrom(helper.make_tensor_value_info(o.name, TensorProto.FLOAT, []))
    return m


def feeds_for(shapes, bool_mask=False, seed=0):
    feeds = {}
    for i, (name, shape) in enumerate(zip(NAMES, shapes)):
        if shape is None:
            continue
        if name == "attn_mask" and bool_mask:
            feeds[name] = np.random.default_rng(seed + i).random(shape) > 0.3
        else:
            feeds[name] = rand(*shape, seed=seed + i)
    return feeds


Q4, K4, V4 = (2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8)
ORT_CASES = [
    ([Q4, K4, V4], {}, 1, False),
    ([Q4, K4, (2, 3, 6, 10)], {"scale": 0.2}, 1, False),
    ([(2, 4, 24), (2, 6, 24), (2, 6, 24)], {"q_num_heads": 3, "kv_num_heads": 3}, 1, False),
    ([(2, 4, 72), (2, 6, 24), (2, 6, 24)], {"q_num_heads": 9, "kv_num_heads": 3, "is_causal": 1}, 1, False),
    ([(2, 9, 4, 8), K4, V4], {}, 1, False),  # grouped-query, 4-D
    ([Q4, K4, V4, (4, 6)], {}, 1, True),
    ([Q4, K4, V4, (2, 1, 4, 6)], {"is_causal": 1}, 1, False),
    ([Q4, K4, (2, 3, 6, 10), (4, 18), (2, 3, 12, 8), (2, 3, 12, 10)], {"is_causal": 1}, 3, False),
    *[([Q4, K4, V4, (4, 6)], {"softcap": 2.0, "qk_matmul_output_mode": mode}, 4, False) for mode in range(4)],
]


@pytest.mark.parametrize("shapes, attrs, n_out, bool_mask", ORT_CASES)
def test_attention_against_onnxruntime(shapes, attrs, n_out, bool_mask):
    check_against_ort(attention_model(shapes, attrs, n_out, bool_mask=bool_mask), feeds_for(shapes, bool_mask))


@pytest.mark.parametrize("shapes, attrs, bool_mask", [
    ([Q4, K4, V4, (4, 4)], {}, False),  # a short mask is padded with -inf (onnxruntime rejects it)
    ([Q4, K4, V4, (4, 4)], {"is_causal": 1}, True),
    ([(1, 1, 2, 8), (1, 1, 2, 8), (1, 1, 2, 8), (2, 2)], {}, True),  # may mask a whole row: zeros, not NaN
])
def test_attention_against_onnx_reference(shapes, attrs, bool_mask):
    model = attention_model(shapes, attrs, bool_mask=bool_mask)
    feeds = feeds_for(shapes, bool_mask, seed=3)
    if bool_mask and shapes[0] == (1, 1, 2, 8):
        feeds["attn_mask"] = np.array([[False, False], [True, False]])
    (want,) = ReferenceEvaluator(model).run(None, feeds)
    got = accelgen.run(accelgen.load(model), feeds)["Y"]
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_attention_causal_with_broadcast_mask():
    """A mask broadcast over queries still gets the causal frontier of each query, as the spec says (the ONNX
    reference builds the frontier from the mask's own shape there, and onnxruntime rejects such masks)."""
    shapes = [Q4, K4, V4, (1, 6)]
    feeds = feeds_for(shapes, bool_mask=True, seed=5)
    got = accelgen.run(accelgen.load(attention_model(shapes, {"is_causal": 1}, bool_mask=True)), feeds)["Y"]
    feeds["attn_mask"] = np.broadcast_to(feeds["attn_mask"], (4, 6)).copy()
    model = attention_model([Q4, K4, V4, (4, 6)], {"is_causal": 1}, bool_mask=True)
    np.testing.assert_array_equal(got, accelgen.run(accelgen.load(model), feeds)["Y"])
    (want,) = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_attention_cost():
    op = Attention()
    inputs = [TensorType(s, F32) for s in (Q4, K4, V4)]
    assert op.cost(inputs, op.infer(inputs)).macs == 2 * 3 * 4 * 6 * (8 + 8)


@pytest.mark.parametrize("shapes, attrs, error, message", [
    ([(2, 4, 24), (2, 6, 24), (2, 6, 24)], {}, ShapeError, "q_num_heads and kv_num_heads"),
    ([(2, 4, 24), (2, 6, 24), (2, 6, 24)], {"q_num_heads": 5, "kv_num_heads": 3}, ShapeError, "do not split"),
    ([Q4, (2, 2, 6, 8), (2, 2, 6, 8)], {}, ShapeError, "not a multiple"),
    ([Q4, K4, (2, 3, 5, 8)], {}, ShapeError, "disagree"),
    ([Q4, K4, V4, (2, 2, 4, 6)], {}, ShapeError, "attn_mask"),
    ([Q4, K4, V4, (4, 7)], {}, ShapeError, "attn_mask"),
    ([Q4, K4, V4], {"qk_matmul_output_mode": 4}, InvalidModelError, "qk_matmul_output_mode"),
    ([Q4, K4, V4], {"left_window_size": 2}, InvalidModelError, "opset 25"),
    ([Q4, K4, V4], {"softmax_precision": 7}, InvalidModelError, "softmax_precision"),
])
def test_attention_rejects_bad_nodes(shapes, attrs, error, message):
    with pytest.raises(error, match=message):
        op = Attention.from_onnx(dict(attrs), 23, 1)
        op.infer([TensorType(s, F32) for s in shapes])


def test_attention_node_suite_cases_pass():
    """Every non-expanded test_attention_* case of the ONNX node suite (opsets 23-25) passes."""
    spec = importlib.util.spec_from_file_location("onnx_conformance", ROOT / "benchmarks" / "onnx_conformance.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    outcomes = [o for o in module.run_suite("test_attention") if "expanded" not in o.name]
    assert len(outcomes) >= 90
    assert {o.name: o.reason for o in outcomes if o.status != "passed"} == {}
