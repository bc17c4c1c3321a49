"""Shape ops (Reshape, Transpose, Flatten, Squeeze/Unsqueeze, Concat, Split, Slice, Expand, Tile, Shape, Size,
ConstantOfShape, Range, DepthToSpace/SpaceToDepth) against onnxruntime, in their old attribute and new input forms,
and the folding of PyTorch-style shape chains."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import accelgen
from accelgen.errors import InvalidModelError, ShapeError
from tests.onnxmodels import typed_model, value_info
from tests.ortcheck import check_against_ort, rand

INT64_MAX = np.iinfo(np.int64).max


def model(op: str, inputs: dict, consts: dict | None = None, attrs: dict | None = None, opset: int = 17,
          n_out: int = 1, order: list[str] | None = None, domain: str = "", out_dtypes=None, nodes=()):
    """A one-node model (plus optional extra `nodes` before it). `inputs` are graph inputs (name -> example array),
    `consts` initializers (a None value leaves that node input empty); the node takes `order` (default: inputs then
    consts) and has outputs y0, y1, ..."""
    consts = consts or {}
    graph_inputs = [value_info(n, a) for n, a in inputs.items()]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items() if v is not None]
    order = order or [*inputs, *consts]
    names = [n if consts.get(n, 0) is not None else "" for n in order]
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, domain=domain, **(attrs or {}))
    first = next(iter(inputs.values()), None)
    dtypes = out_dtypes or [first.dtype if first is not None else np.float32] * n_out
    return typed_model([*nodes, node], graph_inputs, outs, inits, opset, dtypes, domain)


def i64(*values):
    return np.array(values, dtype=np.int64)


def check(op, inputs, consts=None, attrs=None, opset=17, **kw):
    m = model(op, inputs, consts, attrs, opset, **kw)
    return check_against_ort(m, inputs)


def run(m, inputs):
    return accelgen.run(accelgen.load(m), inputs)


# -- Reshape ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 6), (0, -1), (2, 0, 2, 2), (-1,), (6, 2, 2), (1, 1, 24, 1)])
@pytest.mark.parametrize("opset", [5, 13, 14])
def test_reshape(shape, opset):
    x = rand(2, 3, 4)
    check("Reshape", {"x": x}, {"shape": i64(*shape)}, opset=opset)


def test_reshape_allowzero_keeps_zero_dims():
    x = np.zeros((0, 3, 4), np.float32)
    g = check("Reshape", {"x": x}, {"shape": i64(3, 4, 0)}, {"allowzero": 1}, opset=14)
    assert g.outputs[0].shape == (3, 4, 0)


def test_reshape_opset1_shape_attribute():
    x = rand(2, 3, 4)
    out = run(model("Reshape", {"x": x}, attrs={"shape": [4, -1]}, opset=1), {"x": x})
    np.testing.assert_array_equal(out["y0"], x.reshape(4, 6))


@pytest.mark.parametrize("shape, attrs", [((5, -1), {}), ((-1, -1), {}), ((2, 0, -1), {"allowzero": 1}),
                                          ((2, 3, 4, 0), {}), ((-2, 12), {})])
def test_reshape_errors(shape, attrs):
    x = rand(2, 3, 4)
    with pytest.raises(ShapeError, match="Reshape"):
        accelgen.load(model("Reshape", {"x": x}, {"shape": i64(*shape)}, attrs, opset=14))


def test_reshape_shape_must_be_constant():
    x = rand(2, 3)
    m = model("Reshape", {"x": x, "s": i64(3, 2)}, out_dtypes=[np.float32])
    with pytest.raises(ShapeError, match="compile time"):
        accelgen.load(m)


# -- Transpose, Flatten -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("perm", [None, (0, 2, 1, 3), (3, 1, 0, 2)])
def test_transpose(perm):
    x = rand(2, 3, 4, 5)
    check("Transpose", {"x": x}, attrs={"perm": list(perm)} if perm else {})


def test_transpose_bad_perm():
    with pytest.raises(ShapeError, match="permutation"):
        accelgen.load(model("Transpose", {"x": rand(2, 3)}, attrs={"perm": [0, 0]}))


@pytest.mark.parametrize("axis, opset", [(0, 9), (2, 9), (4, 9), (1, 13), (-1, 11), (-4, 13)])
def test_flatten(axis, opset):
    check("Flatten", {"x": rand(2, 3, 4, 5)}, attrs={"axis": axis}, opset=opset)


def test_flatten_bad_axis():
    with pytest.raises(ShapeError, match="Flatten"):
        accelgen.load(model("Flatten", {"x": rand(2, 3)}, attrs={"axis": 3}))


# -- Squeeze, Unsqueeze ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("axes", [None, (0,), (-1,), (0, 2)])
@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze(axes, opset):
    x = rand(1, 3, 1, 4, 1)
    if axes is None:
        check("Squeeze", {"x": x}, opset=opset)
    elif opset < 13:
        check("Squeeze", {"x": x}, attrs={"axes": list(axes)}, opset=opset)
    else:
        check("Squeeze", {"x": x}, {"axes": i64(*axes)}, opset=opset)


def test_squeeze_non_unit_axis():
    with pytest.raises(ShapeError, match="not 1"):
        accelgen.load(model("Squeeze", {"x": rand(1, 3)}, {"axes": i64(1)}, opset=13))


@pytest.mark.parametrize("axes", [(0,), (-1,), (1, 3), (3, 0), (-1, 0, 2)])
@pytest.mark.parametrize("opset", [11, 13])
def test_unsqueeze(axes, opset):
    x = rand(3, 4)
    if opset < 13:
        check("Unsqueeze", {"x": x}, attrs={"axes": list(axes)}, opset=opset)
    else:
        check("Unsqueeze", {"x": x}, {"axes": i64(*axes)}, opset=opset)


def test_unsqueeze_repeated_axis():
    with pytest.raises(ShapeError, match="repeat"):
        accelgen.load(model("Unsqueeze", {"x": rand(3)}, {"axes": i64(0, -3)}, opset=13))


# -- Concat, Split ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis):
    shapes = {0: [(1, 3, 2), (2, 3, 2)], 1: [(2, 1, 2), (2, 3, 2)], -1: [(2, 3, 1), (2, 3, 4)]}[axis]
    a, b = (rand(*s, seed=i) for i, s in enumerate(shapes))
    check("Concat", {"a": a, "b": b}, {"c": rand(*shapes[0], seed=5)}, {"axis": axis})


def test_concat_mismatch():
    with pytest.raises(ShapeError, match="differ"):
        accelgen.load(model("Concat", {"a": rand(2, 3), "b": rand(3, 3)}, attrs={"axis": 1}))


def test_concat_constants_fold():
    m = model("Concat", {}, {"a": i64(1, 2), "b": i64(3)}, {"axis": 0}, out_dtypes=[np.int64])
    g = accelgen.load(m)
    assert not g.nodes
    np.testing.assert_array_equal(run(m, {})["y0"], [1, 2, 3])


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_split_sizes(opset):
    x = rand(2, 7, 3)
    if opset < 13:
        check("Split", {"x": x}, attrs={"axis": 1, "split": [2, 0, 5]}, opset=opset, n_out=3)
    else:
        check("Split", {"x": x}, {"split": i64(2, 0, 5)}, {"axis": 1}, opset=opset, n_out=3)


@pytest.mark.parametrize("opset", [11, 13])
def test_split_equal(opset):
    check("Split", {"x": rand(6, 4)}, opset=opset, n_out=3)


@pytest.mark.parametrize("n, dim", [(3, 7), (4, 8), (2, 5)])
def test_split_num_outputs_uneven(n, dim):
    g = check("Split", {"x": rand(3, dim)}, attrs={"axis": -1, "num_outputs": n}, opset=18, n_out=n)
    sizes = [v.shape[1] for v in g.outputs]
    assert sizes[:-1] == [-(-dim // n)] * (n - 1)


def test_split_errors():
    with pytest.raises(ShapeError, match="add up"):
        accelgen.load(model("Split", {"x": rand(6)}, {"split": i64(2, 2)}, opset=13, n_out=2))
    with pytest.raises(InvalidModelError, match="outputs"):
        accelgen.load(model("Split", {"x": rand(6)}, {"split": i64(2, 2, 2)}, opset=13, n_out=2))


# -- Slice ------------------------------------------------------------------------------------------------------

SLICES = [  # starts, ends, axes, steps
    ((1, 0), (3, 10), None, None),
    ((0,), (-1,), (1,), None),
    ((-3, 1), (INT64_MAX, -1), (0, 2), None),
    ((100,), (200,), (0,), None),
    ((-1,), (-INT64_MAX,), (1,), (-1,)),
    ((4, 3), (0, -100), (0, 1), (-2, -1)),
    ((0, 0, 3), (5, 10, 0), (-1, -2, 0), (2, 3, -1)),
    ((2,), (-INT64_MAX - 1,), (2,), (-3,)),
]


@pytest.mark.parametrize("starts, ends, axes, steps", SLICES)
@pytest.mark.parametrize("opset", [10, 13])
def test_slice_inputs(starts, ends, axes, steps, opset):
    x = rand(5, 6, 7)
    consts = {"starts": i64(*starts), "ends": i64(*ends), "axes": None if axes is None and steps is None
              else i64(*(axes or range(len(starts)))), "steps": None if steps is None else i64(*steps)}
    check("Slice", {"x": x}, consts, opset=opset)


@pytest.mark.parametrize("starts, ends, axes", [((1, 0), (3, 10), None), ((-3,), (INT64_MAX,), (2,)),
                                                ((0, 2), (-1, 1000), (-1, 0))])
def test_slice_attributes(starts, ends, axes):
    attrs = {"starts": list(starts), "ends": list(ends), **({"axes": list(axes)} if axes else {})}
    check("Slice", {"x": rand(5, 6, 7)}, attrs=attrs, opset=9)


def test_slice_zero_step():
    m = model("Slice", {"x": rand(4)}, {"starts": i64(0), "ends": i64(4), "axes": i64(0), "steps": i64(0)})
    with pytest.raises(ShapeError, match="step"):
        accelgen.load(m)


# -- Expand, Tile ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("xshape, shape", [((3, 1), (2, 1, 4)), ((2, 3), (3,)), ((1,), (2, 3)), ((4, 1, 2), (1, 5, 1))])
def test_expand(xshape, shape):
    check("Expand", {"x": rand(*xshape)}, {"shape": i64(*shape)}, opset=13)


def test_expand_incompatible():
    with pytest.raises(ShapeError, match="broadcast"):
        accelgen.load(model("Expand", {"x": rand(2, 3)}, {"shape": i64(4, 3, 2)}, opset=13))


@pytest.mark.parametrize("repeats", [(1, 1), (2, 3), (3, 0)])
def test_tile(repeats):
    check("Tile", {"x": rand(2, 3)}, {"repeats": i64(*repeats)}, opset=13)


def test_tile_wrong_rank():
    with pytest.raises(ShapeError, match="repeats"):
        accelgen.load(model("Tile", {"x": rand(2, 3)}, {"repeats": i64(2)}, opset=13))


# -- Shape, Size and folding ------------------------------------------------------------------------------------

@pytest.mark.parametrize("attrs", [{}, {"start": 1}, {"end": -1}, {"start": -2, "end": 3}, {"start": 10},
                                   {"start": -10, "end": 2}, {"start": 3, "end": 1}])
def test_shape(attrs):
    x = rand(2, 3, 4, 5)
    g = check("Shape", {"x": x}, attrs=attrs, opset=15 if attrs else 13, out_dtypes=[np.int64])
    assert not g.nodes  # folded from the input's type although x is runtime data


def test_size():
    g = check("Size", {"x": rand(2, 3, 4)}, out_dtypes=[np.int64])
    assert not g.nodes


def test_pytorch_shape_chain_folds_to_one_reshape():
    """x.view(x.size(0), -1) as PyTorch exports it: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    x = rand(2, 3, 4)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Constant", [], ["i0"], value=numpy_helper.from_array(np.array(0, np.int64))),
        helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0]),
        helper.make_node("Constant", [], ["m1"], value=numpy_helper.from_array(i64(-1))),
        helper.make_node("Concat", ["n1", "m1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, (2, 12))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
    graph = check_against_ort(m, {"x": x})
    assert [n.op_type for n in graph.nodes] == ["Reshape"]
    assert graph.nodes[0].op.shape == (2, -1)


# -- ConstantOfShape, Range -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [None, np.array([7], np.int64), np.array([1.5], np.float32), np.array([1], np.int32)])
@pytest.mark.parametrize("shape", [(2, 3), (4,), ()])
def test_constant_of_shape(value, shape):
    attrs = {} if value is None else {"value": numpy_helper.from_array(value)}
    dtype = np.float32 if value is None else value.dtype
    m = model("ConstantOfShape", {}, {"shape": np.array(shape, np.int64)}, attrs, out_dtypes=[dtype])
    g = check_against_ort(m, {})
    assert not g.nodes


def test_constant_of_shape_from_input_shape():
    """ConstantOfShape(Shape(x)) folds too: zeros shaped like a runtime input."""
    x = rand(3, 2)
    shape = helper.make_node("Shape", ["x"], ["s"])
    m = model("ConstantOfShape", {"x": x}, order=["s"], nodes=[shape])
    g = check_against_ort(m, {"x": x})
    assert not g.nodes


@pytest.mark.parametrize("start, limit, delta, dtype", [(0, 10, 3, np.int64), (10, 2, -3, np.int64),
                                                        (1.0, 2.0, 0.25, np.float32), (0.5, -1.7, -0.3, np.float32),
                                                        (5, 5, 1, np.int64)])
def test_range(start, limit, delta, dtype):
    consts = {"start": np.array(start, dtype), "limit": np.array(limit, dtype), "delta": np.array(delta, dtype)}
    m = model("Range", {}, consts, opset=11, out_dtypes=[dtype])
    g = check_against_ort(m, {})
    assert not g.nodes


def test_range_keeps_typed_scalar_dtype():
    """Python numbers lose the element type on import (int64 / float32 then); numpy scalars keep it."""
    from accelgen.ir.ops.shape import Range

    op = Range(start=np.int32(10), limit=np.int32(2), delta=np.int32(-3))
    (t,) = op.infer([])
    assert str(t) == "i32[3]"
    np.testing.assert_array_equal(op.compute([])[0], np.array([10, 7, 4], np.int32))
    assert op.compute([])[0].dtype == np.int32
    assert str(Range(start=np.float16(0), limit=np.float16(1), delta=np.float16(0.25)).infer([])[0]) == "f16[4]"
    with pytest.raises(ShapeError, match="delta"):
        Range(start=0, limit=3, delta=0).infer([])


# -- DepthToSpace, SpaceToDepth ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(mode):
    check("DepthToSpace", {"x": rand(2, 8, 3, 2)}, attrs={"blocksize": 2, "mode": mode}, opset=13)


def test_space_to_depth():
    check("SpaceToDepth", {"x": rand(2, 3, 4, 6)}, attrs={"blocksize": 2}, opset=13)


def test_space_to_depth_inverts_depth_to_space():
    x = rand(1, 12, 2, 3)
    for mode in ("DCR", "CRD"):
        d2s = helper.make_node("DepthToSpace", ["x"], ["d"], blocksize=2, mode=mode)
        m = model("SpaceToDepth", {"x": x}, attrs={"blocksize": 2, "mode": mode}, opset=28, order=["d"], nodes=[d2s])
        np.testing.assert_array_equal(run(m, {"x": x})["y0"], x)


def test_block_errors():
    with pytest.raises(ShapeError, match="divisible"):
        accelgen.load(model("DepthToSpace", {"x": rand(1, 6, 2, 2)}, attrs={"blocksize": 2}))
    with pytest.raises(ShapeError, match="divisible"):
        accelgen.load(model("SpaceToDepth", {"x": rand(1, 1, 3, 2)}, attrs={"blocksize": 2}))
