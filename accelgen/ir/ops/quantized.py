"""Fixed-point execution: the `Quantized` wrapper op and lookup tables.

A quantized graph keeps every float op as it was and wraps it: `Quantized(op=Dense(...), out=(fixed<16,6>,),
params=(("accum", fixed<38,14>),))`. The wrapped op's own `compute_fixed` gives its fixed-point meaning; the wrapper
holds the precision decisions (output types, accumulator and table types) and rounds the results to the output
types, counting the elements that overflowed. So the meaning of an op still lives in one class, and the
precision of a node is a value that can be printed, compared and handed to a backend.

`LookupTable` is how nonlinear functions run in fixed point: built once in Python, shared with generated C++, so
the emulation and the hardware index the very same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from accelgen.errors import ShapeError
from accelgen.ir.fixed import quantize
from accelgen.ir.ops.base import ACCELGEN_DOMAIN, Cost, Op
from accelgen.ir.types import F64, ElementType, FixedType, TensorType

# The functions tables may hold; names are what the generated C++ and the report show.
TABLE_FUNCTIONS = {
    "exp": np.exp,
    "reciprocal": lambda x: 1.0 / x,
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "gelu_erf": None,  # filled from the Gelu op on first use (keeps erf's implementation in one place)
    "gelu_tanh": None,
}


@dataclass(frozen=True)
class LookupTable:
    """`size` entries of `function` sampled at the centres of [x_min, x_min + size * 2**-frac_bits).

    Indexing is a shift of the input's raw integer: index = floor((x - x_min) * 2**frac_bits), clamped to
    [0, size - 1]. Entries are quantized to `out` (round to nearest, saturate).
    """

    function: str
    x_min: float
    frac_bits: int  # the table step is 2**-frac_bits
    size: int
    out: FixedType

    def __post_init__(self):
        if self.function not in TABLE_FUNCTIONS:
            raise ValueError(f"unknown table function {self.function!r}")
        if self.size < 1:
            raise ValueError("a table needs at least one entry")

    @property
    def x_max(self) -> float:
        return self.x_min + self.size * 2.0 ** -self.frac_bits

    def sample_points(self) -> np.ndarray:
        return self.x_min + (np.arange(self.size, dtype=np.float64) + 0.5) * 2.0 ** -self.frac_bits

    @cached_property
    def values(self) -> np.ndarray:
        fn = TABLE_FUNCTIONS[self.function]
        if fn is None:  # gelu: the float op's own reference
            from accelgen.ir.ops.activations import Gelu

            approx = "tanh" if self.function == "gelu_tanh" else "none"
            fn = lambda x: Gelu(approximate=approx).compute([x])[0]  # noqa: E731
        with np.errstate(all="ignore"):
            return quantize(self.out, fn(self.sample_points()))[0]

    def index(self, x: np.ndarray) -> np.ndarray:
        i = np.floor((np.asarray(x, np.float64) - self.x_min) * 2.0 ** self.frac_bits)
        return np.clip(i, 0, self.size - 1).astype(np.int64)

    def lookup(self, x: np.ndarray) -> np.ndarray:
        return self.values[self.index(x)]

    def __str__(self) -> str:
        return f"table<{self.function},[{self.x_min:g},{self.x_max:g}),{self.size},{self.out}>"

    @classmethod
    def covering(cls, function: str, lo: float, hi: float, size: int, out: FixedType) -> LookupTable:
        """The table of `size` entries with a power-of-two step whose range covers [lo, hi]."""
        span = max(hi - lo, 2.0 ** -20)
        frac_bits = math.floor(math.log2(size / span))
        x_min = math.floor(lo * 2.0 ** frac_bits) / 2.0 ** frac_bits
        while x_min + size * 2.0 ** -frac_bits < hi:  # flooring x_min can cost the top of the range one step
            frac_bits -= 1
            x_min = math.floor(lo * 2.0 ** frac_bits) / 2.0 ** frac_bits
        return cls(function, x_min, frac_bits, size, out)


@dataclass
class FixedPlan:
    """An op's precision decisions for one node: output types, named params for `compute_fixed`, and the types its
    constant inputs are quantized to (by input slot)."""

    out: list[ElementType]
    params: list[tuple[str, object]] = field(default_factory=list)
    constants: dict[int, FixedType] = field(default_factory=dict)


class Quantized(Op):
    """Fixed-point execution of `op`: output types `out`, and named precision `params` (accumulators, tables,
    quantized constants) that the op's `compute_fixed` reads. Not an ONNX op, so it is not in the registry."""

    domain = ACCELGEN_DOMAIN

    def __init__(self, op: Op, out: Sequence[ElementType], params: Sequence[tuple[str, object]] = ()):
        # A plain class (not a dataclass) so that op_type can report the wrapped op: census, printers and
        # backends see "Dense", with the precision as attributes.
        object.__setattr__(self, "op", op)  # Op is frozen: set once here, never changed
        object.__setattr__(self, "out", tuple(out))
        object.__setattr__(self, "params", tuple(params))

    @property
    def op_type(self) -> str:  # type: ignore[override]
        return self.op.op_type

    def param(self, name: str, default=None):
        return next((v for k, v in self.params if k == name), default)

    def attrs(self) -> dict:
        return {**self.op.attrs(), "out": tuple(str(t) for t in self.out), **{k: v for k, v in self.params}}

    def __eq__(self, other) -> bool:
        return isinstance(other, Quantized) and (self.op, self.out, self.params) == (other.op, other.out, other.params)

    def __hash__(self) -> int:
        return hash((self.op, self.out, self.params))

    def __repr__(self) -> str:
        return f"Quantized({self.op!r}, out={[str(t) for t in self.out]}, params={dict(self.params)})"

    def infer(self, inputs):
        shapes = self.op.infer([_as_float(t) for t in inputs])
        if len(shapes) != len(self.out):
            raise ShapeError(f"{self.op_type}: {len(shapes)} outputs but {len(self.out)} output types")
        return [TensorType(t.shape, dtype) for t, dtype in zip(shapes, self.out)]

    def compute_counted(self, inputs) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, int]]:
        """(results rounded to the output types, per-output masks of elements that overflowed, overflow counts of
        the op's internal roundings by name)."""
        tally = _Tally(self)
        exact = self.op.compute_fixed(inputs, tally)
        results, overflows = [], []
        for value, dtype in zip(exact, self.out):
            if isinstance(dtype, FixedType):
                q, overflow = quantize(dtype, value)
            else:  # integer outputs (indices) are exact
                q, overflow = np.asarray(value).astype(dtype.np_dtype), np.zeros(np.shape(value), bool)
            results.append(q)
            overflows.append(overflow)
        return results, overflows, tally.counts

    def compute(self, inputs):
        return self.compute_counted(inputs)[0]


