"""Calibration: run the float graph on sample data and record the range of every tensor, and of the internal
tensors ops ask for (`Op.calibration_probes`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from accelgen.errors import QuantizationError
from accelgen.ir.graph import Graph
from accelgen.ir.interpreter import TensorStats, run


def split_batches(graph: Graph, calibration: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Calibration arrays hold any number of samples stacked along the batch axis: (n * B, ...) for a graph input
    of shape (B, ...). Returns the feeds, one dict per graph-sized batch."""
    if not isinstance(calibration, Mapping) or not calibration:
        raise QuantizationError("calibration must be a non-empty dict of input name -> array of samples")
    expected = {v.name: v for v in graph.inputs}
    unknown = sorted(set(calibration) - set(expected))
    missing = sorted(set(expected) - set(calibration))
    if unknown or missing:
        inputs = ", ".join(f"{v.name}: {v.type}" for v in graph.inputs)
        problem = "; ".join(([f"unknown {unknown}"] if unknown else []) + ([f"missing {missing}"] if missing else []))
        raise QuantizationError(f"calibration data: {problem}; the graph's inputs are {inputs}")
    counts = set()
    arrays = {}
    for name, v in expected.items():
        a = np.asarray(calibration[name])
        batch, rest = (v.shape[0], v.shape[1:]) if v.shape else (1, ())
        if a.ndim != len(v.shape) or a.shape[1:] != rest or batch == 0 or a.shape[0] % batch:
            raise QuantizationError(f"calibration[{name!r}] has shape {a.shape}; expected (n * {batch}, "
                                    f"{', '.join(map(str, rest))}) for the graph input {v.type}")
        if a.shape[0] == 0:
            raise QuantizationError(f"calibration[{name!r}] is empty: give at least one sample")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise QuantizationError(f"calibration[{name!r}] has NaN or infinite values")
        counts.add(a.shape[0] // batch)
        arrays[name] = (a, batch)
    if len(counts) != 1:
        raise QuantizationError("calibration arrays hold different numbers of samples")
    n = counts.pop()
    return [{name: a[i * b:(i + 1) * b] for name, (a, b) in arrays.items()} for i in range(n)]


def calibrate(graph: Graph, calibration: Mapping[str, np.ndarray]) -> dict[str, TensorStats]:
    """Ranges of every tensor (by value name) and of op probes (by "node name/probe name")."""
    stats: dict[str, TensorStats] = {}
    for feeds in split_batches(graph, calibration):
        seen: dict[int, np.ndarray] = {}
        run(graph, feeds, stats=stats, observe=lambda v, array, seen=seen: seen.__setitem__(id(v), array))
        for node in graph.nodes:
            args = [None if v is None else v.data if v.is_constant else seen[id(v)] for v in node.inputs]
            for probe, array in node.op.calibration_probes(args).items():
                stats.setdefault(f"{node.name}/{probe}", TensorStats()).add(np.asarray(array, np.float64))
    return stats
