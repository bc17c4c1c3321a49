"""MatMul, Gemm and Einsum against onnxruntime (shapes, dtypes, opset forms, broadcasting), their MAC counts and
error messages; plus the ONNX backend node tests of the whole linear/conv/pool family (slow)."""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

import accelgen
from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops.linear import Einsum, Gemm, MatMul
from accelgen.ir.types import F32, TensorType
from tests.onnxmodels import check, load
from tests.ortcheck import rand


def ints(*shape, seed=0, dtype=np.int32):
    return np.random.default_rng(seed).integers(-5, 6, shape).astype(dtype)


# float16 products: ORT and we both round a float32 accumulation, but its kernels may order/round partial sums
# differently, so compare at half precision.
F16_TOL = dict(rtol=1e-2, atol=1e-2)


# -- MatMul -----------------------------------------------------------------------------------------------------
MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),  # batch dims broadcast both ways
    ((3, 4), (2, 4, 5)),
    ((4,), (4, 5)),  # 1-D operands gain and lose a unit dim
    ((2, 3, 4), (4,)),
    ((4,), (2, 3, 4, 5)),
    ((4,), (4,)),
    ((1, 1), (1, 1)),
]


@pytest.mark.parametrize("a,b", MATMUL_SHAPES)
@pytest.mark.parametrize("opset", [9, 13])
def test_matmul(a, b, opset):
    check("MatMul", [("a", rand(*a, seed=1)), ("b", rand(*b, seed=2))], opset)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.int64, np.uint32])
def test_matmul_dtypes(dtype):
    if np.dtype(dtype).kind == "f":
        a, b, tol = rand(2, 3, 8, seed=1).astype(dtype), rand(8, 5, seed=2).astype(dtype), F16_TOL
    else:
        a, b, tol = np.abs(ints(2, 3, 8, seed=1)).astype(dtype), np.abs(ints(8, 5, seed=2)).astype(dtype), {}
    check("MatMul", [("a", a), ("b", b)], 13, **(tol if dtype == np.float16 else {}))


def test_matmul_constant_weight_and_cost():
    g = check("MatMul", [("a", rand(2, 3, 4, seed=1)), ("w", rand(4, 5, seed=2))], consts=("w",))
    node = g.nodes[0]
    cost = node.op.cost([v.type for v in node.inputs], [v.type for v in node.outputs])
    assert cost.macs == 2 * 3 * 5 * 4
    assert cost.bytes == 4 * (2 * 3 * 4 + 4 * 5 + 2 * 3 * 5)
    t = TensorType
    assert MatMul().cost([t((4,), F32), t((4,), F32)], [t((), F32)]).macs == 4


def test_matmul_large_is_fast():
    a = rand(768, 768, seed=1)
    start = time.perf_counter()
    (y,) = MatMul().compute([a, a])
    assert time.perf_counter() - start < 2.0
    np.testing.assert_allclose(y[:4, :4], (a.astype(np.float64) @ a)[:4, :4], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("a,b,msg", [
    ((3, 4), (5, 6), r"inner dimensions differ: \(3, 4\) @ \(5, 6\)"),
    ((4,), (3,), r"\(4,\) @ \(3,\)"),
    ((2, 3, 4), (3, 4, 5), "batch dims"),
])
def test_matmul_shape_errors(a, b, msg):
    with pytest.raises(ShapeError, match=msg):
        load("MatMul", [("a", rand(*a)), ("b", rand(*b))], 13)
    with pytest.raises(ShapeError, match=msg):
        MatMul().infer([TensorType(a, F32), TensorType(b, F32)])


def test_matmul_scalar_operand():
    with pytest.raises(ShapeError, match="rank >= 1"):
        MatMul().infer([TensorType((), F32), TensorType((3,), F32)])


# -- Gemm -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [None, (), (1,), (5,), (3, 1), (1, 5), (3, 5)])
def test_gemm_transposes_and_bias_broadcast(trans_a, trans_b, c_shape):
    a = rand(*((4, 3) if trans_a else (3, 4)), seed=1)
    b = rand(*((5, 4) if trans_b else (4, 5)), seed=2)
    inputs = [("a", a), ("b", b)] + ([] if c_shape is None else [("c", rand(*c_shape, seed=3))])
    check("Gemm", inputs, 13, dict(transA=trans_a, transB=trans_b, alpha=0.5, beta=2.0))


@pytest.mark.parametrize("opset", [7, 9, 11, 13, 21])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (-1.5, 0.0), (2.0, 0.25)])
def test_gemm_opsets(opset, alpha, beta):
    inputs = [("a", rand(6, 8, seed=1)), ("w", rand(10, 8, seed=2)), ("c", rand(10, seed=3))]
    g = check("Gemm", inputs, opset, dict(transB=1, alpha=alpha, beta=beta), consts=("w", "c"))
    node = g.nodes[0]
    assert node.op == Gemm(alpha=alpha, beta=beta, transB=1)
    assert node.op.cost([v.type for v in node.inputs], [v.type for v in node.outputs]).macs == 6 * 10 * 8


