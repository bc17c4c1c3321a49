"""canonicalize-layout: chains fold, Transposes sink through elementwise ops and cancel, and near misses stay."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from accelgen.ir.graph import Graph
from accelgen.ir.ops.activations import Relu
from accelgen.ir.ops.elementwise import Add, Mul
from accelgen.ir.ops.shape import Reshape, Transpose
from accelgen.ir.types import F32, TensorType
from accelgen.passes.layout import factor_permutation, plan_layout
from accelgen.passes.trace import apply_ops
from tests.passes.test_cleanup import apply, load, op_types


def test_transpose_pair_cancels():
    g = load("""g (float[2,3,4] x) => (float[2,3,4] y) {
        t = Transpose<perm = [2, 0, 1]>(x)
        u = Transpose<perm = [1, 2, 0]>(t)
        y = Relu(u)
    }""")
    result = apply(g, "canonicalize-layout")
    assert op_types(result.graph) == ["Relu"] and result.fired == {"drop-layout-noop": 1}


def test_transposes_compose_and_reshapes_merge():
    g = load("""g (float[2,3,4] x) => (float[4,2,3] y, float[24] z) <int64[2] s = {6, 4}, int64[1] a = {0}> {
        t = Transpose<perm = [0, 2, 1]>(x)
        u = Transpose<perm = [1, 0, 2]>(t)
        y = Softmax(u)
        r = Reshape(x, s)
        f = Flatten<axis = 0>(r)
        q = Unsqueeze(f, a)
        w = Squeeze(q, a)
        z = Softmax(w)
    }""".replace("float[24] z", "float[1,24] z"))
    result = apply(g, "canonicalize-layout")
    assert op_types(result.graph) == ["Transpose", "Softmax", "Reshape", "Softmax"]
    assert result.graph.nodes[0].op == Transpose(perm=(2, 0, 1))
    assert result.graph.nodes[2].op == Reshape(shape=(1, 24), allowzero=0)
    assert result.fired == {"fold-layout-chain": 2}


def test_canonical_form_is_an_explicit_reshape():
    g = load("""g (float[2,1,4] x) => (float[1,2,4] y, float[8,1] z) <int64[1] a = {1}, int64[2] s = {-1, 0}> {
        t = Transpose<perm = [1, 0, 2]>(x)
        y = Relu(t)
        sq = Squeeze(x, a)
        r = Reshape(sq, s)
        z = Unsqueeze(r, a)
    }""".replace("int64[2] s = {-1, 0}", "int64[1] s = {-1}"))
    result = apply(g, "canonicalize-layout")
    assert op_types(result.graph) == ["Reshape", "Relu", "Reshape"]
    assert result.graph.nodes[0].op == Reshape(shape=(1, 2, 4), allowzero=0)  # only a size-1 axis moved
    assert result.fired == {"transpose-to-reshape": 1, "fold-layout-chain": 1}
    single = load("""g (float[2,4] x) => (float[2,1,4] y) <int64[1] a = {1}> { u = Unsqueeze(x, a) \n y = Relu(u) }""")
    result = apply(single, "canonicalize-layout")
    assert op_types(result.graph) == ["Reshape", "Relu"] and result.fired == {"canonical-reshape": 1}
    assert apply(result.graph, "canonicalize-layout").fired == {}  # already canonical


def test_reshape_transpose_reshape_chains_take_the_fewest_ops():
    # PyTorch's head split: [S, B, E] -> [S, B*H, D] -> [B*H, S, D] -> [B, H, S, D] is one Reshape and one Transpose.
    g = load("""g (float[8,1,32] x) => (float[1,4,8,8] y) <int64[3] s1 = {8, 4, 8}, int64[4] s2 = {1, 4, 8, 8}> {
        r = Reshape(x, s1)
        t = Transpose<perm = [1, 0, 2]>(r)
        u = Reshape(t, s2)
        y = Softmax(u)
    }""")
    result = apply(g, "canonicalize-layout")
    assert op_types(result.graph) == ["Reshape", "Transpose", "Softmax"]
    assert result.graph.nodes[1].op == Transpose(perm=(1, 2, 0, 3))


def test_transposes_sink_through_elementwise_ops_and_cancel():
    g = load("""g (float[2,3,4] x, float[2,3,4] z) => (float[2,3,4] y)
      <float[3] c = {1, 2, 3}, float s = {2.0}> {
        t = Transpose<perm = [0, 2, 1]>(x)
        r = Relu(t)
        a = Add(r, c)
        m = Mul(s, a)
        tz = Transpose<perm = [0, 2, 1]>(z)
        b = Sub(m, tz)
        y = Transpose<perm = [0, 2, 1]>(b)
    }""")
    result = apply(g, "canonicalize-layout")
    assert "Transpose" not in op_types(result.graph)
    assert result.fired == {"transpose-through-unary": 1, "transpose-through-binary": 3, "drop-layout-noop": 1}
    add = next(n for n in result.graph.nodes if n.op_type == "Add")
    assert add.inputs[1].shape == (1, 3, 1)  # the constant, transposed to meet x's layout


def test_sinking_near_misses_are_left_alone():
    g = load("""g (float[2,3] x, float[3,2] z) => (float[3,2] y1, float[3,2] y2, float[3,2] y3, float[2,3] y4) {
        t = Transpose<perm = [1, 0]>(x)
        y1 = Relu(t)
        y2 = Neg(t)
        y3 = Add(t, z)
        u = Transpose<perm = [1, 0]>(z)
        v = Transpose<perm = [1, 0]>(x)
        w = Transpose<perm = [1, 0]>(v)
        y4 = Add(u, w)
    }""")
    # t has three users (sinking would copy it), z is a runtime tensor in the other layout; u and v-w differ.
    result = apply(g, "canonicalize-layout")
    assert op_types(result.graph).count("Transpose") == 2  # only v -> w cancelled
    assert result.fired == {"drop-layout-noop": 1}


def test_reading_past_a_shared_layout_op():
    g = load("""g (float[2,3] x) => (float[2,3] y, float[3,2] z) {
        t = Transpose<perm = [1, 0]>(x)
        z = Relu(t)
        y = Transpose<perm = [1, 0]>(t)
    }""".replace("y = Transpose<perm = [1, 0]>(t)", "u = Transpose<perm = [1, 0]>(t)\n y = Neg(u)"))
    result = apply(g, "canonicalize-layout")
    assert op_types(result.graph) == ["Relu", "Transpose", "Neg"]  # then t, now used once, sank below the Relu
    assert result.graph.nodes[2].inputs[0] is result.graph.inputs[0]
    assert result.fired == {"fold-layout-pair": 1, "transpose-through-unary": 1}


def test_a_no_op_chain_that_names_a_graph_output_stays():
    g = load("""g (float[2,3] x) => (float[2,3] y) { t = Transpose<perm = [1, 0]>(x) \n y = Transpose<perm = [1, 0]>(t) }""")
    result = apply(g, "canonicalize-layout")
    assert [v.name for v in result.graph.outputs] == ["y"] and len(result.graph.nodes) >= 1


# -- the planner, on random chains -----------------------------------------------------------------------------
def random_chain(draw_ints, shape):
    """Random Reshape/Transpose ops starting from `shape`."""
    ops, current = [], shape
    for kind, seed in draw_ints:
        rng = np.random.default_rng(seed)
        if kind:
            op = Transpose(perm=tuple(int(p) for p in rng.permutation(len(current))))
        else:
            n, dims = math.prod(current), []
            while n > 1:
                d = int(rng.choice([d for d in range(2, n + 1) if n % d == 0]))
                dims.append(d)
                n //= d
            dims += [1] * int(rng.integers(0, 2))
            rng.shuffle(dims)
            op = Reshape(shape=tuple(dims) or (1,))
        current = op.infer([TensorType(current, F32)])[0].shape
        ops.append(op)
    return ops


chains = st.tuples(st.lists(st.integers(1, 4), min_size=1, max_size=4),
                   st.lists(st.tuples(st.booleans(), st.integers(0, 10**6)), min_size=1, max_size=4))


@settings(max_examples=60, deadline=None)
@given(chains)
def test_plans_reproduce_the_chain_exactly(case):
    shape, steps = tuple(case[0]), case[1]
    ops = random_chain(steps, shape)
    start = np.arange(math.prod(shape)).reshape(shape)
    want = apply_ops(ops, start)
    plan = plan_layout(shape, want)
    if len(ops) == 1:
        assert plan is not None and len(plan) <= 1  # a single op is always plannable as at most itself
    if plan is not None:
        assert len(plan) <= 3
        np.testing.assert_array_equal(apply_ops(plan, start), want)


@settings(max_examples=40, deadline=None)
@given(chains, st.integers(0, 10**6))
def test_canonicalized_chains_compute_the_same(case, seed):
    shape, steps = tuple(case[0]), case[1]
    ops = random_chain(steps, shape)
    g = Graph("chain")
    v = g.add_input("x", TensorType(shape, F32))
    rng = np.random.default_rng(seed)
    for op in ops:
        v = g.add_node(op, [v]).outputs[0]
        if rng.random() < 0.3:
            v = g.add_node(Relu(), [v]).outputs[0]
        if rng.random() < 0.3:
            c = g.add_constant("c", rng.normal(size=v.shape[-1:] if v.shape else ()).astype(np.float32))
            v = g.add_node(Add() if rng.random() < 0.5 else Mul(), [v, c]).outputs[0]
    out = g.add_node(Relu(), [v], ["y"]).outputs[0]
    g.outputs = [out]
    transposes = op_types(g).count("Transpose")
    result = apply(g, "canonicalize-layout")
    assert op_types(result.graph).count("Transpose") <= transposes


def test_factor_permutation():
    a = np.arange(24).reshape(2, 3, 4)
    assert factor_permutation(a.transpose(0, 2, 1)) == ((2, 3, 4), (0, 2, 1))
    assert factor_permutation(a.reshape(4, 6)) == ((24,), (0,))
    assert factor_permutation(a.transpose(1, 0, 2).reshape(3, 8)) == ((2, 3, 4), (1, 0, 2))
    assert factor_permutation(np.array([0, 4, 3, 2, 1, 5])) is None  # not a strided permutation
