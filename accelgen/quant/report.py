"""What quantization did to a model, measured: per tensor its type, the range the data reached and how often the
type overflowed; per output how far the fixed-point results are from float (max/mean abs error, cosine, argmax
agreement). The same numbers drive the mixed-precision search, so the report and the search cannot disagree."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from accelgen.errors import QuantizationError
from accelgen.ir.graph import Graph
from accelgen.ir.interpreter import TensorStats, run
from accelgen.ir.types import FixedType
from accelgen.quant.calibrate import split_batches


@dataclass
class TensorRow:
    """One tensor of the quantized graph. `node` is the name to key a per-layer override on: the producer for
    activations, the consumers for weights."""

    name: str
    kind: str  # "input", "activation" or "weight"
    node: str
    op: str
    type: str
    shape: tuple[int, ...]
    min: float | None  # the range seen: weights' data, activations' float values on the data (if float has them)
    max: float | None
    overflows: int  # elements that overflowed the type in the fixed-point run (saturated or wrapped)
    elements: int

    @property
    def overflow_fraction(self) -> float:
        return self.overflows / self.elements if self.elements else 0.0


@dataclass
class OutputRow:
    name: str
    max_abs_error: float
    mean_abs_error: float
    cosine: float
    agreement: float | None  # argmax over the last axis; None when that axis has a single element
    samples: int


@dataclass
class QuantizationReport:
    tensors: list[TensorRow]
    outputs: list[OutputRow]
    samples: int  # samples (batch elements) run
    batches: int  # graph-sized batches run
    weight_bits: int
    activation_bits: int  # per sample (one batch element), as a streaming accelerator holds them
    extra: dict = field(default_factory=dict)  # callers may attach more (the CLI adds search results)

    @property
    def total_bits(self) -> int:
        return self.weight_bits + self.activation_bits

    @property
    def overflows(self) -> int:
        return sum(r.overflows for r in self.tensors)

    def output(self, name: str) -> OutputRow:
        for o in self.outputs:
            if o.name == name:
                return o
        raise KeyError(name)

    # -- rendering ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"samples": self.samples, "batches": self.batches, "weight_bits": self.weight_bits, "activation_bits": self.activation_bits,
             "total_bits": self.total_bits, "overflows": self.overflows,
             "tensors": [{**asdict(r), "shape": list(r.shape)} for r in self.tensors],
             "outputs": [asdict(o) for o in self.outputs], **self.extra}
        return _finite(d)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def _tables(self) -> tuple[list[tuple], list[tuple]]:
        tensors = [("tensor", "node", "op", "type", "range seen", "overflows")]
        for r in self.tensors:
            seen = "-" if r.min is None else f"[{_num(r.min)}, {_num(r.max)}]"
            over = f"{r.overflows} ({100 * r.overflow_fraction:.2g}%)" if r.overflows else "0"
            tensors.append((r.name, r.node, r.op, r.type, seen, over))
        outputs = [("output", "max abs err", "mean abs err", "cosine", "argmax agreement")]
        for o in self.outputs:
            agree = "-" if o.agreement is None else f"{100 * o.agreement:.2f}%"
            outputs.append((o.name, _num(o.max_abs_error), _num(o.mean_abs_error), f"{o.cosine:.6f}", agree))
        return tensors, outputs

    def summary(self) -> str:
        return (f"{self.samples} samples; weights {self.weight_bits:,} bits, activations {self.activation_bits:,} "
                f"bits per sample, total {self.total_bits:,}; {self.overflows} overflow event(s)")

    def text(self, tensors: bool = True) -> str:
        """The readable tables; without `tensors`, only the outputs and the summary."""
        rows, outputs = self._tables()
        return "\n".join([*(_text_table(rows) + [""] if tensors else []), *_text_table(outputs), "", self.summary()])

    def __str__(self) -> str:
        return self.text()

    def to_markdown(self) -> str:
        tensors, outputs = self._tables()
        return "\n".join([*_markdown_table(tensors), "", *_markdown_table(outputs), "", self.summary()])


def quantization_report(float_graph: Graph, q_graph: Graph, data: Mapping[str, np.ndarray]) -> QuantizationReport:
    """Run both graphs on `data` (input name -> samples stacked along the batch axis, as for calibration) and
    measure the quantized graph against the float one. Outputs are matched by name, else by position."""
    if len(float_graph.outputs) != len(q_graph.outputs):
        raise QuantizationError(f"the float graph has {len(float_graph.outputs)} outputs, the quantized graph "
                                f"{len(q_graph.outputs)}: they are not the same model")
    f_stats: dict[str, TensorStats] = {}
    q_stats: dict[str, TensorStats] = {}
    f_out, _ = run_batches(float_graph, data, f_stats)  # its batch may differ: outputs are joined over samples
    q_out, batches = run_batches(q_graph, data, q_stats)
    q_names = [v.name for v in q_graph.outputs]
    f_names = q_names if set(q_names) == set(f_out) else [v.name for v in float_graph.outputs]
    outputs = [compare(qn, f_out[fn], q_out[qn]) for qn, fn in zip(q_names, f_names)]
    weight_bits, activation_bits = graph_bits(q_graph)
    first = q_graph.inputs[0].shape if q_graph.inputs else ()
    samples = batches * (first[0] if first else 1)
    return QuantizationReport(_tensor_rows(q_graph, f_stats, q_stats), outputs, samples, batches, weight_bits,
                              activation_bits)


def run_batches(graph: Graph, data: Mapping[str, np.ndarray], stats: dict | None = None,
                batches: list[dict] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Outputs over all samples (batches joined along axis 0), and the number of batches run."""
    batches = split_batches(graph, data) if batches is None else batches
    results: dict[str, list[np.ndarray]] = {}
    for feeds in batches:
        for name, value in run(graph, feeds, stats=stats).items():
            results.setdefault(name, []).append(np.asarray(value, np.float64))
    joined = {k: np.concatenate(v) if v[0].ndim else np.stack(v) for k, v in results.items()}
    return joined, len(batches)


