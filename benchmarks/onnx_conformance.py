"""Run the ONNX backend node-test suite (generated in memory by the installed onnx) through accelgen.load + run.

    python benchmarks/onnx_conformance.py [--verbose] [--filter SUBSTRING]

Prints per-op counts and a closing line `N passed, M failed`. Cases are sorted into:
- passed: outputs match the suite's reference at the case's own rtol/atol (and dtype);
- failed: every op is supported, yet loading or running fails or the numbers differ;
- unsupported op: the model uses an op type accelgen does not implement (UnsupportedOpsError);
- unsupported dtype: a tensor has an element type accelgen does not handle (strings, float8, int4, complex...).

accelgen compiles static graphs, so graph inputs that feed an input accelgen needs at compile time (a Reshape's
shape, a Slice's starts, a TopK's K...) are turned into initializers holding the case's data before loading; the
semantics under test are unchanged. Expected failures, each with its reason, are listed in
onnx_conformance_expected_failures.txt next to this script; the script reports any difference from that list.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

import accelgen
from accelgen.errors import AccelgenError, UnsupportedOpsError
from accelgen.ir.ops import lookup

EXPECTED_FAILURES = Path(__file__).with_name("onnx_conformance_expected_failures.txt")


@dataclass
class Outcome:
    name: str
    ops: tuple[str, ...]
    status: str  # passed | failed | unsupported op | unsupported dtype
    reason: str = ""


def load_cases():
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return load_model_tests(kind="node")


def as_array(data):
    """The suite stores data as arrays, numpy scalars or TensorProtos; sequences and optionals stay as they are."""
    if isinstance(data, onnx.TensorProto):
        return numpy_helper.to_array(data)
    if isinstance(data, np.generic):
        return np.asarray(data)
    return data


def freeze_static_inputs(model: onnx.ModelProto, inputs: list[np.ndarray]) -> tuple[onnx.ModelProto, dict]:
    """Turn graph inputs that reach compile-time-only slots into initializers; return the model and the rest."""
    producer = {out: node for node in model.graph.node for out in node.output}
    static: set[str] = set()
    todo = [node.input[slot] for node in model.graph.node
            for slot in getattr(lookup(node.domain, node.op_type), "attr_inputs", {})
            if slot < len(node.input) and node.input[slot]]
    while todo:  # a compile-time slot fed through a chain of ops needs every graph input of that chain
        name = todo.pop()
        if name not in static:
            static.add(name)
            todo.extend(i for i in getattr(producer.get(name), "input", ()) if i)
    frozen = onnx.ModelProto()
    frozen.CopyFrom(model)
    feeds = {}
    graph_inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    keep = []
    for info, data in zip(graph_inputs, inputs):
        if info.name in static and isinstance(data, np.ndarray):
            frozen.graph.initializer.append(numpy_helper.from_array(data, info.name))
        else:
            keep.append(info)
            feeds[info.name] = data
    del frozen.graph.input[:]
    frozen.graph.input.extend(keep)
    return frozen, feeds


def compare(got: np.ndarray, want, rtol: float, atol: float) -> str:
    if not isinstance(want, np.ndarray):
        return f"reference output is a {type(want).__name__} (sequence/optional outputs unsupported)"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} != {want.dtype}"
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if want.dtype.kind == "V":  # ml_dtypes (bfloat16): compare as float32, where NaN == NaN is understood
        got, want = got.astype(np.float32), want.astype(np.float32)
    try:
        if want.dtype.kind in "fc":
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(got, want)
    except AssertionError as e:
        detail = [line.strip() for line in str(e).splitlines() if line.strip().startswith(("Max", "Mismatch"))]
        return "values differ: " + "; ".join(detail)
    return ""


def run_case(case) -> Outcome:
    ops = tuple(sorted({n.op_type for n in case.model.graph.node}))
    try:
        for inputs, outputs in case.data_sets:
            inputs, outputs = [as_array(x) for x in inputs], [as_array(x) for x in outputs]
            model, feeds = freeze_static_inputs(case.model, inputs)
            with np.errstate(all="ignore"):  # the suite feeds NaN/inf on purpose
                got = accelgen.run(accelgen.load(model), feeds)
            names = [o.name for o in case.model.graph.output]
            for name, want in zip(names, outputs):
                problem = compare(got[name], want, case.rtol, case.atol)
                if problem:
                    return Outcome(case.name, ops, "failed", f"{name}: {problem}")
    except UnsupportedOpsError as e:
        return Outcome(case.name, ops, "unsupported op", str(e))
    except AccelgenError as e:
        status = "unsupported dtype" if "element type" in str(e) else "failed"
        return Outcome(case.name, ops, status, f"{type(e).__name__}: {e}")
    except Exception as e:  # noqa: BLE001 - a crash is a failure to report, not to stop on
        return Outcome(case.name, ops, "failed", f"crash {type(e).__name__}: {e}")
    return Outcome(case.name, ops, "passed")


def read_expected() -> dict[str, str]:
    expected = {}
    if EXPECTED_FAILURES.exists():
        for line in EXPECTED_FAILURES.read_text().splitlines():
            name, _, reason = line.partition("#")
            if name.strip():
                expected[name.strip()] = reason.strip()
    return expected


def run_suite(name_filter: str = "") -> list[Outcome]:
    return [run_case(c) for c in load_cases() if name_filter in c.name]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--verbose", action="store_true", help="print every failure with its reason")
    p.add_argument("--filter", default="", help="only cases whose name contains this")
    p.add_argument("--write-expected", action="store_true", help="rewrite the expected-failures file from this run")
    args = p.parse_args(argv)
    start = time.perf_counter()
    outcomes = run_suite(args.filter)
    per_op: dict[str, Counter] = defaultdict(Counter)
    for o in outcomes:
        for op in o.ops:
            per_op[op][o.status] += 1
    statuses = ["passed", "failed", "unsupported op", "unsupported dtype"]
    print(f"{'op':28} " + " ".join(f"{s:>17}" for s in statuses))
    for op in sorted(per_op):
        print(f"{op:28} " + " ".join(f"{per_op[op][s]:17d}" for s in statuses))
    totals = Counter(o.status for o in outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    if args.verbose:
        for o in failed:
            print(f"FAILED {o.name}: {o.reason}")
    if args.write_expected:
        EXPECTED_FAILURES.write_text("".join(f"{o.name}  # {o.reason.splitlines()[0][:200]}\n" for o in failed))
    expected = read_expected()
    if not args.filter:
        new = [o.name for o in failed if o.name not in expected]
        fixed = [n for n in expected if n not in {o.name for o in failed}]
        for n in new:
            print(f"unexpected failure: {n}: {next(o.reason for o in failed if o.name == n)}")
        for n in fixed:
            print(f"expected to fail but did not: {n}")
    applicable = totals["passed"] + totals["failed"]
    print(f"\n{len(outcomes)} cases in {time.perf_counter() - start:.0f} s: {totals['unsupported op']} use an unsupported "
          f"op, {totals['unsupported dtype']} an unsupported element type; of the {applicable} others "
          f"{100 * totals['failed'] / max(applicable, 1):.1f}% fail")
    print(f"{totals['passed']} passed, {totals['failed']} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
