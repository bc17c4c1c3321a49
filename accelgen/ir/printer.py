"""A readable text form of the IR, one node a line:

    graph jet(%x: f32[1,16]) -> (%y) {
      %h = Gemm(%x, @w, @b) {transB=1} : f32[1,64]
    }
"""

from __future__ import annotations

from accelgen.ir.graph import Graph, Value
from accelgen.ir.ops.base import Op


def _ref(v: Value | None) -> str:
    if v is None:
        return "_"
    return ("@" if v.is_constant else "%") + v.name


def _attr(value) -> str:
    if isinstance(value, Op):  # fused ops hold ops as values: Dense {activation=LeakyRelu(alpha=0.1)}
        inner = ", ".join(f"{k}={_attr(v)}" for k, v in value.attrs().items())
        return f"{value.op_type}({inner})" if inner else value.op_type
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[" + ",".join(_attr(x) for x in value) + "]"
    if hasattr(value, "shape"):
        return f"<array {value.dtype}{list(value.shape)}>"
    return str(value)


def format_node(node) -> str:
    attrs = {k: v for k, v in node.op.attrs().items()}
    attr_text = " {" + ", ".join(f"{k}={_attr(v)}" for k, v in attrs.items()) + "}" if attrs else ""
    outs = ", ".join(_ref(v) for v in node.outputs)
    types = ", ".join(str(v.type) for v in node.outputs)
    ins = ", ".join(_ref(v) for v in node.inputs)
    return f"{outs} = {node.op_type}({ins}){attr_text} : {types}  # {node.name}"


def format_graph(graph: Graph, constants: bool = True) -> str:
    ins = ", ".join(f"%{v.name}: {v.type}" for v in graph.inputs)
    outs = ", ".join(_ref(v) for v in graph.outputs)
    lines = [f"graph {graph.name}({ins}) -> ({outs}) {{"]
    if constants:
        lines += [f"  @{v.name}: {v.type}" for v in graph.constants.values()]
    lines += ["  " + format_node(n) for n in graph.nodes]
    lines.append("}")
    return "\n".join(lines)
