"""split-projections: fused projections cut into column blocks become one projection per block."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

import accelgen
from accelgen.passes import optimize_with_report
from tests.passes.test_cleanup import apply, load, op_types, reasons

ROOT = Path(__file__).resolve().parents[2]


def weights(k, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(k, n)).round(2), rng.normal(size=n).round(2)


def tensor(values) -> str:
    return ", ".join(f"{v:g}" for v in np.asarray(values).reshape(-1))


def projection_model(body: str, outputs: str, k=4, n=12, extra="") -> str:
    w, b = weights(k, n)
    return f"""g (float[2,3,{k}] x) => ({outputs})
      <float[{k},{n}] w = {{{tensor(w)}}}, float[{n}] b = {{{tensor(b)}}}{extra}> {{
        m = MatMul(x, w)
        y = Add(b, m)
        {body}
    }}"""


def projections(graph):
    """(weight shape, bias shape) of each MatMul with a constant weight followed by its bias Add."""
    out = []
    for node in graph.nodes:
        if node.op_type == "MatMul" and node.inputs[1].is_constant:
            add = node.outputs[0].users[0] if node.outputs[0].users else None
            bias = add.inputs[0] if add is not None and add.op_type == "Add" else None
            out.append((node.inputs[1].shape, bias.shape if bias is not None and bias.is_constant else None))
    return out


def test_split_on_the_last_axis():
    g = load(projection_model("q, k, v = Split<axis = -1>(y)\n o = Sum(q, k, v)", "float[2,3,4] o"))
    result = apply(g, "split-projections")
    assert result.fired == {"split-projection": 1}
    assert "Split" not in op_types(result.graph)
    assert projections(result.graph) == [((4, 4), (4,))] * 3


def test_slices_of_unequal_width():
    g = load(projection_model("""
        a = Slice(y, s0, e0, ax)
        c = Slice(y, s1, e1, ax)
        o = MatMul(a, c)""", "float[2,3,3] o",
        extra=", int64[1] s0 = {0}, int64[1] e0 = {8}, int64[1] s1 = {8}, int64[1] e1 = {99}, int64[1] ax = {2}"
    ).replace("float[2,3,3] o", "float[2,3,4] o").replace("o = MatMul(a, c)", "t = Transpose<perm = [0, 2, 1]>(c)\n"
                                                          "o = MatMul(t, a)").replace("float[2,3,4] o", "float[2,4,8] o"))
    result = apply(g, "split-projections")
    assert result.fired == {"split-projection": 1}
    assert sorted(projections(result.graph)) == [((4, 4), (4,)), ((4, 8), (8,))]


TORCH_MHA = """
    r = Reshape(y, s)
    u = Unsqueeze(r, zero)
    t = Transpose<perm = [3, 1, 2, 0, 4]>(u)
    sq = Squeeze(t, three)
    q = Gather<axis = 0>(sq, i0)
    k = Gather<axis = 0>(sq, i1)
    v = Gather<axis = 0>(sq, i2)
    o = Sum(q, k, v)"""
TORCH_CONSTS = (", int64[4] s = {2, 3, 3, 4}, int64[1] zero = {0}, int64[1] three = {3}, int64 i0 = {0}, "
                "int64 i1 = {1}, int64 i2 = {2}")


def test_nn_multihead_attention_in_proj():
    """Reshape(..., 3, E) -> Unsqueeze -> Transpose -> Squeeze -> Gather(i), as PyTorch exports in_proj."""
    g = load(projection_model(TORCH_MHA, "float[2,3,4] o", extra=TORCH_CONSTS))
    result = apply(g, "split-projections", "dce")
    assert result.fired == {"split-projection": 1}
    assert op_types(result.graph) == ["MatMul", "Add"] * 3 + ["Sum"]


def test_heads_permuted_before_the_selection():
    """timm-style: Reshape [B, S, 3, H, D] -> Transpose(2, 0, 3, 1, 4) -> Gather(0, i): each part is [B, H, S, D]."""
    body = """
        r = Reshape(y, s)
        t = Transpose<perm = [2, 0, 3, 1, 4]>(r)
        q = Gather<axis = 0>(t, i0)
        k = Gather<axis = 0>(t, i1)
        v = Gather<axis = 0>(t, i2)
        kt = Transpose<perm = [0, 1, 3, 2]>(k)
        a = MatMul(q, kt)
        o = MatMul(a, v)"""
    consts = ", int64[5] s = {2, 3, 3, 2, 2}, int64 i0 = {0}, int64 i1 = {1}, int64 i2 = {2}"
    g = load(projection_model(body, "float[2,2,3,2] o", extra=consts))
    result = apply(g, "split-projections", "dce")
    assert result.fired == {"split-projection": 1}
    assert "Gather" not in op_types(result.graph)
    assert projections(result.graph) == [((4, 4), (4,))] * 3
    # each part is laid out again by one Reshape and one Transpose
    assert Counter(op_types(result.graph)) == Counter(MatMul=5, Add=3, Reshape=3, Transpose=4)


def test_gemm_with_transposed_weight_and_bias():
    w, _ = weights(12, 4)
    _, b = weights(4, 12, seed=1)
    g = load(f"""g (float[3,4] x) => (float[3,6] o) <float[12,4] w = {{{tensor(w)}}}, float[12] b = {{{tensor(b)}}}> {{
        y = Gemm<transB = 1, alpha = 0.5>(x, w, b)
        p, q = Split<axis = 1>(y)
        r = Relu(p)
        o = Sub(q, r)
    }}""")
    result = apply(g, "split-projections", "dce")
    assert result.fired == {"split-projection": 1}
    gemms = [n for n in result.graph.nodes if n.op_type == "Gemm"]
    assert [n.inputs[1].shape for n in gemms] == [(6, 4), (6, 4)] and all(n.op.alpha == 0.5 for n in gemms)
    assert [n.inputs[2].shape for n in gemms] == [(6,), (6,)]


def test_a_single_block_narrows_the_projection():
    g = load(projection_model("a, c = Split<axis = 2>(y)\n o = Relu(a)", "float[2,3,6] o"))
    result = apply(g, "split-projections", "dce")
    assert result.fired == {"narrow-projection": 1} and projections(result.graph) == [((4, 6), (6,))]


# -- near misses ------------------------------------------------------------------------------------------------
def test_output_also_used_whole_is_left_alone():
    g = load(projection_model("q, k, v = Split<axis = -1>(y)\n s = Sum(q, k, v)\n r = ReduceSum<keepdims = 1>(y, ax)\n"
                              "o = Add(s, r)", "float[2,3,4] o", extra=", int64[1] ax = {2}"))
    result = apply(g, "split-projections")
    assert not result.fired and "is used by" in reasons(result)


def test_overlapping_blocks_are_left_alone():
    g = load(projection_model("""
        a = Slice(y, s0, e0, ax)
        c = Slice(y, s1, e1, ax)
        o = Add(a, c)""", "float[2,3,8] o",
        extra=", int64[1] s0 = {0}, int64[1] e0 = {8}, int64[1] s1 = {4}, int64[1] e1 = {12}, int64[1] ax = {2}"))
    result = apply(g, "split-projections")
    assert not result.fired and "overlap" in reasons(result)


def test_shared_weights_are_left_alone():
    g = load(projection_model("q, k, v = Split<axis = -1>(y)\n s = Sum(q, k, v)\n m2 = MatMul(x, w)\n"
                              "o = Concat<axis = 2>(s, m2)", "float[2,3,16] o"))
    result = apply(g, "split-projections")
    assert not result.fired and "shared" in reasons(result)


def test_strided_or_runtime_selections_are_left_alone():
    strided = projection_model("a = Slice(y, s0, e0, ax, st)\n o = Relu(a)", "float[2,3,6] o",
                               extra=", int64[1] s0 = {0}, int64[1] e0 = {12}, int64[1] ax = {2}, int64[1] st = {2}")
    result = apply(load(strided), "split-projections")
    assert not result.fired and op_types(result.graph) == ["MatMul", "Add", "Slice", "Relu"]
    runtime = projection_model("r = Reshape(y, s)\n o = Gather<axis = 2>(r, i)", "float[2,3,4] o",
                               extra=", int64[4] s = {2, 3, 3, 4}").replace("float[2,3,4] x)", "float[2,3,4] x, int64 i)")
    g = load(runtime)
    result = apply(g, "split-projections", feeds={"x": np.ones((2, 3, 4), np.float32), "i": np.array(1)})
    assert not result.fired


def test_a_runtime_bias_stays_outside_and_blocks_the_split():
    g = load(projection_model("q, k, v = Split<axis = -1>(z)\n o = Sum(q, k, v)", "float[2,3,4] o")
             .replace("float[2,3,4] x)", "float[2,3,4] x, float[12] rb)").replace("z)", "yb)")
             .replace("m = MatMul(x, w)", "m = MatMul(x, w)\n yb = Add(m, rb)").replace("y = Add(b, m)", ""))
    result = apply(g, "split-projections")
    assert not result.fired and op_types(result.graph) == ["MatMul", "Add", "Split", "Sum"]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.lists(st.integers(1, 4), min_size=2, max_size=4),
       st.sampled_from(["split", "slice", "gather"]), st.integers(0, 10**6))
def test_random_projections_split_exactly(rows, k, widths, form, seed):
    if form == "gather":
        widths = [widths[0]] * len(widths)  # a Reshape exposes equal parts only
    n = sum(widths)
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(k, n)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(n,)).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    inits = [w, b]
    parts = [f"p{i}" for i in range(len(widths))]
    if form == "split":
        inits.append(numpy_helper.from_array(np.array(widths, np.int64), "sizes"))
        nodes.append(helper.make_node("Split", ["y", "sizes"], parts, axis=-1))
    elif form == "slice":
        bounds = np.cumsum([0] + widths)
        for i, p in enumerate(parts):
            inits += [numpy_helper.from_array(np.array([bounds[i]], np.int64), f"s{i}"),
                      numpy_helper.from_array(np.array([bounds[i + 1]], np.int64), f"e{i}"),
                      numpy_helper.from_array(np.array([-1], np.int64), f"a{i}")]
            nodes.append(helper.make_node("Slice", ["y", f"s{i}", f"e{i}", f"a{i}"], [p]))
    else:
        inits.append(numpy_helper.from_array(np.array([rows, len(widths), widths[0]], np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", ["y", "shape"], ["r"]))
        for i, p in enumerate(parts):
            inits.append(numpy_helper.from_array(np.array(i, np.int64), f"i{i}"))
            nodes.append(helper.make_node("Gather", ["r", f"i{i}"], [p], axis=1))
    outputs = [helper.make_tensor_value_info(p, 1, [rows, wd]) for p, wd in zip(parts, widths)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [rows, k])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    g = accelgen.load(model)
    result = apply(g, "split-projections", "dce")
    assert result.fired == {"split-projection": 1}
    assert not {"Split", "Slice", "Gather"} & set(op_types(result.graph))


# -- the real exports ---------------------------------------------------------------------------------------------
CLEANUP = ["remove-identity", "fold-constants", "canonicalize-layout", "split-projections", "cse", "dce"]
MODELS = ["tests/data/models/encoder_torchscript.onnx", "tests/data/models/encoder_dynamo.onnx",
          "tests/data/models/fused_qkv_block_torchscript.onnx", "tests/data/models/fused_qkv_block_dynamo.onnx",
          "examples/tiny_transformer/tiny_transformer.onnx", "examples/tiny_transformer/tiny_transformer_dynamo.onnx"]


@pytest.mark.parametrize("path", MODELS)
def test_real_exports_get_one_projection_each_for_q_k_v(path):
    g = accelgen.load(ROOT / path)
    result = optimize_with_report(g, CLEANUP, verify_each=True, check=True)  # raises if any pass changes outputs
    h = result.graph
    before, after = Counter(n.op_type for n in g.nodes), Counter(n.op_type for n in h.nodes)
    assert not {"Gather", "Split", "Squeeze", "Unsqueeze"} & set(after)
    assert after["Transpose"] <= before["Transpose"] and after["Reshape"] <= before["Reshape"]
    assert sum(before[t] for t in ("Transpose", "Reshape", "Gather", "Split", "Squeeze", "Unsqueeze")) > \
        sum(after[t] for t in ("Transpose", "Reshape"))
    layers = result.fired["split-projection"]
    assert layers >= 1
    # Q, K and V each come from their own MatMul on a shared input, with a constant [E, E] weight.
    by_input = Counter(id(n.inputs[0]) for n in h.nodes if n.op_type == "MatMul" and n.inputs[1].is_constant
                       and n.inputs[1].shape[0] == n.inputs[1].shape[1] == 32)
    assert sorted(by_input.values()).count(3) == layers
