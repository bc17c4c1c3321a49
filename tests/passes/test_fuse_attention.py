"""fuse-attention: real exporter graphs, hand-written variants in ONNX text, the ONNX Attention op, generated
layouts (property test), and the near-misses that must be left alone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper, shape_inference

import accelgen
from accelgen.passes import optimize_with_report
from accelgen.passes.base import random_inputs
from tests.ortcheck import run_ort

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests" / "data" / "models"
EXAMPLES = ROOT / "examples" / "tiny_transformer"


def census(graph) -> Counter:
    return Counter(n.op_type for n in graph.nodes)


def assert_same(before, after, seeds=(0, 1, 2), rtol=1e-5, atol=1e-6):
    for seed in seeds:
        feeds = random_inputs(before, seed)
        want, got = accelgen.run(before, feeds), accelgen.run(after, feeds)
        assert set(want) == set(got)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=atol, err_msg=name)


def fuse(graph, pipeline=("fuse-attention",)):
    return optimize_with_report(graph, list(pipeline) if not isinstance(pipeline, str) else pipeline, check=True,
                                verify_each=True)


# -- real exports ------------------------------------------------------------------------------------------------

REAL = [(MODELS / "encoder_torchscript.onnx", 2), (MODELS / "encoder_dynamo.onnx", 2),
        (MODELS / "fused_qkv_block_torchscript.onnx", 1), (MODELS / "fused_qkv_block_dynamo.onnx", 1),
        (MODELS / "bert_layer.onnx", 1), (EXAMPLES / "tiny_transformer.onnx", 2),
        (EXAMPLES / "tiny_transformer_dynamo.onnx", 2)]


@pytest.mark.parametrize("pipeline", [("fuse-attention",), "default"], ids=["alone", "default"])
@pytest.mark.parametrize("path, layers", REAL, ids=[p.name for p, _ in REAL])
def test_real_exports_fuse_one_mha_per_layer(path, layers, pipeline):
    graph = accelgen.load(str(path))
    result = fuse(graph, pipeline)
    after = result.graph
    assert result.fired["mha_from_softmax"] == layers
    ops = census(after)
    assert ops["MultiHeadAttention"] == layers and ops["Softmax"] == 0, ops
    assert not result.refusals or all(r.rule != "mha_from_softmax" for r in result.refusals)
    assert_same(graph, after)
    feeds = random_inputs(graph, 7)
    theirs = run_ort(onnx.load(str(path)), feeds)
    ours = accelgen.run(after, feeds)
    for name, want in theirs.items():
        np.testing.assert_allclose(ours[name], want, rtol=1e-4, atol=1e-5, err_msg=name)
    if pipeline == "default":  # what is left is the model's own semantics, no plumbing
        assert not {"Transpose", "Gather", "Split", "Shape", "Concat", "Unsqueeze", "Squeeze"} & set(ops), ops


def test_bert_mask_computation_feeds_the_mask_input():
    graph = accelgen.load(str(MODELS / "bert_layer.onnx"))
    after = fuse(graph).graph
    mha = next(n for n in after.nodes if n.op_type == "MultiHeadAttention")
    mask = mha.inputs[2]
    assert mask.shape == (1, 1, 1, 8) and mask.producer.op_type == "Mul"  # (1 - mask) * -10000, unchanged
    assert mha.op.num_heads == 4 and mha.op.head_dim == 8
    assert mha.op.scale == pytest.approx(1 / np.sqrt(8), rel=1e-6)
    assert mha.inputs[0] is mha.inputs[1] is after.inputs[0]  # self-attention on the layer's input


def test_weights_are_the_original_slices():
    """One fused QKV Linear: Wq, Wk, Wv are its column blocks, the biases its bias blocks."""
    graph = accelgen.load(str(MODELS / "fused_qkv_block_torchscript.onnx"))
    qkv = next(n for n in graph.nodes if n.op_type == "MatMul").inputs[1].data
    after = fuse(graph).graph
    (mha,) = [n for n in after.nodes if n.op_type == "MultiHeadAttention"]
    assert all(v.is_constant for v in mha.inputs[3:])
    for i, w in enumerate(mha.inputs[3:6]):
        np.testing.assert_array_equal(w.data, qkv[:, 32 * i: 32 * (i + 1)])


def test_sequence_first_encoder_needs_no_transposes():
    """nn.MultiheadAttention works sequence-first behind Transposes; the fused op reads the batch-first tensor
    those Transposes came from and writes the one they go back to."""
    graph = accelgen.load(str(MODELS / "encoder_torchscript.onnx"))
    after = fuse(graph).graph
    assert census(after)["Transpose"] == 0
    first = next(n for n in after.nodes if n.op_type == "MultiHeadAttention")
    assert first.inputs[0] is after.inputs[0]
    assert first.op.scale == pytest.approx(1 / np.sqrt(8), rel=1e-6)


# -- hand-written attention in ONNX text -------------------------------------------------------------------------

TEXT = """
<ir_version: 8, opset_import: ["" : 17]>
attention (float[1,4,8] x, float[MASK] mask, float[8,8] wq, float[8] bq, float[8,8] wk, float[8] bk,
           float[8,8] wv, float[8] bv, float[8,8] wo, float[8] bo) => (float[1,4,8] y EXTRA)
{
    heads = Constant<value = int64[4] {1, 4, 2, 4}>()
    merged = Constant<value = int64[3] {1, 4, 8}>()
    scale = Constant<value = SCALE_TYPE {SCALE}>()
    q0 = MatMul(x, wq)
    q1 = Add(q0, bq)
    q2 = Reshape(q1, heads)
    q = Transpose<perm = [0, 2, 1, 3]>(q2)
    k0 = MatMul(x, wk)
    k1 = Add(k0, bk)
    k2 = Reshape(k1, heads)
    kt = Transpose<perm = [0, 2, 3, 1]>(k2)
    v0 = MatMul(x, wv)
    v1 = Add(v0, bv)
    v2 = Reshape(v1, heads)
    v = Transpose<perm = [0, 2, 1, 3]>(v2)
    scores = MatMul(q, kt)
    scaled = Div(scores, scale)
    masked = Add(scaled, mask)
    probs = Softmax<axis = AXIS>(masked)
    ctx = MatMul(probs, v)
    ctx2 = Transpose<perm = [0, 2, 1, 3]>(ctx)
    ctx3 = Reshape(ctx2, merged)
    o = MatMul(ctx3, wo)
    y = Add(o, bo)
}
"""
WEIGHTS = ("wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo")


def text_model(replace=(), constants=WEIGHTS, **fields):
    """The ONNX text model above with `replace` (old, new) edits; the `constants` inputs become initializers."""
    text = TEXT
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new)
    defaults = {"MASK": "1,1,1,4", "EXTRA": "", "SCALE_TYPE": "float", "SCALE": "2.8284271", "AXIS": "-1"}
    for key, value in {**defaults, **fields}.items():
        text = text.replace(key, value)
    model = onnx.parser.parse_model(text)
    rng = np.random.default_rng(0)
    keep = []
    for i in model.graph.input:
        if i.name in constants:
            shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
            model.graph.initializer.append(numpy_helper.from_array(rng.uniform(-0.5, 0.5, shape).astype(np.float32),
                                                                   i.name))
        else:
            keep.append(i)
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return accelgen.load(model)


def test_text_model_fuses():
    graph = text_model()
    result = fuse(graph)
    assert result.fired == {"mha_from_softmax": 1}
    assert census(result.graph) == {"MultiHeadAttention": 1}
    (mha,) = result.graph.nodes
    assert mha.inputs[2] is result.graph.inputs[1]  # the mask goes straight in
    assert result.graph.outputs[0].name == "y"
    assert_same(graph, result.graph)


@pytest.mark.parametrize("replace, fields", [
    ([("    masked = Add(scaled, mask)\n", "    masked = Add(mask, scaled)\n")], {}),
    ([("scaled = Div(scores, scale)", "scaled = Mul(scores, scale)")], {"SCALE": "0.125"}),
    ([("    q = Transpose<perm = [0, 2, 1, 3]>(q2)\n",
       "    qs = Transpose<perm = [0, 2, 1, 3]>(q2)\n    q = Mul(qs, scale)\n"),
      ("scaled = Div(scores, scale)", "scaled = Identity(scores)")], {"SCALE": "0.3"}),
    ([], {"MASK": "4"}),
    ([], {"MASK": "1,4,4"}),
    ([], {"SCALE_TYPE": "float[1]", "SCALE": "3.0"}),
])
def test_text_model_variants_fuse(replace, fields):
    graph = text_model(replace, **fields)
    result = fuse(graph)
    assert result.fired == {"mha_from_softmax": 1}, result.refusals
    assert_same(graph, result.graph)


NEAR_MISSES = {
    "mask widens the scores": ({"MASK": "2,1,1,4"}, [("{1, 4, 8}", "{2, 4, 8}"), ("float[1,4,8] y", "float[2,4,8] y")],
                               WEIGHTS, "widens"),
    "scale on V, not the scores": ({}, [("    v = Transpose<perm = [0, 2, 1, 3]>(v2)\n",
                                         ("    vs = Transpose<perm = [0, 2, 1, 3]>(v2)\n"
                                          "    v = Div(vs, scale)\n")),
                                        ("scaled = Div(scores, scale)", "scaled = Identity(scores)")],
                                   WEIGHTS, "V is scaled"),
    "probabilities also an output": ({"EXTRA": ", float[1,2,4,4] probs"}, [], WEIGHTS, "graph output"),
    "query projection used elsewhere": ({"EXTRA": ", float[1,4,8] q1"}, [], WEIGHTS, "graph output"),
    "weight not constant": ({}, [], tuple(w for w in WEIGHTS if w != "wk"), "K comes from MatMul"),
    "softmax over queries": ({"AXIS": "2"}, [], WEIGHTS, "axis 2"),
    "per-head scale": ({"SCALE_TYPE": "float[1,2,1,1]", "SCALE": "2.0, 3.0"}, [], WEIGHTS, "scores come from"),
    "mask added before the scale": ({}, [(("    scaled = Div(scores, scale)\n    masked = Add(scaled, mask)\n"
                                           "    probs = Softmax<axis = AXIS>(masked)\n"),
                                          ("    masked = Add(scores, mask)\n    scaled = Div(masked, scale)\n"
                                           "    probs = Softmax<axis = -1>(scaled)\n"))], WEIGHTS, "before the scale"),
    "output not projected": ({}, [("    o = MatMul(ctx3, wo)\n", "    o = Relu(ctx3)\n")], WEIGHTS,
                             "not an output projection"),
}


@pytest.mark.parametrize("case", NEAR_MISSES, ids=list(NEAR_MISSES))
def test_near_misses_are_left_alone(case):
    fields, replace, constants, reason = NEAR_MISSES[case]
    graph = text_model(replace, constants, **fields)
    result = fuse(graph)
    assert not result.fired and not result.changed
    assert census(result.graph) == census(graph)
    assert any(reason in r.reason for r in result.refusals), result.refusals


def test_softmax_that_is_not_attention_is_not_reported():
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        clf (float[2,5] x) => (float[2,5] y) { y = Softmax<axis = -1>(x) }""")
    result = fuse(accelgen.load(model))
    assert not result.fired and not result.refusals


