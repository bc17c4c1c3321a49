"""Helpers the fusion tests share: run passes under the equivalence check and IR verification, and read what they
did (op counts, refusal reasons)."""

from collections import Counter

import numpy as np

import accelgen
from accelgen.ir.verify import verify
from accelgen.passes import PASSES, optimize_with_report
from accelgen.passes.base import assert_close, random_inputs


def fuse(graph, passes, feeds=None):
    """Run `passes` with the pass manager's equivalence check, re-check the outputs here and verify the IR."""
    feeds = feeds if feeds is not None else random_inputs(graph)
    result = optimize_with_report(graph, passes, check=feeds)
    before, after = accelgen.run(graph, feeds), accelgen.run(result.graph, feeds)
    assert_close(before, after, rtol=1e-5, atol=1e-6, where="fused graph")  # the pass manager's own criterion
    verify(result.graph)
    return result


def census(graph):
    return dict(Counter(n.op_type for n in graph.nodes))


def reasons(result):
    return " | ".join(r.reason for r in result.refusals)


def rand(*shape, seed=0, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def cleanup():
    """The clean-up passes run before fusions in these tests."""
    return [p for p in ("fold-constants", "dce") if p in PASSES]
