"""Elementwise, data-movement, reduction and standalone-activation kernels (Add/Sub/Mul with broadcasting and
constant operands, BatchNormalization left unfolded, Sigmoid, Tanh, Concat with a constant CLS token, Transpose,
Slice, Gather, Expand, Tile, Split, DepthToSpace, ReduceMean, ReduceSum): C-sim equals accelgen's fixed-point
interpreter bit for bit on every output."""

import numpy as np
import pytest

import accelgen
from accelgen.backends.hls import compile
from accelgen.errors import OptionError
from tests.onnxmodels import const, text_model


def elementwise_model() -> accelgen.Graph:
    rng = np.random.default_rng(3)
    inits = [const("scale", rng.normal(1, 0.3, 4)), const("bias", rng.normal(0, 0.3, 4)),
             const("mean", rng.normal(0, 0.3, 4)), const("var", rng.uniform(0.5, 2, 4)),
             const("row", rng.normal(0, 0.5, 6)), const("colscale", rng.normal(0, 1, (1, 4, 1))),
             const("cls", rng.normal(0, 1, (1, 1, 6))), const("starts", np.array([1]), "int64"),
             const("ends", np.array([5]), "int64"), const("axes", np.array([2]), "int64"),
             const("sum_axes", np.array([2]), "int64"), const("first", np.array(0), "int64")]
    body = """
    xn = BatchNormalization <epsilon = 1e-5> (x, scale, bias, mean, var)
    a = Mul(xn, z)
    b = Sub(a, row)
    c = Mul(b, colscale)
    sg = Sigmoid(c)
    th = Tanh(x)
    d = Add(sg, th)
    y = Concat <axis = 1> (cls, d)
    t = Transpose <perm = [0, 2, 1]> (y)
    sl = Slice(t, starts, ends, axes)
    t2 = Transpose <perm = [0, 2, 1]> (sl)
    mean_tokens = ReduceMean <axes = [1], keepdims = 0> (t2)
    token0 = Gather <axis = 1> (y, first)
    m = Add(mean_tokens, token0)
    total = ReduceSum <keepdims = 0> (z, sum_axes)
    """
    return text_model("(float[1,4,6] x, float[1,4,6] z) => (float[1,5,6] y, float[1,6] m, float[1,4] total)",
                      inits, body)


def movement_model() -> accelgen.Graph:
    inits = [const("shape", np.array([1, 4, 4, 2]), "int64"), const("repeats", np.array([1, 2, 1]), "int64"),
             const("split", np.array([3, 5]), "int64"), const("picks", np.array([[1, 0], [1, 1]]), "int64")]
    body = """
    e = Expand(x, shape)
    t = Tile(x, repeats)
    a, b = Split <axis = 1> (t, split)
    g = Gather <axis = 1> (x, picks)
    d = DepthToSpace <blocksize = 2> (e)
    """
    return text_model("(float[1,4,2] x) => (float[1,4,4,2] e, float[1,3,2] a, float[1,5,2] b, float[1,2,2,2] g, "
                      "float[1,1,8,4] d)", inits, body)


def assert_bit_exact(q, project, feeds: dict[str, np.ndarray]) -> None:
    n = len(next(iter(feeds.values())))
    got = project.predict(feeds)
    for out in q.outputs:
        ref = np.concatenate([accelgen.run(q, {k: v[i:i + 1] for k, v in feeds.items()})[out.name] for i in range(n)])
        np.testing.assert_array_equal(got[out.name], ref, err_msg=out.name)


def test_elementwise_ops_bit_exact(tmp_path):
    g = accelgen.optimize(elementwise_model())
    ops = [n.op_type for n in g.nodes]
    assert {"BatchNormalization", "Mul", "Sub", "Sigmoid", "Tanh", "Concat", "Transpose", "Slice", "Gather",
            "ReduceMean", "ReduceSum"} <= set(ops)
    rng = np.random.default_rng(0)
    calib = {k: rng.normal(size=(200, 4, 6)).astype(np.float32) for k in ("x", "z")}
    q = accelgen.quantize(g, calib)
    project = compile(q, out_dir=tmp_path / "p")
    # twice the calibrated spread: the tables' clamped ends and the saturating outputs are reached too
    assert_bit_exact(q, project, {k: rng.normal(0, 2, (300, 4, 6)) for k in ("x", "z")})


def test_data_movement_ops_bit_exact(tmp_path):
    g = accelgen.optimize(movement_model())
    assert [n.op_type for n in g.nodes] == ["Expand", "Tile", "Split", "Gather", "DepthToSpace"]
    rng = np.random.default_rng(1)
    q = accelgen.quantize(g, {"x": rng.normal(size=(200, 4, 2)).astype(np.float32)})
    project = compile(q, out_dir=tmp_path / "p")
    assert_bit_exact(q, project, {"x": rng.normal(0, 2, (100, 4, 2))})


def test_reduction_over_non_adjacent_axes_is_refused_with_the_node(tmp_path):
    g = text_model("(float[1,3,4,5] x) => (float[1,4] y)", [],
                   "y = ReduceMean <axes = [1, 3], keepdims = 0> (x)")
    q = accelgen.quantize(accelgen.optimize(g), {"x": np.random.default_rng(0).normal(size=(50, 3, 4, 5))
                                                 .astype(np.float32)})
    with pytest.raises(OptionError, match=r"ReduceMean over the non-adjacent axes \[1, 3\]"):
        compile(q, out_dir=tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_gather_with_run_time_indices_is_refused(tmp_path):
    g = text_model("(float[1,4,3] x, int64[1,2] i) => (float[1,1,2,3] y)", [], "y = Gather <axis = 1> (x, i)")
    q = accelgen.quantize(accelgen.optimize(g), {"x": np.ones((4, 4, 3), np.float32),
                                                 "i": np.zeros((4, 2), np.int64)})
    with pytest.raises(OptionError, match="run-time input 1"):
        compile(q, out_dir=tmp_path / "p")
