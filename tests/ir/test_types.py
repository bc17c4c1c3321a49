"""Element and tensor types are values: they hash, compare, print and parse back."""

from __future__ import annotations

import dataclasses
import math
import re

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelgen.ir.types import (BF16, BOOL, F16, F32, F64, I8, I16, I32, I64, U8, U16, U32, U64, FixedType, FloatType,
                               IntType, Overflow, Rounding, TensorType, from_numpy, is_float)

SETTINGS = settings(max_examples=200, deadline=None)

fixed_types = st.builds(FixedType, width=st.integers(1, 64) | st.integers(1, 1024), integer=st.integers(-80, 140),
                        signed=st.booleans(), rounding=st.sampled_from(Rounding), overflow=st.sampled_from(Overflow))
small_fixed = st.builds(FixedType, width=st.integers(1, 53), integer=st.integers(-40, 60), signed=st.booleans(),
                        rounding=st.sampled_from(Rounding), overflow=st.sampled_from(Overflow))
scalar_types = st.sampled_from([F16, BF16, F32, F64, I8, I16, I32, I64, U8, U16, U32, U64, BOOL]) | fixed_types
shapes = st.lists(st.integers(0, 7), max_size=4).map(tuple)


def _fields(t: FixedType) -> tuple:
    return (t.width, t.integer, t.signed, t.rounding, t.overflow)


# ------------------------------------------------------------------------------------------------------- FixedType

