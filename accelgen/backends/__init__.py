"""Code generators: HLS C++ projects and TVM kernels. Every backend has one shape: `compile(graph, target=...,
out_dir=..., force=..., **options)` writes its output and returns a project object; `estimate(graph, target=...,
**options)` returns a latency/resource report. This module only dispatches by target name."""

from __future__ import annotations

import importlib

from accelgen.errors import OptionError
from accelgen.ir.graph import Graph

# target name -> module implementing compile() and estimate() for it
TARGETS = {"hls": "accelgen.backends.hls", "tvm-cpu": "accelgen.backends.tvm", "tvm-cuda": "accelgen.backends.tvm"}


def _backend(target: str):
    if target not in TARGETS:
        raise OptionError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    return importlib.import_module(TARGETS[target])


def _entry(target: str, name: str):
    entry = getattr(_backend(target), name, None)
    if entry is None:
        raise OptionError(f"{name} for target {target!r} is not implemented in this version of accelgen")
    return entry


def compile(graph: Graph, target: str = "hls", out_dir=None, *, force: bool = False, **options):  # noqa: A001
    """Compile `graph` for `target` into `out_dir` (refused if it exists, unless force=True)."""
    return _entry(target, "compile")(graph, target=target, out_dir=out_dir, force=force, **options)


def estimate(graph: Graph, target: str = "hls", **options):
    """A latency/resource report for `graph` on `target`, before any synthesis or build."""
    return _entry(target, "estimate")(graph, target=target, **options)
