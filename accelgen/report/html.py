"""One self-contained HTML page for a Report: configuration, utilization gauges, per-layer latency and resource
bar charts as inline SVG, warnings. No scripts, fonts or stylesheets from elsewhere."""

from __future__ import annotations

from html import escape

from accelgen.report.model import RESOURCES

COLORS = {"latency_cycles": "#4c78a8", "dsp": "#f58518", "lut": "#54a24b", "ff": "#b279a2", "bram18": "#e45756"}
LABELS = {"latency_cycles": "latency (cycles)", "dsp": "DSP", "lut": "LUT", "ff": "FF", "bram18": "BRAM18"}
STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
.warn{color:#a33}h2{margin-top:1.5em}svg text{font-size:12px;font-family:sans-serif}"""


def _bar_chart(title: str, names: list[str], values: list[float], color: str) -> str:
    """A horizontal bar chart: one bar per layer, its value printed at the end of the bar."""
    row, label_w, bar_w = 22, 180, 420
    top = max(values, default=0) or 1
    height = row * len(names) + 30
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 90}" height="{height}" '
              f'role="img" aria-label="{escape(title)}">'),
             f'<text x="0" y="14" font-weight="bold">{escape(title)}</text>']
    for i, (name, v) in enumerate(zip(names, values)):
        y = 24 + i * row
        w = max(bar_w * v / top, 1 if v else 0)
        parts += [f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(name[:28])}</text>',
                  f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" fill="{color}"/>',
                  f'<text x="{label_w + w + 4:.1f}" y="{y + 14}">{v:g}</text>']
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


def render(report) -> str:
    names = [f"{r.name} ({r.op})" for r in report.layers]
    u = report.utilization
    config = {"part": report.part, "clock (ns)": report.clock_ns, **report.config}
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in config.items())
    layer_rows = "".join(
        f"<tr><td>{escape(r.name)}</td><td>{escape(r.op)}</td><td>{escape(r.kernel)}</td><td>{r.latency_cycles}</td>"
        f"<td>{r.ii}</td><td>{r.dsp}</td><td>{r.lut}</td><td>{r.ff}</td><td>{r.bram18}</td></tr>"
        for r in report.layers)
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
cycles &middot; <b>DSP</b> {report.dsp} &middot; <b>LUT</b> {report.lut} &middot; <b>FF</b> {report.ff}
&middot; <b>BRAM18</b> {report.bram18}</p>
<h2>Utilization of {escape(report.part)}</h2><div>{gauges}</div>
<h2>Configuration</h2><table>{rows}</table>
<h2>Warnings</h2>{warnings}
<h2>Per layer</h2>
<table><tr><th>layer</th><th>op</th><th>kernel</th><th>latency</th><th>II</th><th>DSP</th><th>LUT</th><th>FF</th>
<th>BRAM18</th></tr>{layer_rows}</table>
<div>{charts}</div>
<p><small>Analytical estimate by accelgen, before synthesis; see docs/estimator.md for the model.</small></p>
</body></html>
"""
