"""Optimization passes: the registry of named passes, the pipelines, and `optimize`.

A pipeline is a readable list of pass names. `PASSES` maps each name to a factory, so a pass module registers
itself by adding one entry here, and the CLI's `--pipeline` and `--passes` read the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from accelgen.errors import OptionError
from accelgen.ir.graph import Graph
from accelgen.ir.ops.quantized import Quantized
from accelgen.passes.base import Pass, PassError, PassManager, PassResult, random_inputs

PASSES: dict[str, Callable[[], Pass]] = {}


def register_pass(factory: Callable[[], Pass]) -> Callable[[], Pass]:
    name = factory().name
    if name in PASSES:
        raise ValueError(f"pass {name!r} registered twice")
    PASSES[name] = factory
    return factory


# Pass modules register themselves on import.
from accelgen.passes import cleanup, fuse_attention, fuse_dense, fuse_norm, layout, projections, smooth  # noqa: E402,F401,I001

PIPELINES: dict[str, list[str]] = {
    "none": [],
    "cleanup": ["remove-identity", "fold-constants", "canonicalize-layout", "cse", "dce"],
    "default": [
        # clean-up first, so fusion patterns see canonical graphs
        "remove-identity", "fold-constants", "canonicalize-layout", "cse", "dce",
        # fusions, big patterns before the small ones they contain
        "fuse-layernorm", "fuse-gelu", "split-projections", "fuse-dense", "fuse-batchnorm",
        "fuse-attention", "fuse-activation",
        "canonicalize-layout", "cse", "dce",
    ],
}


def build_pipeline(pipeline: str | Sequence[str]) -> list[Pass]:
    names = PIPELINES.get(pipeline) if isinstance(pipeline, str) else list(pipeline)
    if names is None:
        raise OptionError(f"unknown pipeline {pipeline!r}; choose from {', '.join(PIPELINES)}")
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise OptionError(f"unknown pass(es) {', '.join(unknown)}; known: {', '.join(sorted(PASSES))}")
    return [PASSES[n]() for n in names]


def optimize_with_report(graph: Graph, pipeline: str | Sequence[str] = "default", *, verify_each: bool = False,
                         check: bool | Mapping[str, np.ndarray] = False, fixed_point: bool = True,
                         print_ir_after: Callable[[str, Graph], None] | None = None) -> PassResult:
    """Optimize a copy of `graph`; return the PassResult (its .graph is the new graph).

    `check=True` compares the interpreter's outputs before and after every pass on random inputs (or on the given
    inputs), raising PassError at the first pass that changes them beyond rtol 1e-5.
    """
    if any(isinstance(n.op, Quantized) for n in graph.nodes):
        # the rewrites restructure float arithmetic; a quantized node's plan (types, tables) belongs to its op
        raise OptionError("optimize the float graph, then quantize it: this graph is already quantized")
    work = graph.copy()
    inputs = (random_inputs(graph) if check is True else check) if check is not False else None
    manager = PassManager(build_pipeline(pipeline), fixed_point=fixed_point, verify_each=verify_each,
                          check_inputs=inputs, print_ir_after=print_ir_after)
    return manager.run(work)


def optimize(graph: Graph, pipeline: str | Sequence[str] = "default", **options) -> Graph:
    """The optimized graph; `graph` itself is left unchanged."""
    return optimize_with_report(graph, pipeline, **options).graph


__all__ = ["PASSES", "PIPELINES", "Pass", "PassError", "PassManager", "PassResult", "build_pipeline", "optimize",
           "optimize_with_report", "register_pass"]
