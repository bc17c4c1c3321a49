"""The report an estimator returns: one row per generated kernel and the top level, with the same fields, the
part's capacity for utilization, the configuration it was estimated for, and warnings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

RESOURCES = ("dsp", "lut", "ff", "bram18")


@dataclass
class LayerEstimate:
    name: str
    op: str
    kernel: str
    latency_cycles: int
    ii: int
    dsp: int = 0
    lut: int = 0
    ff: int = 0
    bram18: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    """Top-level worst-case latency and interval (cycles), resources, and the rows they come from."""

    model: str
    target: str
    part: str
    clock_ns: float
    latency_cycles: int
    ii: int
    dsp: int
    lut: int
    ff: int
    bram18: int
    layers: list[LayerEstimate]
    capacity: dict[str, int]  # the part's dsp, lut, ff, bram18
    config: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def latency_ns(self) -> float:
        return self.latency_cycles * self.clock_ns

    @property
    def utilization(self) -> dict[str, float]:
        """Fraction of the part used, per resource (1.0 = all of it)."""
        return {r: getattr(self, r) / self.capacity[r] if self.capacity.get(r) else 0.0 for r in RESOURCES}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["latency_ns"] = self.latency_ns
        d["utilization"] = self.utilization
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Report:
        fields = {k: v for k, v in d.items() if k not in ("latency_ns", "utilization", "layers")}
        return cls(**fields, layers=[LayerEstimate(**row) for row in d["layers"]])

    @classmethod
    def from_json(cls, path) -> Report:
        from pathlib import Path

        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_json(self, path=None, indent: int = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            from pathlib import Path

            Path(path).write_text(text + "\n")
        return text

    def summary(self) -> str:
        u = self.utilization
        return (f"{self.model} on {self.part} @ {self.clock_ns:g} ns: latency {self.latency_cycles} cycles "
                f"({self.latency_ns:g} ns), II {self.ii}; DSP {self.dsp} ({u['dsp']:.1%}), LUT {self.lut} "
                f"({u['lut']:.1%}), FF {self.ff} ({u['ff']:.1%}), BRAM18 {self.bram18} ({u['bram18']:.1%})")

    def to_text(self, width: int = 48) -> str:
        """An aligned table for the terminal: one row per layer, the total, utilization and warnings."""
        head = ("layer", "op", "latency", "II", "DSP", "LUT", "FF", "BRAM18")
        body = [(_clip(r.name, width), r.op, r.latency_cycles, r.ii, r.dsp, r.lut, r.ff, r.bram18)
                for r in self.layers]
        total = ("total", "", self.latency_cycles, self.ii, self.dsp, self.lut, self.ff, self.bram18)
        u = self.utilization
        used = ("% of part", "", "", "", *(f"{u[k]:.1%}" for k in RESOURCES))
        table = [head, *body, total, used]
        cols = [max(len(str(row[i])) for row in table) for i in range(len(head))]

        def line(row):
            return "  ".join(str(v).ljust(cols[i]) if i < 2 else str(v).rjust(cols[i]) for i, v in enumerate(row))

        rule = "  ".join("-" * c for c in cols)
        lines = [self.summary(), "", line(head), rule, *map(line, body), rule, line(total), line(used)]
        if self.warnings:
            lines += ["", f"warnings ({len(self.warnings)}):", *[f"  - {w}" for w in self.warnings]]
        return "\n".join(lines) + "\n"

    def to_markdown(self) -> str:
        lines = [f"# Estimate: {self.model} ({self.target})", "", self.summary(), "",
                 "| layer | op | kernel | latency | II | DSP | LUT | FF | BRAM18 |",
                 "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in self.layers:
            lines.append(f"| {r.name} | {r.op} | {r.kernel} | {r.latency_cycles} | {r.ii} | {r.dsp} | {r.lut} | "
                         f"{r.ff} | {r.bram18} |")
        lines.append(f"| **total** | | | **{self.latency_cycles}** | **{self.ii}** | **{self.dsp}** | "
                     f"**{self.lut}** | **{self.ff}** | **{self.bram18}** |")
        if self.warnings:
            lines += ["", "Warnings:", *[f"- {w}" for w in self.warnings]]
        return "\n".join(lines) + "\n"

    def to_html(self, path=None) -> str:
        from accelgen.report.html import render

        text = render(self)
        if path is not None:
            from pathlib import Path

            Path(path).write_text(text)
        return text


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]