class _Tally:
    """The node as its op's compute_fixed sees it (params, output types), plus a tally of the overflow events of
    the op's internal roundings, which `fixed_math.fixed_round` reports by name through `note_overflow`."""

    def __init__(self, node: Quantized):
        self._node, self.counts = node, {}

    def __getattr__(self, name):
        return getattr(self._node, name)

    def note_overflow(self, name: str, mask: np.ndarray) -> None:
        self.counts[name] = self.counts.get(name, 0) + int(np.count_nonzero(mask))

    def cost(self, inputs, outputs) -> Cost:
        return self.op.cost([_as_float(t) for t in inputs], [_as_float(t) for t in outputs])


def _as_float(t: TensorType | None) -> TensorType | None:
    """Shape inference of the wrapped op runs on float64 stand-ins for fixed-point types."""
    if t is None or not isinstance(t.dtype, FixedType):
        return t
    return t.with_dtype(F64)


def apply_activation_fixed(activation: Op | None, y: np.ndarray, q: Quantized) -> np.ndarray:
    """A fused activation in fixed point: exact ones (Relu) on the exact accumulator; others through the node's
    `activation_table`, indexed by the exact accumulator (no intermediate rounding)."""
    if activation is None:
        return y
    if activation.exact_in_fixed:
        return activation.compute([y])[0]
    table = q.param("activation_table")
    if table is None:
        from accelgen.errors import QuantizationError

        raise QuantizationError(f"{q.op_type}: activation {activation.op_type} needs an activation_table")
    return activation.lookup_fixed(y, table)
