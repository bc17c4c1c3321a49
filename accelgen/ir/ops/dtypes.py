"""ONNX TensorProto element-type codes, for ops whose attributes name a type (Cast `to`, LayerNormalization
`stash_type`...). Kept here so that ops never import onnx."""

from __future__ import annotations

from accelgen.errors import InvalidModelError
from accelgen.ir.types import BF16, BOOL, F16, F32, F64, I8, I16, I32, I64, U8, U16, U32, U64, ElementType

ONNX_DTYPES: dict[int, ElementType] = {1: F32, 2: U8, 3: I8, 4: U16, 5: I16, 6: I32, 7: I64, 9: BOOL, 10: F16,
                                       11: F64, 12: U32, 13: U64, 16: BF16}
_UNSUPPORTED_DTYPES = {0: "UNDEFINED", 8: "STRING", 14: "COMPLEX64", 15: "COMPLEX128", 17: "FLOAT8E4M3FN",
                       18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4",
                       23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2", 27: "FLOAT6E2M3",
                       28: "FLOAT6E3M2"}


def onnx_dtype(code: int, what: str) -> ElementType:
    """The element type for an ONNX type code, or a clear error naming the unsupported type."""
    if code not in ONNX_DTYPES:
        name = _UNSUPPORTED_DTYPES.get(code, f"code {code}")
        raise InvalidModelError(f"{what}: element type {name} is not supported; accelgen supports "
                                f"{', '.join(sorted({str(t) for t in ONNX_DTYPES.values()}))}")
    return ONNX_DTYPES[code]
