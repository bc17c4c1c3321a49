"""Post-training quantization: a float graph and calibration data in, a graph whose every float tensor carries a
FixedType out. Each node's op is wrapped in `Quantized` with the precision its op class chose (`fixed_precision`)
or the default plan; constants are rounded to the types chosen for them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from accelgen.errors import QuantizationError
from accelgen.ir.fixed import quantize as quantize_values
from accelgen.ir.graph import Graph, Value
from accelgen.ir.ops.quantized import FixedPlan, Quantized
from accelgen.ir.types import FixedType, TensorType, is_float
from accelgen.ir.verify import verify
from accelgen.quant.calibrate import calibrate
from accelgen.quant.context import QuantConfig, QuantContext, parse_type
from accelgen.quant.imported import prepare_imported


def make_config(precision="auto", weight_bits=None, activation_bits=None, margin=1.0, table_size=1024,
                overrides=None, per_channel=False) -> QuantConfig:
    uniform = None
    if isinstance(precision, FixedType) or (isinstance(precision, str) and precision != "auto"):
        uniform = parse_type(precision)
    elif precision != "auto":
        raise QuantizationError(f"precision must be 'auto' or a fixed-point type like 'fixed<16,6>', got {precision!r}")
    options = {"margin": margin, "table_size": table_size, "uniform": uniform, "overrides": dict(overrides or {}),
               "per_channel": per_channel}
    if weight_bits is not None:
        options["weight_width"] = weight_bits
    if activation_bits is not None:
        options["activation_width"] = activation_bits
    return QuantConfig(**options)


def _plan(node, ctx: QuantContext) -> FixedPlan:
    op = node.op
    return op.fixed_precision(node, ctx) if hasattr(type(op), "fixed_precision") else ctx.default_plan(node)


def _check_supported(graph: Graph) -> None:
    missing: dict[str, list[str]] = {}
    for node in graph.nodes:
        if not node.op.exact_in_fixed and not hasattr(type(node.op), "fixed_precision"):
            missing.setdefault(node.op_type, []).append(node.name)
    if missing:
        listed = "; ".join(f"{op} ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})"
                           for op, names in sorted(missing.items()))
        raise QuantizationError(f"no fixed-point semantics for: {listed}")


def quantize(graph: Graph, calibration: Mapping[str, np.ndarray], precision="auto", *, weight_bits=None,
             activation_bits=None, margin: float = 1.0, table_size: int = 1024, overrides=None,
             per_channel: bool = False) -> Graph:
    """A fixed-point copy of `graph` (which is left unchanged).

    precision: "auto" (types from calibrated ranges and widths) or a uniform type such as "fixed<16,6>".
    weight_bits / activation_bits: widths for "auto" (default 16). overrides: {node name or op type: {"width": 12}
    | {"type": "fixed<18,8>"} | {"weight_bits": 6} | {"weight_type": "fixed<8,2>"} | {"per_channel": True}}.
    per_channel: per-output-channel power-of-two weight scales for Dense and FusedConv (exact shifts of the
    accumulator; see QuantContext.per_channel_plan).
    """
    config = make_config(precision, weight_bits, activation_bits, margin, table_size, overrides, per_channel)
    graph = split_untabled_activations(prepare_imported(graph))  # a copy: the model's quantizers as exact types
    _check_supported(graph)
    ctx = QuantContext(config, calibrate(graph, calibration))
    q = graph.copy()
    for v in q.inputs:
        if is_float(v.dtype):
            v.type = v.type.with_dtype(ctx.activation_type(v.name))
    rounded: dict[tuple[int, FixedType], Value] = {}
    for node in q.nodes:
        plan = _plan(node, ctx)
        for slot, dtype in plan.constants.items():
            node.set_input(slot, _constant(q, node.inputs[slot], dtype, rounded))
        node.op = Quantized(node.op, plan.out, plan.params)
        for v, dtype in zip(node.outputs, plan.out):
            v.type = TensorType(v.shape, dtype)
    q.remove_unused_constants()
    verify(q)
    return q


TABLED_ACTIVATIONS = ("Sigmoid", "Tanh", "Gelu")  # what a fused fixed-point plan can tabulate (context.py)


def split_untabled_activations(graph: Graph) -> Graph:
    """Dense and FusedConv with a fused activation that is neither exact in fixed point nor tabulated (LeakyRelu,
    HardSigmoid, HardSwish...) become the linear op followed by that activation on its own, which has its own
    fixed-point plan (or a clear refusal); the optimizer fuses them for float backends. Changes `graph` in place
    (the quantizer's copy) and returns it."""
    for node in list(graph.nodes):
        act = getattr(node.op, "activation", None) if node.op_type in ("Dense", "FusedConv") else None
        if act is None or act.exact_in_fixed or act.op_type in TABLED_ACTIVATIONS:
            continue
        linear = node.op.conv if node.op_type == "FusedConv" else dataclasses.replace(node.op, activation=None)
        out = node.outputs[0]
        pre = graph.add_node(linear, node.inputs, name=node.name, before=node).outputs[0]
        post = graph.add_node(act, [pre], name=f"{node.name}/{act.op_type}", before=node).outputs[0]
        graph.replace_all_uses_with(out, post)
        graph.remove_node(node)
    return graph


def _constant(graph: Graph, v: Value, dtype: FixedType, cache: dict) -> Value:
    """The constant `v` rounded to `dtype` (one copy per distinct type, shared by the nodes that use it)."""
    key = (id(v), dtype)
    if key not in cache:
        values, overflow = quantize_values(dtype, v.data)
        if overflow.any():  # types for constants come from their own data: overflow means a bad override
            raise QuantizationError(f"constant {v.name!r} does not fit {dtype}: {int(overflow.sum())} values saturate")
        c = graph.add_constant(f"{v.name}_{dtype.width}b", values)
        c.type = TensorType(v.shape, dtype)
        cache[key] = c
    return cache[key]
