"""Mixed precision by sensitivity: a greedy search over per-layer widths that minimises total bits while the
quantized model stays within an accuracy bound of the float one on the calibration data.

Each layer has up to two knobs: its output width (`width`) and its weights' width (`weight_bits`). Starting from
the types `accelgen.quantize` infers, every round narrows one knob by a step: the candidates are tried in order of
the bits they save, and the first whose metric stays at or above the bound is kept. That is the change that saves
the most bits among those the bound allows (as the greedy mixed-precision PTQ methods do) while evaluating only
until it is found. A knob that breaks the bound is frozen for the rest of the pass: narrowing other layers only
adds error, so it would fail again. Steps go from coarse to fine (4, 2, 1 bits by default), each pass starting
from where the previous one stopped with every knob thawed, and the number of evaluations is bounded.

The metric is argmax agreement with float (classifiers) or cosine similarity (the worst output counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from accelgen.errors import QuantizationError
from accelgen.ir.graph import Graph
from accelgen.ir.types import FixedType, is_float
from accelgen.quant.calibrate import split_batches
from accelgen.quant.quantize import quantize
from accelgen.quant.report import compare, graph_bits, run_batches

METRICS = ("agreement", "cosine")


@dataclass
class Step:
    """One evaluation: narrowing `node`'s `knob` to `bits`; `accepted` if kept."""

    node: str
    knob: str
    bits: int
    metric: float
    total_bits: int
    accepted: bool


@dataclass
class SearchResult:
    overrides: dict[str, dict]  # for accelgen.quantize: the user's overrides plus the widths chosen
    graph: Graph  # the quantized graph with those overrides
    metric: str
    bound: float
    value: float  # the metric of `graph` on the evaluation data
    start_value: float
    start_bits: int  # weight bits + activation bits per sample, before and after
    total_bits: int
    evaluations: int
    history: list[Step] = field(default_factory=list)

    def summary(self) -> str:
        saved = 1 - self.total_bits / self.start_bits if self.start_bits else 0.0
        return (f"search: {self.start_bits:,} -> {self.total_bits:,} bits ({100 * saved:.1f}% fewer), "
                f"{self.metric} {self.start_value:.4f} -> {self.value:.4f} (bound {self.bound}), "
                f"{self.evaluations} evaluations")

    def to_dict(self) -> dict:
        return {"metric": self.metric, "bound": self.bound, "value": self.value, "start_value": self.start_value,
                "start_bits": self.start_bits, "total_bits": self.total_bits, "evaluations": self.evaluations,
                "overrides": self.overrides,
                "history": [vars(s) for s in self.history]}


