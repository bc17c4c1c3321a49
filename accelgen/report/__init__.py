"""Latency/resource reports: per-layer rows, totals, part utilization, warnings; JSON, Markdown and HTML output."""

from accelgen.report.model import LayerEstimate, Report

__all__ = ["LayerEstimate", "Report"]