def compare(name: str, reference: np.ndarray, got: np.ndarray) -> OutputRow:
    """How far `got` is from `reference` (same shape)."""
    ref, got = np.asarray(reference, np.float64), np.asarray(got, np.float64)
    if ref.shape != got.shape:
        raise QuantizationError(f"output {name!r}: float shape {ref.shape} vs quantized {got.shape}")
    err = np.abs(ref - got)
    norms = float(np.linalg.norm(ref)) * float(np.linalg.norm(got))
    cosine = float(np.vdot(ref, got) / norms) if norms > 0 else float(np.array_equal(ref, got))
    agreement = None
    if ref.ndim and ref.shape[-1] > 1:
        agreement = float(np.mean(ref.argmax(-1) == got.argmax(-1)))
    samples = ref.shape[0] if ref.ndim else 1
    return OutputRow(name, float(err.max()) if err.size else 0.0, float(err.mean()) if err.size else 0.0,
                     cosine, agreement, samples)


def graph_bits(graph: Graph) -> tuple[int, int]:
    """(weight bits, activation bits per sample) of the fixed-point tensors of `graph`. Activations are counted
    once per batch element (the graph's first input's leading dimension), as a streaming design holds them."""
    weights = sum(v.type.numel * v.dtype.width for v in graph.constants.values() if isinstance(v.dtype, FixedType))
    acts = [v for v in graph.inputs] + [v for n in graph.nodes for v in n.outputs]
    total = sum(v.type.numel * v.dtype.width for v in acts if isinstance(v.dtype, FixedType))
    first = graph.inputs[0].shape if graph.inputs else ()
    batch = first[0] if first and first[0] > 0 else 1
    return weights, -(-total // batch)


def _tensor_rows(q: Graph, f_stats: Mapping[str, TensorStats], q_stats: Mapping[str, TensorStats]) -> list[TensorRow]:
    rows = []

    def seen(name: str) -> tuple[float | None, float | None]:
        s = f_stats.get(name) or q_stats.get(name)
        return (s.min, s.max) if s is not None and s.min <= s.max else (None, None)

    def row(v, kind: str, node: str, op: str) -> TensorRow:
        s = q_stats.get(v.name, TensorStats())
        lo, hi = seen(v.name)
        return TensorRow(v.name, kind, node, op, str(v.dtype), v.shape, lo, hi, s.overflows, s.elements)

    for v in q.inputs:
        rows.append(row(v, "input", "-", "input"))
    for v in q.constants.values():
        users = list(dict.fromkeys(n.name for n in v.users))
        r = row(v, "weight", ", ".join(users) or "-", "weight")
        if v.data is not None and v.data.size:
            r.min, r.max = float(np.min(v.data)), float(np.max(v.data))
        rows.append(r)
    for n in q.nodes:
        rows.extend(row(v, "activation", n.name, n.op_type) for v in n.outputs)
    return rows


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}" if x == 0 or 1e-3 <= abs(x) < 1e5 else f"{x:.3e}"


def _finite(x):
    """JSON has no inf/NaN: write them as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _text_table(rows: list[tuple]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return [lines[0], "  ".join("-" * w for w in widths), *lines[1:]]


def _markdown_table(rows: list[tuple]) -> list[str]:
    lines = ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return [lines[0], "|" + "|".join("---" for _ in rows[0]) + "|", *lines[1:]]