def search_precision(graph: Graph, calibration: Mapping[str, np.ndarray], *, metric: str = "agreement",
                     bound: float = 0.99, steps: Sequence[int] = (4, 2, 1), min_width: int = 2,
                     max_evaluations: int = 200, data: Mapping[str, np.ndarray] | None = None,
                     overrides: Mapping[str, Mapping] | None = None, **quantize_options) -> SearchResult:
    """Narrow per-layer widths greedily while `metric` (on `data`, by default the calibration data) stays
    >= `bound`. `quantize_options` (precision, weight_bits, activation_bits, margin, table_size) set the start.
    Nodes whose type or weight type the user fixed in `overrides` keep it."""
    if metric not in METRICS:
        raise QuantizationError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not 0.0 <= bound <= 1.0:
        raise QuantizationError(f"the {metric} bound must be a number in [0, 1], got {bound!r}")
    if not steps or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in steps):
        raise QuantizationError(f"steps must be positive integers, got {steps!r}")
    if isinstance(min_width, bool) or not isinstance(min_width, int) or min_width < 2:
        raise QuantizationError(f"min_width must be an integer >= 2, got {min_width!r}")
    if isinstance(max_evaluations, bool) or not isinstance(max_evaluations, int) or max_evaluations < 1:
        raise QuantizationError(f"max_evaluations must be a positive integer, got {max_evaluations!r}")

    batches = split_batches(graph, calibration if data is None else data)
    reference, _ = run_batches(graph, {}, batches=batches)
    chosen = {k: dict(v) for k, v in (overrides or {}).items()}
    q = quantize(graph, calibration, overrides=chosen, **quantize_options)

    def evaluate(qg: Graph) -> float:
        got, _ = run_batches(qg, {}, batches=batches)
        return score(metric, reference, got)

    value = start_value = evaluate(q)
    if value < bound:
        raise QuantizationError(f"the starting types already miss the bound: {metric} {value:.4f} < {bound} on the "
                                "evaluation data; start from wider types (more activation or weight bits, auto "
                                "precision rather than a uniform type) or lower the bound")
    bits = start_bits = sum(graph_bits(q))
    knobs = _knobs(graph, q, chosen)
    history: list[Step] = []
    evaluations = 1
    for step in steps:
        frozen: set[tuple[str, str]] = set()
        while evaluations < max_evaluations:
            candidates = []  # (estimated saving, node, knob, new width)
            for (node, knob), (width, elements) in knobs.items():
                if (node, knob) not in frozen and width - step >= min_width:
                    candidates.append((elements * step, node, knob, width - step))
            if not candidates:
                break
            candidates.sort(key=lambda c: -c[0])  # stable: ties keep graph order
            accepted = False
            for _, node, knob, width in candidates:
                if evaluations >= max_evaluations:
                    break
                trial = {**chosen, node: {**chosen.get(node, {}), knob: width}}
                try:
                    qt = quantize(graph, calibration, overrides=trial, **quantize_options)
                except QuantizationError:  # e.g. a width the op's plan cannot take
                    frozen.add((node, knob))
                    continue
                t_bits = sum(graph_bits(qt))
                if t_bits >= bits:  # the knob does nothing here (a type kept from the input...)
                    frozen.add((node, knob))
                    continue
                t_value = evaluate(qt)
                evaluations += 1
                ok = t_value >= bound
                history.append(Step(node, knob, width, t_value, t_bits, ok))
                if ok:
                    chosen, q, value, bits = trial, qt, t_value, t_bits
                    knobs[node, knob] = (width, knobs[node, knob][1])
                    accepted = True
                    break
                frozen.add((node, knob))
            if not accepted:
                break
    return SearchResult(chosen, q, metric, bound, value, start_value, start_bits, bits, evaluations, history)


def score(metric: str, reference: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> float:
    """The worst output's argmax agreement or cosine similarity with float."""
    rows = [compare(name, reference[name], got[name]) for name in reference]
    if metric == "cosine":
        return min(r.cosine for r in rows)
    values = [r.agreement for r in rows if r.agreement is not None]
    if not values:
        raise QuantizationError("argmax agreement needs an output with more than one class on its last axis; "
                                "use metric='cosine'")
    return min(values)


def _knobs(graph: Graph, q: Graph, fixed: Mapping[str, Mapping]) -> dict[tuple[str, str], tuple[int, int]]:
    """(node name, "width" | "weight_bits") -> (current width, elements it applies to per sample). Nodes whose
    output type is kept from their inputs, or was fixed by the user, have no width knob."""
    first = q.inputs[0].shape if q.inputs else ()
    batch = first[0] if first and first[0] > 0 else 1
    knobs = {}
    for f_node, q_node in zip(graph.nodes, q.nodes):
        # a node's settings are merged over its op type's, and a type always beats a width
        user = {**fixed.get(f_node.op_type, {}), **fixed.get(f_node.name, {})}
        outs = [v for v in q_node.outputs if isinstance(v.dtype, FixedType)]
        if outs and not f_node.op.keeps_type and "type" not in user:
            elements = max(sum(v.type.numel for v in outs) // batch, 1)
            knobs[f_node.name, "width"] = (max(v.dtype.width for v in outs), elements)
        weights = [q_v for f_v, q_v in zip(f_node.inputs, q_node.inputs)
                   if f_v is not None and f_v.is_constant and is_float(f_v.dtype) and isinstance(q_v.dtype, FixedType)]
        if weights and "weight_type" not in user:
            knobs[f_node.name, "weight_bits"] = (max(v.dtype.width for v in weights), sum(v.type.numel for v in weights))
    return knobs
