"""The reference interpreter: runs a graph with each op's numpy semantics. It is the numerical truth that every
pass and backend is checked against."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from accelgen.errors import AccelgenError, InputError, UnsupportedOpsError
from accelgen.ir.fixed import quantize
from accelgen.ir.graph import Graph, Value
from accelgen.ir.ops.quantized import Quantized
from accelgen.ir.types import BoolType, ElementType, FixedType, IntType, from_numpy


def _kind(t: ElementType) -> str:
    """'bool', 'int' or 'float' (fixed-point values are held as floats)."""
    return "bool" if isinstance(t, BoolType) else "int" if isinstance(t, IntType) else "float"


def _as_array(name: str, value) -> np.ndarray:
    try:
        a = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists
        raise InputError(f"input {name!r} is not an array: {e}") from None
    if a.dtype == object:
        raise InputError(f"input {name!r} is not a numeric array (got {type(value).__name__})")
    return a


def _convert(name: str, a: np.ndarray, want: ElementType) -> np.ndarray:
    """`a` as the graph's element type. Only lossless kind changes are made: integers to integers (when every value
    fits) and integers or floats to floats (when no finite value overflows). Floats are never rounded to integers."""
    np_want = want.np_dtype
    if a.dtype == np_want:
        return a
    try:
        have = _kind(from_numpy(a.dtype))
    except TypeError:
        have = None
    need = _kind(want)
    if have == need == "int":
        info = np.iinfo(np_want)
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < info.min or hi > info.max:
            raise InputError(f"input {name!r} has values in [{lo}, {hi}], outside the range of the graph's "
                             f"{np_want} ([{info.min}, {info.max}])")
        return a.astype(np_want)
    if need == "float" and have in ("int", "float"):
        with np.errstate(over="ignore"):
            converted = a.astype(np_want)
        if np.any(np.isinf(converted) & ~np.isinf(a)):
            raise InputError(f"input {name!r} has values too large for the graph's {np_want} (they would become inf)")
        return converted
    hint = " (accelgen does not round floats to integers: convert the data first)" if have == "float" else ""
    raise InputError(f"input {name!r} has dtype {a.dtype}, the graph expects {np_want}{hint}")


def check_inputs(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate names, shapes and dtypes of run() inputs; return them as arrays of the graph's dtypes."""
    if not isinstance(graph, Graph):
        raise InputError(f"run() needs a Graph (from accelgen.load), got {type(graph).__name__}")
    if not isinstance(inputs, Mapping):
        raise InputError(f"inputs must be a dict of name -> array, got {type(inputs).__name__}")
    expected = {v.name: v for v in graph.inputs}
    missing = [n for n in expected if n not in inputs]
    extra = [n for n in inputs if n not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"unknown {', '.join(map(repr, extra))}")
        raise InputError(f"inputs: {'; '.join(parts)} (the graph's inputs are "
                         f"{', '.join(f'{v.name}: {v.type}' for v in graph.inputs) or 'none'})")
    arrays = {}
    for name, v in expected.items():
        a = _as_array(name, inputs[name])
        if a.shape != v.shape:
            raise InputError(f"input {name!r} has shape {a.shape}, the graph expects {v.shape}")
        arrays[name] = _convert(name, a, v.type.dtype)
    return arrays


@dataclass
class TensorStats:
    """What one tensor did during a run: its value range and how many elements overflowed its fixed-point type
    (before the overflow mode acted: saturated, wrapped or zeroed)."""

    min: float = math.inf
    max: float = -math.inf
    overflows: int = 0
    elements: int = 0

    def add(self, array: np.ndarray, overflow: np.ndarray | None = None) -> None:
        if array.size and array.dtype.kind in "fiu":
            finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array
            if finite.size:
                self.min = min(self.min, float(finite.min()))
                self.max = max(self.max, float(finite.max()))
        self.elements += array.size
        if overflow is not None:
            self.overflows += int(np.count_nonzero(overflow))


def run(graph: Graph, inputs: Mapping[str, np.ndarray], *, stats: dict[str, TensorStats] | None = None,
        observe: Callable[[Value, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
    """Execute `graph` on named input arrays; return its outputs by name.

    Floating-point results follow IEEE arithmetic (NaN and inf propagate without warnings). An op that fails on
    the data (an index out of range...) raises an `InputError` naming the node. Quantized graphs run bit-exactly
    in fixed point: inputs are rounded to their input types, and every `Quantized` node rounds to its output types.
    `stats`, if given, is filled with a TensorStats per tensor name (ranges and overflow counts); `observe` is
    called with every input and computed value (calibration uses it)."""
    arrays = check_inputs(graph, inputs)
    env: dict[int, np.ndarray] = {id(v): v.data for v in graph.constants.values()}

    def record(v: Value, array: np.ndarray, overflow: np.ndarray | None = None) -> None:
        env[id(v)] = array
        if stats is not None:
            stats.setdefault(v.name, TensorStats()).add(array, overflow)
        if observe is not None:
            observe(v, array)

    with np.errstate(all="ignore"):
        for v in graph.inputs:
            a, overflow = arrays[v.name], None
            if isinstance(v.dtype, FixedType):
                if np.isnan(a).any():
                    raise InputError(f"input {v.name!r} has NaN values, which fixed-point types cannot hold")
                a, overflow = quantize(v.dtype, a)
            record(v, a, overflow)
        for node in graph.nodes:
            args = [env[id(v)] if v is not None else None for v in node.inputs]
            label = f"node {node.name!r} ({node.op_type})"
            try:
                internal: dict[str, int] = {}
                if isinstance(node.op, Quantized):
                    results, overflows, internal = node.op.compute_counted(args)
                else:
                    results, overflows = node.op.compute(args), [None] * len(node.outputs)
            except AccelgenError as e:
                kind = InputError if isinstance(e, UnsupportedOpsError) else type(e)
                raise kind(f"{label}: {e}") from e
            except (IndexError, ValueError, ArithmeticError) as e:  # numpy failing on the data
                raise InputError(f"{label} failed on this input: {e}") from e
            if len(results) < len(node.outputs):
                raise AssertionError(f"{label} returned {len(results)} outputs, expected {len(node.outputs)}")
            for v, r, overflow in zip(node.outputs, results, overflows):
                r = np.asarray(r)
                if r.shape != v.shape:
                    raise AssertionError(f"{label} computed shape {r.shape} for {v.name}, inferred {v.shape}")
                record(v, r.astype(v.type.dtype.np_dtype, copy=False), overflow)
            if stats is not None:  # overflows inside an op: "node name/internal tensor"
                for name, count in internal.items():
                    stats.setdefault(f"{node.name}/{name}", TensorStats()).overflows += count
    # An output that is a constant or a graph input would otherwise hand out the graph's (or the caller's) array.
    return {v.name: env[id(v)].copy() if v.producer is None else env[id(v)] for v in graph.outputs}