# -- generated layouts -------------------------------------------------------------------------------------------

def _const(name, array, nodes):
    nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name)))
    return name


def build(b, s, e, heads, hd, layout, fused, scale_at, masked, seed=0, seq_first_io=False):
    """An attention block as exporters write it. layout: "bhsd" (4-D heads), "flat" ([B*H, S, hd] heads) or
    "sb" (sequence-first around the projections, like nn.MultiheadAttention; with `seq_first_io` the graph's own
    input and output are sequence-first too); fused: one QKV projection + Split; scale_at: where the
    1/sqrt(hd)-like scale is applied."""
    rng = np.random.default_rng(seed)
    width = heads * hd
    nodes, inits = [], []

    def w(name, *shape):
        inits.append(numpy_helper.from_array(rng.uniform(-0.6, 0.6, shape).astype(np.float32), name))
        return name

    def node(op, inputs, **attrs):
        out = f"t{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def shape(*dims):
        return _const(f"shape{len(nodes)}", np.array(dims, np.int64), nodes)

    io_shape = [s, b, e] if seq_first_io else [b, s, e]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, io_shape)]
    x = node("Transpose", ["x"], perm=[1, 0, 2]) if layout == "sb" and not seq_first_io else "x"
    tokens = (s, b) if layout == "sb" else (b, s)
    if fused:
        qkv = node("Add", [node("MatMul", [x, w("wqkv", e, 3 * width)]), w("bqkv", 3 * width)])
        split = [f"split{i}" for i in range(3)]
        nodes.append(helper.make_node("Split", [qkv, shape(width, width, width)], split, axis=-1))
    else:
        split = [node("Add", [node("MatMul", [x, w(f"w{c}", e, width)]), w(f"b{c}", width)]) for c in "qkv"]

    def to_heads(t):
        if layout == "sb":  # [S, B, width] -> [S, B*H, hd] -> [B*H, S, hd] -> [B, H, S, hd]
            t = node("Transpose", [node("Reshape", [t, shape(s, b * heads, hd)])], perm=[1, 0, 2])
            return node("Reshape", [t, shape(b, heads, s, hd)])
        t = node("Transpose", [node("Reshape", [t, shape(b, s, heads, hd)])], perm=[0, 2, 1, 3])
        return node("Reshape", [t, shape(b * heads, s, hd)]) if layout == "flat" else t

    q, k, v = (to_heads(t) for t in split)
    factor = 1 / np.sqrt(hd)
    if scale_at == "q":
        q = node("Mul", [q, _const(f"c{len(nodes)}", np.float32(factor), nodes)])
    if scale_at == "qk":
        root = _const(f"c{len(nodes)}", np.array([np.sqrt(factor)], np.float32), nodes)
        q, k = node("Mul", [q, root]), node("Mul", [k, root])
    kt = node("Transpose", [k], perm=[0, 2, 1] if layout == "flat" else [0, 1, 3, 2])
    scores = node("MatMul", [q, kt])
    if scale_at == "mul":
        scores = node("Mul", [scores, _const(f"c{len(nodes)}", np.float32(factor), nodes)])
    if scale_at == "div":
        scores = node("Div", [scores, _const(f"c{len(nodes)}", np.float32(np.sqrt(hd)), nodes)])
    if masked:
        mask_shape = [b * heads, 1, s] if layout == "flat" else [b, 1, 1, s]
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, mask_shape))
        scores = node("Add", [scores, "mask"])
    ctx = node("MatMul", [node("Softmax", [scores], axis=-1), v])
    if layout == "sb":  # [B, H, S, hd] -> [S, B, H, hd] -> [S*B, width] -> Gemm -> [S, B, E] -> [B, S, E]
        merged = node("Reshape", [node("Transpose", [ctx], perm=[2, 0, 1, 3]), shape(s * b, width)])
        out = node("Gemm", [merged, w("wo", e, width), w("bo", e)], transB=1)
        out = node("Reshape", [out, shape(s, b, e)])
        out = out if seq_first_io else node("Transpose", [out], perm=[1, 0, 2])
    else:
        if layout == "flat":
            ctx = node("Reshape", [ctx, shape(b, heads, s, hd)])
        merged = node("Reshape", [node("Transpose", [ctx], perm=[0, 2, 1, 3]), shape(*tokens, width)])
        out = node("Add", [node("MatMul", [merged, w("wo", width, e)]), w("bo", e)])
    nodes[-1].output[0] = "y"
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, io_shape)]
    model = helper.make_model(helper.make_graph(nodes, "generated", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return accelgen.load(model)


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 3), s=st.integers(1, 5), e=st.integers(2, 7), heads=st.integers(1, 3),
       hd=st.integers(1, 4), layout=st.sampled_from(["bhsd", "flat", "sb"]), fused=st.booleans(),
       scale_at=st.sampled_from(["mul", "div", "q", "qk", "none"]), masked=st.booleans(), seed=st.integers(0, 99))
