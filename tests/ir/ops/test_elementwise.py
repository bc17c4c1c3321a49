"""Elementwise arithmetic, math, comparison/logic, Where, variadic, Cast/CastLike, Identity and Dropout ops, against
onnxruntime over dtypes, broadcasting and opset forms; plus the float64 erf and the error paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto

import accelgen
from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.ops import lookup
from accelgen.ir.ops.activations import erf, erfc
from accelgen.ir.ops.conversion import Cast, CastLike
from accelgen.ir.ops.elementwise import Add, Max
from accelgen.ir.types import BOOL, F32, I64, TensorType
from tests.onnxmodels import check, load
from tests.ortcheck import rand


SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, 1e-30, 30.0, -30.0, np.inf, -np.inf, np.nan],
                   np.float32)


def floats(*shape, seed=0, low=-3.0, high=3.0):
    return rand(*shape, seed=seed, low=low, high=high)


# -- unary ----------------------------------------------------------------------------------------------------------
UNARY_FLOAT = ["Neg", "Abs", "Sqrt", "Reciprocal", "Exp", "Log", "Erf", "Floor", "Ceil", "Round", "Sign", "Sin",
               "Cos"]


SINCE = {"Round": 11}


@pytest.mark.parametrize("op", UNARY_FLOAT)
@pytest.mark.parametrize("opset", [9, 13, 22])
def test_unary_float(op, opset):
    x = np.concatenate([floats(40, seed=1), SPECIAL])
    check(op, [("x", x)], max(opset, SINCE.get(op, 0)))


@pytest.mark.parametrize("op", [op for op in UNARY_FLOAT if op != "Erf"])  # ORT has no float64 Erf
def test_unary_float64(op):
    check(op, [("x", floats(3, 5, seed=2).astype(np.float64))], 13, rtol=1e-12, atol=1e-14)


def test_erf_float64_op():
    x = floats(3, 5, seed=2).astype(np.float64)
    y = accelgen.run(load("Erf", [("x", x)], 13), {"x": x})["y0"]
    np.testing.assert_allclose(y, np.vectorize(math.erf)(x), rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("op", ["Neg", "Abs", "Sign"])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_unary_integer(op, dtype):
    x = np.array([[-128 if dtype == np.int8 else -5, -1, 0, 1, 7, 127]], dtype)
    check(op, [("x", x)], 13)


@pytest.mark.parametrize("op", ["Abs", "Sign"])
def test_unary_unsigned(op):
    check(op, [("x", np.array([0, 1, 200, 255], np.uint8))], 13)


def test_round_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999998, 0.49999997], np.float32)
    g = check("Round", [("x", x)], 11)
    np.testing.assert_array_equal(accelgen.run(g, {"x": x})["y0"], [0, 2, 2, -0, -2, -2, 2, 0])


def test_erf_float32_close_to_ort():
    x = np.concatenate([np.linspace(-6, 6, 2001, dtype=np.float32), SPECIAL])
    check("Erf", [("x", x)], 13, rtol=0, atol=1e-6)


def test_erf_float64_accuracy():
    x = np.concatenate([np.linspace(-30, 30, 120001), np.geomspace(1e-300, 1e-2, 500), [0.0, -0.0, 0.4999, 0.5]])
    x = np.concatenate([x, -x])
    want = np.array([math.erf(v) for v in x])
    got = erf(x)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-16)
    assert np.signbit(erf(np.array([-0.0])))[0]
    np.testing.assert_array_equal(erf(np.array([np.inf, -np.inf])), [1.0, -1.0])
    assert np.isnan(erf(np.array([np.nan])))[0]


def test_erfc_relative_accuracy_in_tails():
    x = np.linspace(-6, 26, 64001)
    want = np.array([math.erfc(v) for v in x])
    np.testing.assert_allclose(erfc(x), want, rtol=1e-12, atol=0)  # relative, down to 1e-295


@pytest.mark.parametrize("dtype", [np.float16])
@pytest.mark.parametrize("op,ref", [("Exp", np.exp), ("Sqrt", np.sqrt), ("Erf", np.vectorize(math.erf)),
                                    ("Log", np.log)])
def test_unary_float16_matches_float32_rounded(op, ref, dtype):
    x = np.abs(floats(50, seed=3)).astype(dtype) + dtype(0.01)
    g = load(op, [("x", x)], 13)
    got = accelgen.run(g, {"x": x})["y0"]
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, ref(x.astype(np.float64)).astype(np.float32).astype(dtype))


def test_isnan_isinf():
    x = SPECIAL.reshape(3, 5)
    g = check("IsNaN", [("x", x)], 13)
    assert g.outputs[0].type.dtype == BOOL
    for pos, neg in [(1, 1), (1, 0), (0, 1), (0, 0)]:
        check("IsInf", [("x", x)], 10, {"detect_positive": pos, "detect_negative": neg})


def test_not_identity():
    b = np.array([[True, False, True]])
    check("Not", [("x", b)], 7)
    for a in (b, floats(2, 3), np.arange(6, dtype=np.int64).reshape(2, 3)):
        check("Identity", [("x", a)], 16)


def test_unary_rejects_wrong_dtype():
    with pytest.raises(InvalidModelError, match="Sqrt.*i32"):
        load("Sqrt", [("x", np.ones(3, np.int32))], 13)
    with pytest.raises(InvalidModelError, match="Not"):
        load("Not", [("x", np.ones(3, np.float32))], 13)


# -- binary arithmetic ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((), (2, 2)),
                                    ((1, 3, 1, 5), (2, 1, 4, 1))])
def test_arithmetic_broadcast(op, shapes):
    a, b = floats(*shapes[0], seed=4), floats(*shapes[1], seed=5, low=0.5, high=2.0)
    check(op, [("a", a), ("b", b)], 14)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.uint64])
def test_arithmetic_integer(op, dtype):
    rng = np.random.default_rng(6)
    info = np.iinfo(dtype)
    a = rng.integers(max(info.min, -100), min(info.max, 100), (4, 5), endpoint=True).astype(dtype)
    b = rng.integers(1 if info.min == 0 else -9, 9, (5,), endpoint=True).astype(dtype)
    b[b == 0] = 3
    check(op, [("a", a), ("b", b)], 14)


def test_integer_division_truncates_toward_zero():
    a = np.array([7, -7, 7, -7, 6, -6, 0], np.int32)
    b = np.array([2, 2, -2, -2, 3, 3, -5], np.int32)
    g = check("Div", [("a", a), ("b", b)], 14)
    np.testing.assert_array_equal(accelgen.run(g, {"a": a, "b": b})["y0"], [3, -3, -3, 3, 2, -2, 0])


def test_integer_overflow_wraps():
    a = np.array([100, -100, 127], np.int8)
    for op in ("Add", "Mul"):
        check(op, [("a", a), ("b", np.array([100, -100, 1], np.int8))], 14)


def test_float_division_by_zero():
    check("Div", [("a", np.array([1, -1, 0], np.float32)), ("b", np.zeros(3, np.float32))], 14)


@pytest.mark.parametrize("opset", [7, 13])
def test_add_with_constant_operand(opset):
    # Constant first operand, runtime second: must not be folded.
    check("Sub", [("c", floats(3, seed=7)), ("x", floats(2, 3, seed=8))], opset, consts={"c"})


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint16])
def test_mod_integer(fmod, dtype):
    signed = np.issubdtype(dtype, np.signedinteger)
    a = np.array([7, -7, 7, -7, 0, 5, 100] if signed else [7, 8, 9, 0, 5, 100, 3], dtype)
    b = np.array([3, 3, -3, -3, 4, 5, 7] if signed else [3, 3, 4, 4, 5, 7, 2], dtype)
    check("Mod", [("a", a), ("b", b)], 13, {"fmod": fmod})


def test_mod_float_fmod():
    a, b = floats(3, 4, seed=9, low=-10, high=10), floats(4, seed=10, low=0.5, high=3) * np.array([1, -1, 1, -1],
                                                                                                np.float32)
    check("Mod", [("a", a), ("b", b)], 13, {"fmod": 1})
    y = accelgen.run(load("Mod", [("a", a), ("b", b)], 13, {"fmod": 0}), {"a": a, "b": b})["y0"]
    np.testing.assert_allclose(y, np.mod(a, b), rtol=1e-6, atol=1e-6)  # ORT rejects fmod=0 on floats before 28
    with pytest.raises(InvalidModelError, match="fmod"):
        load("Mod", [("a", a), ("b", b)], 13, {"fmod": 2})


@pytest.mark.parametrize("base,exp", [(np.float32, np.float32), (np.float32, np.int64), (np.float32, np.int32),
                                      (np.int64, np.float32), (np.int32, np.float32), (np.int64, np.int64),
                                      (np.int32, np.int32), (np.float64, np.float64)])
def test_pow_types(base, exp):
    a = np.array([[1, 2, 3, 4], [-2, 0, 5, 2]], base)
    b = np.array([2, 3, 1, 0], exp)
    check("Pow", [("a", a), ("b", b)], 15)


def test_pow_float():
    a = floats(3, 4, seed=11, low=0.1, high=3)
    check("Pow", [("a", a), ("b", floats(4, seed=12))], 7)
    check("Pow", [("a", a), ("b", np.array(0.5, np.float32))], 13)
    check("Pow", [("a", floats(5, seed=13)), ("b", np.array([2, 3, 0.5, -1, 2], np.float32))], 13)


def test_pow_negative_integer_exponent_and_int_base_with_float_exponent():
    g = load("Pow", [("a", np.array([2, 1, -1, 4], np.int64)), ("b", np.array([-1, -2, -3, 0.5], np.float32))], 15)
    y = accelgen.run(g, {"a": np.array([2, 1, -1, 4], np.int64), "b": np.array([-1, -2, -3, 0.5], np.float32)})
    np.testing.assert_array_equal(y["y0"], [0, 1, -1, 2])
    assert g.outputs[0].type.dtype == I64


def test_binary_errors():
    with pytest.raises(ShapeError, match="broadcast"):
        load("Add", [("a", floats(2, 3)), ("b", floats(4))], 14)
    with pytest.raises(InvalidModelError, match="element types"):
        load("Add", [("a", floats(2, 3)), ("b", np.ones(3, np.int64))], 14)
    with pytest.raises(InvalidModelError, match="bool"):
        load("Mul", [("a", np.ones(3, bool)), ("b", np.ones(3, bool))], 14)


def test_elementwise_cost_has_no_macs():
    t = TensorType((2, 8), F32)
    cost = Add().cost([t, t], Add().infer([t, t]))
    assert cost.macs == 0 and cost.bytes == 3 * 64


# -- comparisons, logic, Where --------------------------------------------------------------------------------------
@pytest.mark.parametrize("op,opsets", [("Equal", (7, 11, 13, 19)), ("Less", (9, 13)), ("Greater", (9, 13)),
                                       ("LessOrEqual", (12, 16)), ("GreaterOrEqual", (12, 16))])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.uint8])
def test_comparisons(op, opsets, dtype):
    rng = np.random.default_rng(14)
    a = rng.integers(0, 4, (2, 3, 4)).astype(dtype)
    b = rng.integers(0, 4, (3, 1)).astype(dtype)
    for opset in opsets:
        if op == "Equal" and opset < 11 and dtype not in (np.int32, np.int64):
            continue  # Equal-7 takes bool, int32 and int64 only
        g = check(op, [("a", a), ("b", b)], opset)
        assert g.outputs[0].type.dtype == BOOL


def test_compare_nan_and_equal_bool():
    a = np.array([np.nan, 1, np.inf, -np.inf], np.float32)
    for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"):
        check(op, [("a", a), ("b", np.array([np.nan, 1, np.inf, 0], np.float32))], 16)
    check("Equal", [("a", np.array([True, False])), ("b", np.array([[True], [False]]))], 13)


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic(op):
    rng = np.random.default_rng(15)
    a, b = rng.random((3, 4)) > 0.5, rng.random((4,)) > 0.5
    g = check(op, [("a", a), ("b", b)], 7)
    assert g.outputs[0].type.dtype == BOOL
    with pytest.raises(InvalidModelError, match=op):
        load(op, [("a", floats(4)), ("b", floats(4))], 7)


@pytest.mark.parametrize("opset", [9, 16])
def test_where(opset):
    rng = np.random.default_rng(16)
    cond = rng.random((2, 1, 4)) > 0.5
    check("Where", [("c", cond), ("a", floats(3, 1, seed=17)), ("b", floats(4, seed=18))], opset)
    check("Where", [("c", cond), ("a", np.arange(4, dtype=np.int64)), ("b", np.array(-1, np.int64))], opset)
    with pytest.raises(InvalidModelError, match="condition"):
        load("Where", [("c", floats(4)), ("a", floats(4)), ("b", floats(4))], opset)
    with pytest.raises(ShapeError):
        load("Where", [("c", cond), ("a", floats(3)), ("b", floats(4))], opset)


# -- variadic -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
@pytest.mark.parametrize("shapes", [[(3, 4)], [(3, 4), (3, 4)], [(2, 1, 4), (3, 1), (4,)]])
def test_variadic(op, shapes):
    inputs = [(f"x{i}", floats(*s, seed=20 + i)) for i, s in enumerate(shapes)]
    check(op, inputs, 13)
    if all(s == shapes[0] for s in shapes):
        check(op, inputs, 7)  # before opset 8: no broadcasting


@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint8, np.uint64, np.float64])
def test_min_max_dtypes(op, dtype):
    a = np.array([[1, 5, 0], [7, 3, 2]], dtype)
    check(op, [("a", a), ("b", np.array([4, 4, 4], dtype))], 13)


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_min_max_nan_propagates(op):
    check(op, [("a", np.array([np.nan, 1, 2], np.float32)), ("b", np.array([0, np.nan, 1], np.float32))], 13)


def test_variadic_errors():
    with pytest.raises(ShapeError, match="one or more"):
        Max().infer([])
    with pytest.raises(InvalidModelError, match="element types"):
        Max().infer([TensorType((2,), F32), TensorType((2,), I64)])
    with pytest.raises(InvalidModelError, match="Sum"):
        load("Sum", [("a", np.ones(3, np.int32)), ("b", np.ones(3, np.int32))], 13)


# -- Cast / CastLike ------------------------------------------------------------------------------------------------
CAST_VALUES = np.array([0.0, -0.0, 1.0, -1.0, 0.4, 0.6, 1.5, 2.5, -2.7, 100.9, -100.9, 3e4, 65504.0, 1e-3, 1e-8],
                       np.float32)
DTYPES = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64, TensorProto.FLOAT16: np.float16,
          TensorProto.INT8: np.int8, TensorProto.INT16: np.int16, TensorProto.INT32: np.int32,
          TensorProto.INT64: np.int64, TensorProto.UINT8: np.uint8, TensorProto.UINT16: np.uint16,
          TensorProto.UINT32: np.uint32, TensorProto.UINT64: np.uint64, TensorProto.BOOL: np.bool_}


@pytest.mark.parametrize("to", list(DTYPES))
@pytest.mark.parametrize("src", [np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_, np.float16])
def test_cast(src, to):
    x = CAST_VALUES
    dst = DTYPES[to]
    if np.issubdtype(dst, np.integer) or np.issubdtype(src, np.integer):
        x = np.abs(x) if np.issubdtype(dst, np.unsignedinteger) or np.issubdtype(src, np.unsignedinteger) else x
        x = x[np.abs(x) < 100]  # out-of-range float -> int is undefined
    x = x.astype(src)
    check("Cast", [("x", x)], 13, {"to": to})


def test_cast_integer_wraps_and_bool():
    check("Cast", [("x", np.array([200, -56, 300, 0, -1], np.int32))], 13, {"to": TensorProto.INT8})
    check("Cast", [("x", np.array([0.0, -0.0, np.nan, 0.1, -np.inf], np.float32))], 13, {"to": TensorProto.BOOL})


def test_cast_bfloat16():
    import ml_dtypes

    x = floats(20, seed=30)
    g = load("Cast", [("x", x)], 13, {"to": TensorProto.BFLOAT16})
    y = accelgen.run(g, {"x": x})["y0"]
    assert y.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(y, x.astype(ml_dtypes.bfloat16))  # round to nearest even
    back = accelgen.run(load("Cast", [("x", y)], 13, {"to": TensorProto.INT32}), {"x": y})["y0"]
    np.testing.assert_array_equal(back, y.astype(np.float32).astype(np.int32))


def test_cast_attribute_variants():
    # 'saturate' (opset 19+) only matters for float8 targets, so it is accepted and ignored (ORT rejects it).
    x = floats(5)
    y = accelgen.run(load("Cast", [("x", x)], 19, {"to": TensorProto.FLOAT16, "saturate": 0}), {"x": x})["y0"]
    np.testing.assert_array_equal(y, x.astype(np.float16))
    with pytest.raises(InvalidModelError, match="FLOAT8E4M3FN"):
        load("Cast", [("x", floats(5))], 19, {"to": TensorProto.FLOAT8E4M3FN})
    with pytest.raises(InvalidModelError, match="STRING"):
        load("Cast", [("x", floats(5))], 13, {"to": TensorProto.STRING})
    with pytest.raises(InvalidModelError, match="'to'"):
        Cast.from_onnx({}, 13, 1)


def test_castlike():
    x = floats(3, 4, seed=31)
    check("CastLike", [("x", x), ("like", np.zeros(1, np.float16))], 15)
    check("CastLike", [("x", x), ("like", np.zeros((), np.int32))], 19, consts={"like"})
    g = check("CastLike", [("x", x), ("like", np.zeros(2, np.float64))], 15)
    assert len(g.nodes) == 1


def test_castlike_constant_input_folds_with_runtime_target():
    # The converted value is constant; the target only contributes its type, so the node folds away.
    c, like = np.array([1.5, -2.0], np.float32), np.zeros(3, np.float64)
    g = check("CastLike", [("c", c), ("like", like)], 15, consts={"c"})
    assert not g.nodes
    t = TensorType((2,), F32)
    assert CastLike().fold([t, TensorType((3,), I64)], [c, None])[0].dtype == np.int64


# -- Dropout --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [7, 10])
def test_dropout_attribute_form(opset):
    x = floats(2, 3)
    check("Dropout", [("x", x)], opset, {"ratio": 0.3})
    # The mask says which elements were kept: all of them in inference. (The ONNX reference agrees; onnxruntime
    # fills the mask with zeros before opset 12, so it is not compared with ORT here.)
    g = load("Dropout", [("x", x)], opset, {"ratio": 0.3}, n_out=2)
    y, mask = accelgen.run(g, {"x": x}).values()
    np.testing.assert_array_equal(y, x)
    assert mask.dtype == (bool if opset >= 10 else np.float32) and mask.all()
    assert g.outputs[1].type.dtype == (BOOL if opset >= 10 else F32)


@pytest.mark.parametrize("opset", [12, 13, 22])
def test_dropout_input_form(opset):
    x = floats(2, 3)
    ratio, training = np.array(0.25, np.float32), np.array(False)
    check("Dropout", [("x", x)], opset, n_out=2)
    check("Dropout", [("x", x), ("r", ratio)], opset, consts={"r"})
    check("Dropout", [("x", x), ("r", ratio), ("t", training)], opset, consts={"r", "t"}, n_out=2)
    check("Dropout", [("x", x), ("", None), ("t", training)], opset, consts={"t"})


def test_dropout_training_mode():
    x = floats(2, 3)
    with pytest.raises(InvalidModelError, match="training mode"):
        load("Dropout", [("x", x), ("r", np.array(0.5, np.float32)), ("t", np.array(True))], 13, consts={"r", "t"})
    with pytest.raises(InvalidModelError, match="training mode"):  # default ratio 0.5
        load("Dropout", [("x", x), ("", None), ("t", np.array(True))], 13, consts={"t"})
    # With ratio 0, training mode drops nothing: deterministic, so it is the identity.
    g = load("Dropout", [("x", x), ("r", np.array(0.0, np.float32)), ("t", np.array(True))], 13, consts={"r", "t"},
             n_out=2)
    y = accelgen.run(g, {"x": x})
    np.testing.assert_array_equal(y["y0"], x)
    assert y["y1"].dtype == bool and y["y1"].all()
    with pytest.raises(ShapeError, match="compile time"):
        load("Dropout", [("x", x), ("r", np.array(0.5, np.float32)), ("t", np.array(False))], 13, consts={"r"})


def test_registered():
    ops = ("Add Sub Mul Div Neg Abs Sqrt Reciprocal Pow Exp Log Erf Min Max Sum Mean Where Equal Less Greater "
           "LessOrEqual GreaterOrEqual Not And Or Xor Identity Cast CastLike Dropout Floor Ceil Round Sign Sin Cos "
           "Mod IsNaN IsInf").split()
    assert all(lookup("", op) is not None for op in ops)
