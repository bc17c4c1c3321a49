"""One self-contained HTML page for a Report: configuration, utilization gauges, per-layer latency and resource
bar charts as inline SVG, warnings. No scripts, fonts or stylesheets from elsewhere."""

from __future__ import annotations

from html import escape

from accelgen.report.model import RESOURCES

COLORS = {"latency_cycles": "#4c78a8", "dsp": "#f58518", "lut": "#54a24b", "ff": "#b279a2", "bram18": "#e45756"}
LABELS = {"latency_cycles": "latency (cycles)", "dsp": "DSP", "lut": "LUT", "ff": "FF", "bram18": "BRAM18"}
STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}td.num,th.num{text-align:right}
.warn{color:#a33}h2{margin-top:1.5em}svg text{font-size:12px;font-family:sans-serif}
.charts{display:flex;flex-wrap:wrap;gap:1.5em 3em}.gauges{display:flex;flex-wrap:wrap;gap:1em}"""
LABEL_CHARS = 36  # longer layer names keep their start and end in chart labels (the full name is the tooltip)
CHAR_PX = 6.6  # average width of a 12 px sans-serif character


def _label(name: str) -> str:
    if len(name) <= LABEL_CHARS:
        return name
    head = LABEL_CHARS // 3
    return name[:head] + "\u2026" + name[-(LABEL_CHARS - head - 1):]


def _value(v: float) -> str:
    """Counts with thousands separators; small quantities (microseconds) with three significant digits."""
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.3g}"


def _bar_chart(title: str, names: list[str], values: list[float], color: str) -> str:
    """A horizontal bar chart: one bar per layer, its value printed at the end of the bar."""
    labels = [_label(n) for n in names]
    row, bar_w = 22, 200
    label_w = int(max((len(t) for t in labels), default=10) * CHAR_PX) + 12
    top = max(values, default=0) or 1
    height = row * len(names) + 30
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 80}" height="{height}" '
              f'role="img" aria-label="{escape(title)}">'),
             f'<text x="0" y="14" font-weight="bold">{escape(title)}</text>']
    for i, (name, label, v) in enumerate(zip(names, labels, values)):
        y = 24 + i * row
        w = max(bar_w * v / top, 1 if v else 0)
        parts += [(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end"><title>{escape(name)}</title>'
                   f'{escape(label)}</text>'),
                  f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" fill="{color}"/>',
                  f'<text x="{label_w + w + 4:.1f}" y="{y + 14}">{_value(v)}</text>']
    parts.append("</svg>")
    return "\n".join(parts)


def _gauge(resource: str, used: int, capacity: int, fraction: float) -> str:
    """A semicircular gauge filled to the used fraction (red past 100%)."""
    import math

    f = min(max(fraction, 0.0), 1.0)
    color = "#e45756" if fraction > 1 else ("#f58518" if fraction > 0.8 else "#54a24b")
    r, cx, cy = 60, 75, 75
    angle = math.pi * (1 - f)
    x, y = cx + r * math.cos(angle), cy - r * math.sin(angle)
    arc = (f'<path d="M {cx - r} {cy} A {r} {r} 0 0 1 {x:.2f} {y:.2f}" stroke="{color}" stroke-width="16" '
           'fill="none"/>' if f > 0 else "")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="150" height="115" role="img" '
            f'aria-label="{resource} utilization">'
            f'<path d="M {cx - r} {cy} A {r} {r} 0 0 1 {cx + r} {cy}" stroke="#ddd" stroke-width="16" fill="none"/>'
            f'{arc}<text x="{cx}" y="{cy - 5}" text-anchor="middle" font-weight="bold">{fraction:.1%}</text>'
            f'<text x="{cx}" y="{cy + 20}" text-anchor="middle">{LABELS[resource]}</text>'
            f'<text x="{cx}" y="{cy + 36}" text-anchor="middle">{used} / {capacity}</text></svg>')


def _composition(report) -> str:
    top = str(report.config.get("top level", ""))
    if top.startswith("PIPELINE"):
        return ("Top level: one pipeline (II=1); the layers' combinational paths chain, so the total latency is "
                "less than the sum of the per-layer depths below.")
    if top.startswith("DATAFLOW"):
        return ("Top level: DATAFLOW; the latency is the layers' latencies one after the other, the interval the "
                "slowest layer's.")
    return ""


def render(report) -> str:
    names = [r.name for r in report.layers]
    u = report.utilization
    config = {"part": report.part, "clock (ns)": report.clock_ns, **report.config}
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in config.items())
    layer_rows = "".join(
        f'<tr><td>{escape(r.name)}</td><td>{escape(r.op)}</td><td title="{escape("; ".join(r.notes))}">'
        f"{escape(r.kernel)}</td>"
        + "".join(f'<td class="num">{v}</td>' for v in (r.latency_cycles, r.ii, r.dsp, r.lut, r.ff, r.bram18))
        + "</tr>" for r in report.layers)
    total_row = ('<tr><th>total</th><td></td><td></td>'
                 + "".join(f'<th class="num">{v}</th>' for v in (report.latency_cycles, report.ii, report.dsp,
                                                                 report.lut, report.ff, report.bram18)) + "</tr>")
    charts = "\n".join(_bar_chart(LABELS[k], names, [getattr(r, k) for r in report.layers], COLORS[k])
                       for k in ("latency_cycles", *RESOURCES))
    gauges = "".join(_gauge(r, getattr(report, r), report.capacity.get(r, 0), u[r]) for r in RESOURCES)
    warnings = ("<ul>" + "".join(f'<li class="warn">{escape(w)}</li>' for w in report.warnings) + "</ul>"
                if report.warnings else "<p>none</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>accelgen estimate: {escape(report.model)}</title>
<style>{STYLE}</style></head><body>
<h1>Estimate: {escape(report.model)}</h1>
<p><b>latency</b> {report.latency_cycles} cycles ({report.latency_ns:g} ns) &middot; <b>interval</b> {report.ii}
cycle{"" if report.ii == 1 else "s"} &middot; <b>DSP</b> {report.dsp} &middot; <b>LUT</b> {report.lut} &middot; <b>FF</b> {report.ff}
&middot; <b>BRAM18</b> {report.bram18}</p>
<p>{escape(_composition(report))}</p>
<h2>Utilization of {escape(report.part)}</h2><div class="gauges">{gauges}</div>
<h2>Configuration</h2><table>{rows}</table>
<h2>Warnings</h2>{warnings}
<h2>Per layer</h2>
<table><tr><th>layer</th><th>op</th><th>kernel</th><th class="num">latency</th><th class="num">II</th>
<th class="num">DSP</th><th class="num">LUT</th><th class="num">FF</th><th class="num">BRAM18</th></tr>{layer_rows}
{total_row}</table>
<div class="charts">{charts}</div>
<p><small>Analytical estimate by accelgen, before synthesis; see docs/estimator.md for the model.</small></p>
</body></html>
"""