def test_generated_attention_fuses_exactly(b, s, e, heads, hd, layout, fused, scale_at, masked, seed):
    graph = build(b, s, e, heads, hd, layout, fused, scale_at, masked, seed)
    result = fuse(graph)
    assert result.fired == {"mha_from_softmax": 1}, result.refusals
    ops = census(result.graph)
    assert ops["MultiHeadAttention"] == 1 and ops["Softmax"] == 0 and ops["Transpose"] == 0, ops
    assert_same(graph, result.graph, seeds=(seed,))


def test_sequence_first_graph_gets_transposes_around_mha():
    """When no batch-first tensor exists, the fused op gets one by a Transpose, and its result goes back."""
    graph = build(2, 3, 4, 2, 2, "sb", fused=True, scale_at="qk", masked=True, seq_first_io=True)
    result = fuse(graph)
    assert result.fired == {"mha_from_softmax": 1}
    assert [n.op_type for n in result.graph.nodes] == ["Transpose", "MultiHeadAttention", "Transpose"]
    assert_same(graph, result.graph)


# -- the ONNX Attention op ---------------------------------------------------------------------------------------

def attention_op_model(q_heads=4, kv_heads=4, s=6, skv=None, e=16, hd=4, b=2, attrs=None, mask=None, cross=False,
                       out_projection=True, four_d=False):
    """x -> MatMul+Add projections -> Attention (opset 23; 3-D, or 4-D heads made by Reshape/Transpose) ->
    MatMul+Add output projection."""
    rng = np.random.default_rng(1)
    skv = skv or s
    inits, nodes = [], []

    def w(name, *shape):
        inits.append(numpy_helper.from_array(rng.uniform(-0.5, 0.5, shape).astype(np.float32), name))
        return name

    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [b, s, e])]
    source = "x"
    if cross:
        inputs.append(helper.make_tensor_value_info("memory", TensorProto.FLOAT, [b, skv, e]))
        source = "memory"
    for c, x, heads in (("q", "x", q_heads), ("k", source, kv_heads), ("v", source, kv_heads)):
        nodes += [helper.make_node("MatMul", [x, w(f"w{c}", e, heads * hd)], [f"{c}0"]),
                  helper.make_node("Add", [f"{c}0", w(f"b{c}", heads * hd)], [c])]
    names = ["q", "k", "v"]
    if four_d:
        for c, length, heads in (("q", s, q_heads), ("k", skv, kv_heads), ("v", skv, kv_heads)):
            inits.append(numpy_helper.from_array(np.array([b, length, heads, hd], np.int64), f"{c}_shape"))
            nodes += [helper.make_node("Reshape", [c, f"{c}_shape"], [f"{c}_split"]),
                      helper.make_node("Transpose", [f"{c}_split"], [f"{c}_heads"], perm=[0, 2, 1, 3])]
        names = ["q_heads", "k_heads", "v_heads"]
        attrs = dict(attrs or {})
    if mask is not None:
        dtype = TensorProto.BOOL if mask[0] == "bool" else TensorProto.FLOAT
        inputs.append(helper.make_tensor_value_info("mask", dtype, mask[1]))
        names.append("mask")
    heads_attrs = {} if four_d else {"q_num_heads": q_heads, "kv_num_heads": kv_heads}
    nodes.append(helper.make_node("Attention", names, ["att4" if four_d else "att"], **heads_attrs, **(attrs or {})))
    if four_d:
        inits.append(numpy_helper.from_array(np.array([b, s, q_heads * hd], np.int64), "merged"))
        nodes += [helper.make_node("Transpose", ["att4"], ["att_t"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", ["att_t", "merged"], ["att"])]
    if out_projection:
        nodes += [helper.make_node("MatMul", ["att", w("wo", q_heads * hd, e)], ["o"]),
                  helper.make_node("Add", ["o", w("bo", e)], ["y"])]
    else:
        nodes.append(helper.make_node("Identity", ["att"], ["y"]))
    width = e if out_projection else q_heads * hd
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [b, s, width])]
    model = helper.make_model(helper.make_graph(nodes, "attention23", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 10
    return model


@pytest.mark.parametrize("kwargs", [
    {},
    {"attrs": {"is_causal": 1}},
    {"attrs": {"scale": 0.1}},
    {"q_heads": 4, "kv_heads": 2},  # grouped-query: K/V heads are repeated into the weights
    {"q_heads": 4, "kv_heads": 1},  # multi-query
    {"mask": ("float", [2, 1, 6, 6])},
    {"mask": ("bool", [6, 6])},
    {"cross": True, "skv": 5, "mask": ("bool", [2, 1, 6, 5])},
    {"four_d": True, "q_heads": 4, "kv_heads": 2, "attrs": {"is_causal": 1}},
])
def test_onnx_attention_fuses(kwargs):
    model = attention_op_model(**kwargs)
    graph = accelgen.load(model)
    result = fuse(graph)
    assert result.fired == {"mha_from_attention": 1}, result.refusals
    ops = census(result.graph)
    assert ops["MultiHeadAttention"] == 1 and ops["Attention"] == 0 and ops["MatMul"] == 0, ops
    assert ops["Transpose"] == 0 and ops["Reshape"] == 0, ops
    assert_same(graph, result.graph)
    feeds = random_inputs(graph, 3)
    if "mask" in feeds and feeds["mask"].dtype == bool:
        feeds["mask"] = np.random.default_rng(0).random(feeds["mask"].shape) > 0.2
        feeds["mask"][..., 0] = True  # onnxruntime gives NaN for a fully masked row, the spec 0
    theirs = run_ort(model, feeds)["y"]
    np.testing.assert_allclose(accelgen.run(result.graph, feeds)["y"], theirs, rtol=1e-4, atol=1e-5)


def test_onnx_attention_fully_masked_row_stays_zero():
    model = attention_op_model(mask=("bool", [2, 1, 6, 6]))
    graph = accelgen.load(model)
    after = fuse(graph).graph
    feeds = random_inputs(graph, 0)
    feeds["mask"] = np.ones((2, 1, 6, 6), bool)
    feeds["mask"][1, 0, 2] = False  # query 2 of batch 1 may see nothing: attention gives 0 there, not NaN
    want, got = accelgen.run(graph, feeds)["y"], accelgen.run(after, feeds)["y"]
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_onnx_attention_in_float16_is_left_alone():
    model = attention_op_model()
    for t in model.graph.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for v in [*model.graph.input, *model.graph.output]:
        v.type.tensor_type.elem_type = TensorProto.FLOAT16
    result = fuse(accelgen.load(shape_inference.infer_shapes(model)))
    assert not result.fired and any("float32" in r.reason for r in result.refusals)


@pytest.mark.parametrize("kwargs, reason", [
    ({"attrs": {"softcap": 3.0}}, "softcap"),
    ({"mask": ("float", [6, 4])}, "padded"),
    ({"out_projection": False}, "graph output 'y', not an output projection"),
])
def test_onnx_attention_near_misses(kwargs, reason):
    graph = accelgen.load(attention_op_model(**kwargs))
    result = fuse(graph)
    assert not result.fired
    assert any(reason in r.reason for r in result.refusals), result.refusals
