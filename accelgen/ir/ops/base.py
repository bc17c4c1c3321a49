"""The op contract: one frozen dataclass per op type holds its attributes and everything about its meaning.

An op class declares
- its attributes as dataclass fields (hashable values: int, float, str, tuples);
- `infer`: output types from input types, raising `ShapeError` when the inputs do not fit;
- `compute`: float/integer reference semantics in numpy (the interpreter's truth);
- `cost`: MACs and bytes moved, for the estimators;
- how it is read from ONNX: `attr_inputs` names the ONNX inputs that accelgen needs at compile time (a Reshape's
  shape, a Slice's starts...) and turns into attributes, and `from_onnx` handles opset differences.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from accelgen.errors import InvalidModelError, ShapeError
from accelgen.ir.types import TensorType

QONNX_DOMAIN = "qonnx.custom_op.general"
ACCELGEN_DOMAIN = "accelgen"


@dataclass(frozen=True)
class Cost:
    macs: int = 0  # multiply-accumulates
    bytes: int = 0  # bytes read and written (inputs + outputs)


@dataclass(frozen=True)
class Op:
    op_type: ClassVar[str] = ""
    domain: ClassVar[str] = ""
    # ONNX input slot -> attribute name, for inputs that must be constant (they fix shapes or are tiny options).
    attr_inputs: ClassVar[dict[int, str]] = {}
    # ONNX attributes that exist in some opsets but do not change inference semantics; dropped on import.
    ignored_attrs: ClassVar[frozenset[str]] = frozenset()
    # Whether the frontend may evaluate this op when all its inputs are constant.
    fold_on_import: ClassVar[bool] = True
    # Whether `compute` on float64 arrays holding exact fixed-point values is itself exact (adds, products,
    # maxima, data movement): then that is the op's fixed-point meaning. Others define `compute_fixed`.
    exact_in_fixed: ClassVar[bool] = False
    # Pure data movement (and max/min): the output takes the input's fixed-point type, no rounding.
    keeps_type: ClassVar[bool] = False

    # -- import -------------------------------------------------------------------------------------------------
    @classmethod
    def from_onnx(cls, attrs: dict[str, Any], opset: int, n_outputs: int) -> Op:
        """Build the op from ONNX attributes (attr_inputs already merged in). Override for opset differences
        or when the number of ONNX outputs (`n_outputs`, counting empty optional ones) matters."""
        return cls.from_attrs(attrs)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> Op:
        names = {f.name for f in dataclasses.fields(cls)}
        attrs = {k: v for k, v in attrs.items() if k not in cls.ignored_attrs}
        unknown = sorted(set(attrs) - names)
        if unknown:
            raise InvalidModelError(f"{cls.op_type}: unsupported attribute(s) {', '.join(unknown)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        return cls(**{k: _coerce(v, fields[k].type) for k, v in attrs.items()})

    # -- meaning ------------------------------------------------------------------------------------------------
    def infer(self, inputs: Sequence[TensorType | None]) -> list[TensorType]:
        raise NotImplementedError(f"{self.op_type}.infer")

    def compute(self, inputs: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        raise NotImplementedError(f"{self.op_type}.compute")

    def compute_fixed(self, inputs: Sequence[np.ndarray | None], q) -> list[np.ndarray]:
        """Fixed-point meaning, for a node wrapped in `Quantized` q: inputs are float64 arrays of exact fixed-point
        values; return the exact results before rounding to q.out (the wrapper rounds and counts overflows).

        float64 holds every sum and product exactly while the widths involved stay within 53 bits, which the
        quantizer guarantees, so for `exact_in_fixed` ops the float semantics are the fixed-point semantics."""
        if not self.exact_in_fixed:
            from accelgen.errors import QuantizationError

            raise QuantizationError(f"{self.op_type} has no fixed-point semantics yet")
        args = [None if a is None else np.asarray(a, np.float64) if np.asarray(a).dtype.kind == "f" else a
                for a in inputs]
        return self.compute(args)

    def calibration_probes(self, inputs: Sequence[np.ndarray | None]) -> dict[str, np.ndarray]:
        """Internal tensors whose ranges precision inference needs (a fused Dense's pre-activation, a softmax's
        row sums...), computed from float inputs during calibration. Ops that choose internal types override this
        and `fixed_precision(node, ctx) -> FixedPlan`; others get the quantizer's default plan."""
        return {}

    def cost(self, inputs: Sequence[TensorType | None], outputs: Sequence[TensorType]) -> Cost:
        moved = sum(t.nbytes for t in inputs if t is not None) + sum(t.nbytes for t in outputs)
        return Cost(macs=0, bytes=moved)

    def fold(self, inputs: Sequence[TensorType | None], data: Sequence[np.ndarray | None]) -> list[np.ndarray] | None:
        """Output arrays if they are known at compile time (by default: when every input is constant)."""
        if not self.fold_on_import or any(t is not None and d is None for t, d in zip(inputs, data)):
            return None
        return self.compute(data)

    # -- helpers for subclasses ---------------------------------------------------------------------------------
    def arity(self, inputs: Sequence[TensorType | None], lo: int, hi: int | None = None) -> None:
        hi = lo if hi is None else hi
        if not lo <= len(inputs) <= hi or any(t is None for t in inputs[:lo]):
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise ShapeError(f"{self.op_type} takes {want} inputs, got {len(inputs)}")

    def attrs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __str__(self) -> str:
        return self.op_type


def _coerce(value: Any, annotation: Any) -> Any:
    """ONNX attribute values arrive as lists/ndarrays; dataclass fields hold hashable tuples and plain scalars."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, list):
        return tuple(value)
    ann = str(annotation)
    if ann.startswith("float") and isinstance(value, int):
        return float(value)
    return value


def normalize_axis(axis: int, rank: int, op: str = "") -> int:
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def broadcast_shapes(*shapes: tuple[int, ...], op: str = "") -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(f"{op}: shapes {' and '.join(map(str, shapes))} do not broadcast") from None
