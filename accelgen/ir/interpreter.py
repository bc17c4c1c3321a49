"""The reference interpreter: runs a graph with each op's numpy semantics. It is the numerical truth that every
pass and backend is checked against."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from accelgen.errors import InputError
from accelgen.ir.graph import Graph


def check_inputs(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate names, shapes and dtypes of run() inputs; return them as arrays of the graph's dtypes."""
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
        a = np.asarray(inputs[name])
        want = v.type.dtype.np_dtype
        if a.shape != v.shape:
            raise InputError(f"input {name!r} has shape {a.shape}, the graph expects {v.shape}")
        if a.dtype != want:
            same_kind = np.can_cast(a.dtype, want, casting="same_kind") and a.dtype.kind == want.kind
            if not (same_kind or (a.dtype.kind in "iu" and want.kind == "f")):
                raise InputError(f"input {name!r} has dtype {a.dtype}, the graph expects {want}")
            a = a.astype(want)
        arrays[name] = a
    return arrays


def run(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute `graph` on named input arrays; return its outputs by name."""
    env: dict[int, np.ndarray] = {id(v): v.data for v in graph.constants.values()}
    arrays = check_inputs(graph, inputs)
    for v in graph.inputs:
        env[id(v)] = arrays[v.name]
    for node in graph.nodes:
        args = [env[id(v)] if v is not None else None for v in node.inputs]
        results = node.op.compute(args)
        if len(results) < len(node.outputs):
            raise AssertionError(f"{node.name} ({node.op_type}) returned {len(results)} outputs, "
                                 f"expected {len(node.outputs)}")
        for v, r in zip(node.outputs, results):
            r = np.asarray(r)
            if r.shape != v.shape:
                raise AssertionError(f"{node.name} ({node.op_type}) computed shape {r.shape} for {v.name}, "
                                     f"inferred {v.shape}")
            env[id(v)] = r.astype(v.type.dtype.np_dtype, copy=False)
    return {v.name: env[id(v)] for v in graph.outputs}