def test_gemm_no_bias_from_opset_11():
    check("Gemm", [("a", rand(3, 4, seed=1)), ("b", rand(4, 2, seed=2))], 11)
    check("Gemm", [("a", rand(3, 4, seed=1)), ("b", rand(4, 2, seed=2)), ("", None)], 13)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_gemm_dtypes(dtype):
    inputs = [(n, rand(*s, seed=i).astype(dtype)) for i, (n, s) in enumerate([("a", (3, 8)), ("b", (8, 5)),
                                                                             ("c", (5,))])]
    check("Gemm", inputs, 13, dict(alpha=0.5), **(F16_TOL if dtype == np.float16 else {}))


def test_gemm_errors():
    with pytest.raises(ShapeError, match=r"A \(3, 4\) \(transA=1\) and B \(4, 5\).*K = 3 and 4"):
        load("Gemm", [("a", rand(3, 4)), ("b", rand(4, 5))], 13, dict(transA=1))
    with pytest.raises(ShapeError, match=r"C of shape \(4,\) does not broadcast to the output shape \(3, 5\)"):
        load("Gemm", [("a", rand(3, 4)), ("b", rand(4, 5)), ("c", rand(4))], 13)
    with pytest.raises(ShapeError, match="must be 2-D"):
        Gemm().infer([TensorType((2, 3, 4), F32), TensorType((4, 5), F32)])
    with pytest.raises(ShapeError, match=r"does not broadcast"):
        Gemm().infer([TensorType((3, 4), F32), TensorType((4, 5), F32), TensorType((1, 3, 5), F32)])


# -- Einsum -----------------------------------------------------------------------------------------------------
EINSUMS = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),  # implicit output
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bij,bkj->bik", [(2, 3, 4), (2, 5, 4)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (1, 4, 5)]),
    ("i,i", [(5,), (5,)]),  # inner product
    ("i,j->ij", [(3,), (4,)]),  # outer product
    ("ii->i", [(3, 3)]),  # diagonal
    ("ii", [(3, 3)]),  # trace
    ("bii->bi", [(2, 3, 3)]),
    ("ij->", [(3, 4)]),
    ("ij->ji", [(3, 4)]),
    ("ji", [(3, 4)]),  # implicit: output labels sorted, so this transposes
    ("ij->i", [(3, 4)]),
    ("...ij->...ji", [(2, 3, 4)]),
    ("i...,i...->...", [(3, 2), (3, 2)]),
    ("ab, bc -> ac", [(2, 3), (3, 4)]),  # spaces
    ("aB,Bc", [(3, 4), (4, 5)]),  # uppercase contracted label
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ij,jk->ik", [(3, 4), (1, 5)]),  # size-1 label broadcasts across operands
    ("bij,bjk->bik", [(1, 3, 4), (2, 4, 5)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUMS)
def test_einsum(eq, shapes):
    inputs = [(f"x{i}", rand(*s, seed=i)) for i, s in enumerate(shapes)]
    check("Einsum", inputs, 12, dict(equation=eq))


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.int64])
def test_einsum_dtypes(dtype):
    if np.dtype(dtype).kind == "f":
        inputs, tol = [("a", rand(2, 3, 4, seed=1).astype(dtype)), ("b", rand(2, 4, 5, seed=2).astype(dtype))], F16_TOL
    else:
        inputs, tol = [("a", ints(2, 3, 4, seed=1, dtype=dtype)), ("b", ints(2, 4, 5, seed=2, dtype=dtype))], {}
    check("Einsum", inputs, 12, dict(equation="bij,bjk->bik"), **(tol if dtype == np.float16 else {}))


