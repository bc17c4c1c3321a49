"""Type conversion ops (Cast, CastLike) and inference-mode Dropout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from accelgen.errors import InvalidModelError
from accelgen.ir.ops.base import Op
from accelgen.ir.ops.dtypes import onnx_dtype
from accelgen.ir.ops.elementwise import FLOAT, check_kind
from accelgen.ir.ops.registry import register
from accelgen.ir.types import (
    BF16,
    BOOL,
    F32,
    BoolType,
    ElementType,
    FloatType,
    from_numpy,
)


# -- type conversion ----------------------------------------------------------------------------------------------
# ONNX TensorProto.DataType codes (kept here: onnx is imported only by the frontend).
def convert(x: np.ndarray, dtype: ElementType) -> np.ndarray:
    """ONNX Cast semantics: float -> int truncates, int -> narrower int wraps, nonzero (and NaN) -> True."""
    with np.errstate(all="ignore"):
        if isinstance(dtype, BoolType):
            return x != 0
        if x.dtype == BF16.np_dtype and dtype is not F32:
            x = x.astype(np.float32)  # ml_dtypes does not convert bfloat16 to every type directly
        return x.astype(dtype.np_dtype)


@register
@dataclass(frozen=True)
class Cast(Op):
    """`saturate` and `round_mode` only affect float8 targets, which accelgen rejects, so they cannot change the
    numbers of a supported cast."""

    to: int = 0
    ignored_attrs = frozenset({"saturate", "round_mode"})
    exact_in_fixed = True  # see compute_fixed

    def __post_init__(self):
        if self.to == 0:
            raise InvalidModelError("Cast needs the attribute 'to' (the target element type)")
        onnx_dtype(self.to, "Cast")

    @property
    def dtype(self) -> ElementType:
        return onnx_dtype(self.to, "Cast")

    def infer(self, inputs):
        self.arity(inputs, 1)
        return [inputs[0].with_dtype(self.dtype)]

    def compute(self, inputs):
        return [convert(inputs[0], self.dtype)]

    def compute_fixed(self, inputs, q):  # to float (fixed): the value, which the node rounds; else ONNX's cast
        x = inputs[0]
        return [np.asarray(x, np.float64) if isinstance(self.dtype, FloatType) else convert(np.asarray(x), self.dtype)]


@register
@dataclass(frozen=True)
class CastLike(Op):
    """Cast to the element type of the second input (whose values are not read)."""

    ignored_attrs = frozenset({"saturate", "round_mode"})

    def infer(self, inputs):
        self.arity(inputs, 2)
        return [inputs[0].with_dtype(inputs[1].dtype)]

    def compute(self, inputs):
        x, like = inputs
        return [convert(x, from_numpy(like.dtype))]

    def fold(self, inputs, data):
        """Constant when the converted input is: the target only contributes its (static) element type."""
        if not self.fold_on_import or data[0] is None:
            return None
        return [convert(data[0], inputs[1].dtype)]


@register
@dataclass(frozen=True)
class Dropout(Op):
    """Inference-mode dropout is the identity. The optional mask output (all True: nothing is dropped) is bool from
    opset 10, the data's type before. Training mode is random unless the ratio is 0, so it is rejected."""

    ratio: float = 0.5
    training_mode: bool = False
    mask: str = ""  # not an ONNX attribute: dtype of the mask output ("" none, "bool", or "data" before opset 10)
    attr_inputs = {1: "ratio", 2: "training_mode"}
    ignored_attrs = frozenset({"seed", "is_test"})

    def __post_init__(self):
        if self.training_mode and self.ratio != 0:
            raise InvalidModelError(f"Dropout in training mode (ratio {self.ratio}) is random; accelgen compiles "
                                    "inference graphs: export the model in eval mode or set training_mode false")
        if self.mask not in ("", "bool", "data"):
            raise InvalidModelError(f"Dropout: bad mask kind {self.mask!r}")

    @classmethod
    def from_onnx(cls, attrs: dict[str, Any], opset: int, n_outputs: int) -> Op:
        if "mask" in attrs:
            raise InvalidModelError("Dropout: unsupported attribute(s) mask")
        mask = "" if n_outputs < 2 else "bool" if opset >= 10 else "data"
        return cls.from_attrs({**attrs, "mask": mask})

    def infer(self, inputs):
        self.arity(inputs, 1)
        x = inputs[0]
        check_kind(self, x.dtype, FLOAT)
        if not self.mask:
            return [x]
        return [x, x.with_dtype(BOOL) if self.mask == "bool" else x]

    def compute(self, inputs):
        x = inputs[0]
        if not self.mask:
            return [x]
        return [x, np.ones(x.shape, bool if self.mask == "bool" else x.dtype)]