@SETTINGS
@given(fixed_types, fixed_types)
def test_fixed_value_semantics(a, b):
    assert a == FixedType(*_fields(a)) and hash(a) == hash(FixedType(*_fields(a)))
    assert (a == b) == (_fields(a) == _fields(b))
    assert len({a, b, FixedType(*_fields(a))}) == (1 if a == b else 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.width = 3


@SETTINGS
@given(fixed_types)
def test_fixed_str_parse_round_trip(t):
    s, c = str(t), t.cpp()
    assert FixedType.parse(s) == t and FixedType.parse(c) == t
    assert FixedType.parse(f" {c[:-1]} > ".replace(",", " , ")) == t  # whitespace is ignored
    prefix = "" if t.signed else "u"
    assert re.fullmatch(rf"{prefix}fixed<{t.width},{t.integer}(,[A-Z_]+){{0,2}}>", s)
    assert c == "ap_" + re.sub(r"([,<])([A-Z])", r"\1AP_\2", s)
    # Defaults are left out; a non-default overflow mode needs the rounding mode spelled out before it.
    n_modes = s.count(",") - 1
    assert n_modes == (2 if t.overflow is not Overflow.WRAP else 1 if t.rounding is not Rounding.TRN else 0)
    assert t.name == s


def test_fixed_spellings():
    assert str(FixedType(16, 6)) == "fixed<16,6>" and FixedType(16, 6).cpp() == "ap_fixed<16,6>"
    assert str(FixedType(8, 0, signed=False)) == "ufixed<8,0>" and FixedType(8, 0, False).cpp() == "ap_ufixed<8,0>"
    t = FixedType(16, 6, True, Rounding.RND_CONV, Overflow.SAT)
    assert str(t) == "fixed<16,6,RND_CONV,SAT>" and t.cpp() == "ap_fixed<16,6,AP_RND_CONV,AP_SAT>"
    assert FixedType(12, 4, rounding=Rounding.RND).cpp() == "ap_fixed<12,4,AP_RND>"
    assert FixedType(12, 4, overflow=Overflow.SAT_SYM).cpp() == "ap_fixed<12,4,AP_TRN,AP_SAT_SYM>"
    assert FixedType(5, -3, signed=False, rounding=Rounding.TRN_ZERO, overflow=Overflow.SAT_ZERO).cpp() == \
        "ap_ufixed<5,-3,AP_TRN_ZERO,AP_SAT_ZERO>"
    assert FixedType.parse("ap_fixed<16,6,AP_TRN,AP_WRAP>") == FixedType(16, 6)  # explicit defaults
    assert FixedType.parse("ufixed<8,0,RND,SAT>") == FixedType(8, 0, False, Rounding.RND, Overflow.SAT)


@SETTINGS
@given(small_fixed)
def test_fixed_range(t):
    f = t.width - t.integer
    assert t.fractional == f and t.lsb == 2.0 ** -f
    assert t.raw_max - t.raw_min == (1 << t.width) - 1
    assert t.max == t.raw_max * 2.0 ** -f and t.min == t.raw_min * 2.0 ** -f
    if t.signed:
        assert t.min == -(2.0 ** (t.integer - 1)) and t.max == 2.0 ** (t.integer - 1) - t.lsb
    else:
        assert t.min == 0.0 and t.max == 2.0 ** t.integer - t.lsb
    # Every grid value in range is its own quantization (except SAT_SYM's min, which the headers turn into -max).
    grid = np.array([t.min, t.min + t.lsb, -t.lsb, 0.0, t.lsb, t.max - t.lsb, t.max])
    grid = grid[(grid >= t.min) & (grid <= t.max)]
    q = t.quantize(grid)
    if t.overflow is Overflow.SAT_SYM and t.signed and t.width > 1:
        grid = np.where(grid == t.min, -t.max, grid)
    np.testing.assert_array_equal(q, grid)
    if t.overflow is Overflow.SAT:
        assert t.quantize(t.max + t.lsb) == t.max and t.quantize(t.min - t.lsb) == t.min


def test_fixed_range_beyond_float64_is_inf_or_zero():
    assert FixedType(8, 2000).max == math.inf and FixedType(8, 2000).min == -math.inf
    assert FixedType(8, -2000).lsb == 0.0
    assert FixedType(1024, 0, signed=False).max == 1.0  # (2**1024 - 1) * 2**-1024 rounded


@pytest.mark.parametrize("width", [0, -1, 1025, 16.0, "16", None, True, 2 ** 70])
def test_fixed_rejects_bad_width(width):
    with pytest.raises(ValueError, match="width"):
        FixedType(width, 4)


@pytest.mark.parametrize("kwargs, match", [
    ({"integer": 4.5}, "integer bits"), ({"integer": None}, "integer bits"), ({"integer": False}, "integer bits"),
    ({"signed": 1}, "signed"), ({"signed": "yes"}, "signed"),
    ({"rounding": "ROUND"}, "rounding"), ({"overflow": "CLAMP"}, "overflow"), ({"rounding": 3}, "rounding"),
])
def test_fixed_rejects_bad_fields(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FixedType(**{"width": 8, "integer": 4, **kwargs})


def test_fixed_normalizes_numpy_ints_and_mode_names():
    t = FixedType(np.int64(16), np.int32(6), np.bool_(True), "AP_RND", "sat")
    assert t == FixedType(16, 6, True, Rounding.RND, Overflow.SAT)
    assert type(t.width) is int and type(t.integer) is int and type(t.signed) is bool
    assert hash(t) == hash(FixedType(16, 6, True, Rounding.RND, Overflow.SAT))


@pytest.mark.parametrize("text", ["fixed<16>", "fixed<16,6,RND,SAT,0>", "fixed<16,6,FOO>", "ap_int<8>", "fixed<a,b>",
                                  "fixed<0,0>", "fixed16,6", "", "fixed<16,6,AP_SAT,AP_RND>", "ap_fixed<16,6>x"])
def test_fixed_parse_rejects(text):
    with pytest.raises(ValueError):
        FixedType.parse(text)


def test_fixed_parse_rejects_non_strings():
    with pytest.raises(ValueError):
        FixedType.parse(16)


# ------------------------------------------------------------------------------------------------ other scalar types

def test_scalar_types():
    assert [str(t) for t in (F16, BF16, F32, F64)] == ["f16", "bf16", "f32", "f64"]
    assert [str(t) for t in (I8, U16, I32, U64)] == ["i8", "u16", "i32", "u64"] and str(BOOL) == "bool"
    assert BF16.np_dtype == np.dtype(ml_dtypes.bfloat16) and I16.np_dtype == np.dtype(np.int16)
    assert is_float(F32) and not is_float(I32) and not is_float(FixedType(8, 4)) and not is_float(BOOL)
    assert FloatType(32, "f32") == F32 and IntType(8, False) == U8 and hash(IntType(8, False)) == hash(U8)
    assert FixedType(8, 4).np_dtype == np.dtype(np.float64)


@pytest.mark.parametrize("dtype, t", [(np.float16, F16), (ml_dtypes.bfloat16, BF16), (np.float32, F32),
                                      (np.float64, F64), (np.int8, I8), (np.int16, I16), (np.int32, I32),
                                      (np.int64, I64), (np.uint8, U8), (np.uint16, U16), (np.uint32, U32),
                                      (np.uint64, U64), (np.bool_, BOOL), ("float32", F32)])
def test_from_numpy(dtype, t):
    assert from_numpy(dtype) == t and from_numpy(np.dtype(dtype)) is t
    if not isinstance(t, FixedType):
        assert t.np_dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", [np.complex64, np.str_, object, "datetime64[s]"])
def test_from_numpy_rejects(dtype):
    with pytest.raises(TypeError, match="no accelgen element type"):
        from_numpy(dtype)


# ------------------------------------------------------------------------------------------------------ TensorType

@SETTINGS
@given(shapes, scalar_types)
def test_tensor_type(shape, dtype):
    t = TensorType(shape, dtype)
    assert t == TensorType(list(shape), dtype) and hash(t) == hash(TensorType(tuple(shape), dtype))
    assert t.rank == len(shape) and t.numel == math.prod(shape)
    bits = dtype.width if isinstance(dtype, FixedType) else getattr(dtype, "bits", 8)
    assert t.nbytes == -(-t.numel * bits // 8)
    assert str(t) == f"{dtype}[{','.join(map(str, shape))}]"
    assert t.with_shape((2, 3)) == TensorType((2, 3), dtype) and t.with_dtype(F32).shape == t.shape


def test_tensor_type_examples():
    assert str(TensorType((2, 3), F32)) == "f32[2,3]" and str(TensorType((), I8)) == "i8[]"
    assert str(TensorType((4,), FixedType(16, 6, overflow=Overflow.SAT))) == "fixed<16,6,TRN,SAT>[4]"
    assert TensorType((3, 5), FixedType(12, 4)).nbytes == 23  # 180 bits, rounded up to whole bytes
    assert TensorType((2, 4), BOOL).nbytes == 8 and TensorType((0, 4), F32).numel == 0
    t = TensorType(np.array([2, 3]), F32)  # numpy dims become Python ints
    assert t.shape == (2, 3) and all(type(d) is int for d in t.shape)
    assert TensorType.of(np.zeros((2, 3), np.int16)) == TensorType((2, 3), I16)
    with pytest.raises(ValueError, match="negative"):
        TensorType((2, -1), F32)