def test_einsum_cost_and_implicit_uppercase_order():
    t = TensorType
    op = Einsum(equation="bij,bjk->bik")
    ins = [t((2, 3, 4), F32), t((2, 4, 5), F32)]
    assert op.cost(ins, op.infer(ins)).macs == 2 * 3 * 4 * 5
    op = Einsum(equation="...ij,...jk")
    ins = [t((6, 3, 4), F32), t((4, 5), F32)]
    assert op.infer(ins) == [t((6, 3, 5), F32)]
    assert op.cost(ins, op.infer(ins)).macs == 6 * 3 * 4 * 5
    # onnxruntime rejects uppercase labels in an implicit output; we order them as numpy does (ASCII).
    assert Einsum(equation="zZ").infer([t((2, 3), F32)]) == [t((3, 2), F32)]
    (y,) = Einsum(equation="zZ").compute([rand(2, 3)])
    np.testing.assert_array_equal(y, rand(2, 3).T)


@pytest.mark.parametrize("eq,shapes,msg", [
    ("ij,jk->ik", [(3, 4)], "has 2 operand"),
    ("ij,jk->ik", [(3, 4), (5, 6)],
     r"label 'j' of 'ij,jk->ik' has sizes 4 and 5 \(operand shapes \(3, 4\), \(5, 6\)\)"),
    ("ij->ik", [(3, 4)], "labels no operand has"),
    ("ij->ii", [(3, 4)], "repeats a label"),
    ("ijk->ij", [(3, 4)], "does not fit an operand of shape"),
    ("ii->i", [(3, 4)], "has sizes 3 and 4"),
    ("...ij->ij", [(2, 3, 4)], "drops the '...' dims"),
    ("i.j->ij", [(3, 4)], "malformed"),
])
def test_einsum_shape_errors(eq, shapes, msg):
    with pytest.raises(ShapeError, match=msg):
        Einsum(equation=eq).infer([TensorType(s, F32) for s in shapes])


def test_einsum_invalid_equation():
    with pytest.raises(InvalidModelError, match="equation"):
        Einsum()
    with pytest.raises(InvalidModelError, match="invalid characters"):
        Einsum(equation="i1,1j")


# -- the ONNX backend node tests of the family --------------------------------------------------------------------
FAMILY = ("test_matmul_", "test_gemm", "test_conv_", "test_basic_conv", "test_convtranspose", "test_maxpool",
          "test_averagepool", "test_globalaveragepool", "test_globalmaxpool", "test_einsum", "test_lppool",
          "test_lrn")


@functools.lru_cache(maxsize=1)
def _node_cases():
    from onnx.backend.test.loader import load_model_tests

    return {c.name: c for c in load_model_tests(kind="node") if c.name.startswith(FAMILY)}


@pytest.mark.slow
def test_onnx_node_cases():
    """Every backend node case of these ops passes at the case's own tolerance (loading them takes seconds)."""
    cases = _node_cases()
    assert len(cases) >= 90
    failures = []
    for case_name, case in sorted(cases.items()):
        inputs, outputs = case.data_sets[0]
        feeds = {vi.name: a for vi, a in zip(case.model.graph.input, inputs)}
        try:
            ours = accelgen.run(accelgen.load(case.model), feeds)
            for vi, want in zip(case.model.graph.output, outputs):
                got = ours[vi.name]
                assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.dtype)
                np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=case.rtol,
                                           atol=case.atol)
        except Exception as e:  # collect all, report together
            failures.append(f"{case_name}: {type(e).__name__}: {str(e)[:200]}")
    assert not failures, "\n".join(failures)
