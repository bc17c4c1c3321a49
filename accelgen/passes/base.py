"""The pass contract and the pass manager.

A `Pass` changes a graph in place and says what it did in a `PassResult`: whether anything changed, how often each
rule fired, and why rules that matched the shape refused (for `--explain`). The `PassManager` runs a named list of
passes, optionally to a fixed point, and in checking mode verifies the IR and compares the interpreter's outputs
before and after every pass, so a pass that changes the numbers is caught at the pass that did it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from accelgen.ir.graph import Graph
from accelgen.ir.interpreter import run
from accelgen.ir.types import FloatType
from accelgen.ir.verify import verify


@dataclass(frozen=True)
class Refusal:
    rule: str
    node: str
    reason: str

    def __str__(self) -> str:
        return f"{self.rule} did not fire at {self.node!r}: {self.reason}"


@dataclass
class PassResult:
    graph: Graph
    changed: bool = False
    fired: Counter = field(default_factory=Counter)  # rule or action name -> count
    refusals: list[Refusal] = field(default_factory=list)

    def record(self, rule: str, count: int = 1) -> None:
        if count:
            self.fired[rule] += count
            self.changed = True


class Pass:
    """A named graph transformation. Subclasses set `name` and implement `run` (changing the graph in place)."""

    name: str = ""

    def run(self, graph: Graph) -> PassResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<pass {self.name}>"


class PassError(AssertionError):
    """A pass broke the IR or changed the numbers: a bug in that pass."""


def random_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for equivalence checks: floats in [-2, 2], integers in [0, 2), booleans at random."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in graph.inputs:
        dtype = v.dtype.np_dtype
        if isinstance(v.dtype, FloatType):
            feeds[v.name] = rng.uniform(-2, 2, v.shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[v.name] = rng.integers(0, 2, v.shape).astype(bool)
        else:
            feeds[v.name] = rng.integers(0, 2, v.shape).astype(dtype)
    return feeds


def assert_close(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray], rtol: float, atol: float,
                 where: str) -> None:
    for name, want in before.items():
        if name not in after:
            raise PassError(f"{where}: output {name!r} is gone (outputs now: {', '.join(after)})")
        got = after[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise PassError(f"{where}: output {name!r} changed from {want.dtype}{list(want.shape)} to "
                            f"{got.dtype}{list(got.shape)}")
        # Folds reassociate float arithmetic (BN into conv weights...): an element near zero that is a
        # cancellation of large terms moves by rounding of those terms, so the tolerance scales with the tensor.
        finite = np.abs(want[np.isfinite(want)]) if want.dtype.kind == "f" else np.abs(want)
        scale = float(finite.max()) if finite.size else 0.0
        if not np.allclose(got, want, rtol=rtol, atol=atol + rtol * scale, equal_nan=True):
            err = np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))
            raise PassError(f"{where}: output {name!r} changed by up to {err:.3g} (rtol {rtol} of values and of the "
                            f"largest magnitude {scale:.3g}, atol {atol})")


@dataclass
class PassManager:
    """Runs passes in order. `fixed_point` repeats the whole list until nothing changes (at most `max_rounds`)."""

    passes: Sequence[Pass]
    fixed_point: bool = False
    max_rounds: int = 10
    verify_each: bool = False
    check_inputs: Mapping[str, np.ndarray] | None = None  # compare outputs after each pass on these inputs
    rtol: float = 1e-5
    atol: float = 1e-6
    print_ir_after: Callable[[str, Graph], None] | None = None

    def run(self, graph: Graph) -> PassResult:
        """Run on `graph` in place; the result's `fired` counts every rule over all passes and rounds."""
        total = PassResult(graph)
        reference = run(graph, self.check_inputs) if self.check_inputs is not None else None
        for _ in range(self.max_rounds if self.fixed_point else 1):
            round_changed = False
            for p in self.passes:
                result = p.run(graph)
                total.fired.update(result.fired)
                total.refusals.extend(r for r in result.refusals if r not in total.refusals)
                round_changed |= result.changed
                if self.verify_each or reference is not None:
                    try:
                        verify(graph)
                    except AssertionError as e:
                        raise PassError(f"after pass {p.name}: {e}") from e
                if reference is not None and result.changed:
                    assert_close(reference, run(graph, self.check_inputs), self.rtol, self.atol, f"pass {p.name}")
                if self.print_ir_after is not None:
                    self.print_ir_after(p.name, graph)
            total.changed |= round_changed
            if not round_changed:
                break
        return total
