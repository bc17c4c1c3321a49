"""inspect, run, optimize, ops: looking at a model and running it."""

from __future__ import annotations

from collections import Counter

import numpy as np

import accelgen
from accelgen.cli.common import input_shapes, load_inputs, output_path, write_npz
from accelgen.errors import OptionError, ShapeError
from accelgen.ir.graph import Graph


def _params(node) -> int:
    return sum(v.type.numel for v in node.inputs if v is not None and v.is_constant)


def inspect_table(graph: Graph) -> str:
    rows = [("node", "op", "output shape", "dtype", "params", "MACs")]
    total_macs = 0
    for node in graph.nodes:
        ins = [v.type if v is not None else None for v in node.inputs]
        cost = node.op.cost(ins, [v.type for v in node.outputs])
        total_macs += cost.macs
        out = node.outputs[0].type if node.outputs else None
        rows.append((node.name, node.op_type, "x".join(map(str, out.shape)) if out else "-",
                     str(out.dtype) if out else "-", f"{_params(node):,}", f"{cost.macs:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    numeric = {4, 5}

    def line(r):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))

    lines = [line(rows[0]), "  ".join("-" * w for w in widths), *map(line, rows[1:])]
    params = sum(v.type.numel for v in graph.constants.values())
    ins = ", ".join(f"{v.name}: {v.type}" for v in graph.inputs)
    outs = ", ".join(f"{v.name}: {v.type}" for v in graph.outputs)
    lines += ["", f"inputs:  {ins}", f"outputs: {outs}",
              f"total: {len(graph.nodes)} nodes, {params:,} parameters, {total_macs:,} MACs"]
    return "\n".join(lines)


def cmd_inspect(args) -> int:
    graph = accelgen.load(args.model, input_shapes=input_shapes(args))
    print(str(graph) if args.ir else inspect_table(graph))
    return 0


def cmd_run(args) -> int:
    output = output_path(args.output, args.force) if args.output is not None else None
    inputs = load_inputs(args.input or [])
    # The data fixes the shapes --input-shape does not give (a batch of 4 rows runs as batch 4).
    given = input_shapes(args)
    from_data = {name: a.shape for name, a in inputs.items() if name not in given}
    try:
        graph = accelgen.load(args.model, input_shapes={**from_data, **given})
    except ShapeError as e:
        if not from_data:
            raise
        shown = ", ".join(f"{n}={'x'.join(map(str, s)) or 'scalar'}" for n, s in from_data.items())
        raise ShapeError(f"{e} (shapes taken from the --input data: {shown})") from e
    outputs = accelgen.run(graph, inputs)
    if output is not None:
        try:
            write_npz(output, outputs)
        except OSError as e:
            raise OptionError(f"--output {args.output!r}: cannot write it: {e.strerror or e}") from None
        print(f"wrote {', '.join(outputs)} to {output}")
    else:
        with np.printoptions(precision=6, suppress=True, threshold=200):
            for name, value in outputs.items():
                print(f"{name}: {value.dtype}{list(value.shape)}\n{value}")
    return 0


def census(graph: Graph) -> Counter:
    return Counter(n.op_type for n in graph.nodes)


def cmd_optimize(args) -> int:
    from accelgen.passes import optimize_with_report

    pipeline = args.pipeline
    if args.passes is not None:
        pipeline = [p.strip() for p in args.passes.split(",") if p.strip()]
        if not pipeline:
            raise OptionError(f"--passes {args.passes!r}: give pass names separated by commas, e.g. --passes cse,dce")
    graph = accelgen.load(args.model, input_shapes=input_shapes(args))

    def show(name, g):
        print(f"// IR after {name}\n{g}\n")

    result = optimize_with_report(graph, pipeline, verify_each=args.verify_each, check=args.verify_each,
                                  print_ir_after=show if args.print_ir_after_all else None)
    before, after = census(graph), census(result.graph)
    rows = sorted(set(before) | set(after), key=lambda op: (-after[op], -before[op], op))
    width = max(len(op) for op in rows) if rows else 2
    print(f"{'op':{width}}  before  after")
    for op in rows:
        print(f"{op:{width}}  {before[op]:6d}  {after[op]:5d}")
    print(f"{'total':{width}}  {sum(before.values()):6d}  {sum(after.values()):5d}")
    print("\nrules fired:" if result.fired else "\nno rule fired")
    for rule, count in sorted(result.fired.items()):
        print(f"  {rule}: {count}")
    if args.explain:
        print("\nrules that matched but refused:" if result.refusals else "\nno rule refused a match")
        for refusal in result.refusals:
            print(f"  {refusal}")
    if args.print_ir:
        print(f"\n{result.graph}")
    return 0


def cmd_ops(args) -> int:
    print("\n".join(sorted(accelgen.supported_ops())))
    return 0


# -- quantize -------------------------------------------------------------------------------------------------------
