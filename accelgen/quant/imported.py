"""Already-quantized models (QONNX Quant / BipolarQuant, ONNX QuantizeLinear / DequantizeLinear): keep the model's
own decisions when `accelgen.quantize` turns them into fixed point.

Power-of-two scales need nothing here: each quantizer op defines its exact FixedType (accelgen/ir/ops/quant.py).
`prepare_imported` rewrites the float graph, without changing its decisions, where fixed point needs help:

* Scales that are not powers of two put values on a grid n * s that no FixedType holds. They are kept exact as
  scaled integers: the quantizer outputs its integer levels n (Quant becomes QuantToInteger; BipolarQuant and
  DequantizeLinear get a unit scale) and every consumer, a linear layer, takes s into its weights,
  (n * s) @ W == n @ (s * W). The product is exact in float64; the float graph stores it in float32 (2**-24
  relative) and quantization rounds it to the weight type like any float weight. A quantizer whose consumers cannot
  take its scale (a Softmax, an Add, a graph output) is left alone: quantized, it keeps its exact integer decisions
  and rounds levels * scale to its calibrated activation type, marked `exact=False`.
* A linear layer whose output only feeds sign decisions (BipolarQuant, 1-bit signed Quant) has each output channel
  scaled by a power of two so its largest weight is in [0.5, 1). Positive power-of-two factors change no float
  rounding and no sign, so every decision stays bit-identical; but a per-tensor weight type then resolves every
  channel (BatchNorm folded into binary weights leaves channels with gains of 1e-6 next to channels of 1, whose
  decisions a shared 16-bit type would round away).
* A division by a constant power of two (the (x + 1) / 2 that maps bipolar inputs to bits) becomes the exact
  multiplication by its reciprocal.
"""

from __future__ import annotations

import numpy as np

from accelgen.errors import QuantizationError
from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.ops.base import normalize_axis
from accelgen.ir.ops.elementwise import Mul
from accelgen.ir.ops.quant import QuantToInteger, _expand, pow2_exponents
from accelgen.ir.ops.quantized import FixedPlan
from accelgen.ir.types import FixedType, is_float
from accelgen.quant.context import exact_type

QUANTIZERS = ("Quant", "IntQuant", "BipolarQuant", "DequantizeLinear")
LINEAR = ("Dense", "MatMul", "Gemm", "Conv", "FusedConv")


def prepare_imported(graph: Graph) -> Graph:
    """A copy of `graph` rewritten as the module docstring says (a graph without quantizers or power-of-two
    divisions comes back unchanged). Run it on the optimized graph before `accelgen.quantize`; it is idempotent."""
    g = graph.copy()
    for node in list(g.nodes):
        if node.op_type == "Div":
            _exact_division(g, node)
        elif node.op_type in QUANTIZERS and node.op.domain != "accelgen":
            _absorb(g, node)
    for node in g.nodes:
        if node.op_type in LINEAR:
            _normalize_sign_channels(g, node)
    g.remove_unused_constants()
    return g


def _exact_division(graph: Graph, node: Node) -> None:
    c = node.inputs[1]
    if c is None or not c.is_constant or c.data.dtype.kind != "f" or pow2_exponents(c.data) is None:
        return
    node.op = Mul()
    reciprocal = (1.0 / c.data.astype(np.float64)).astype(c.data.dtype)  # exact: c is a power of two
    node.set_input(1, graph.add_constant(f"{c.name}_reciprocal", reciprocal))


def _scale(node: Node) -> np.ndarray | None:
    """The quantizer's constant scale laid out to broadcast against its input, or None if it is a power of two (or
    not constant, or blocked: then there is nothing this pass can do)."""
    v = node.inputs[1]
    if v is None or not v.is_constant or pow2_exponents(v.data) is not None:
        return None
    x = node.inputs[0].shape
    if node.op_type == "DequantizeLinear":
        if node.op.block_size > 0:
            return None
        return np.asarray(_expand(v.data, x, node.op.axis, 0), np.float64)
    return np.asarray(v.data, np.float64)


def _along(scale: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """The scale as one value per index of `axis` of a tensor of `shape`, or None if it varies along another axis."""
    a = normalize_axis(axis, len(shape))
    s = scale.reshape((1,) * (len(shape) - scale.ndim) + scale.shape)
    if any(d != 1 for i, d in enumerate(s.shape) if i != a):
        return None
    return np.broadcast_to(s.reshape(-1), (shape[a],))


def _factor(consumer: Node, v: Value, scale: np.ndarray) -> np.ndarray | None:
    """What the consumer's weights (input 1) are multiplied by to take in the scale of its data input v, or None."""
    w = consumer.inputs[1] if len(consumer.inputs) > 1 else None
    if consumer.inputs[0] is not v or w is None or w.is_constant is False or any(u is v for u in consumer.inputs[1:]):
        return None
    op, shape = consumer.op, v.shape
    if consumer.op_type in ("Dense", "MatMul") and w.type.rank == 2:
        s = _along(scale, shape, -1)
        return None if s is None else s[:, None]
    if consumer.op_type == "Gemm" and not op.transA:
        s = _along(scale, shape, -1)
        return None if s is None else (s[None, :] if op.transB else s[:, None])
    if consumer.op_type in ("Conv", "FusedConv"):
        s = _along(scale, shape, 1)
        if s is None:
            return None
        group = (op.conv if consumer.op_type == "FusedConv" else op).group
        m, cg = w.shape[:2]
        index = (np.arange(m) // (m // group))[:, None] * cg + np.arange(cg)[None, :]  # input channel of W[m, c]
        return s[index].reshape(m, cg, *(1,) * (w.type.rank - 2))
    return None


def _absorb(graph: Graph, node: Node) -> None:
    """Move a non-power-of-two scale into the weights of every consumer, or leave the quantizer alone."""
    scale = _scale(node)
    if scale is None:
        return
    out = node.outputs[0]
    if any(v is out for v in graph.outputs) or not out.users:
        return
    factors = [(c, _factor(c, out, scale)) for c in out.users]
    if any(f is None for _, f in factors):
        return
    for consumer, factor in factors:
        w = consumer.inputs[1]
        scaled = (w.data.astype(np.float64) * factor).astype(w.data.dtype)
        consumer.set_input(1, graph.add_constant(f"{w.name}_scaled", scaled))
    if node.op_type in ("Quant", "IntQuant"):
        op = node.op
        node.op = QuantToInteger(signed=op.signed, narrow=op.narrow, rounding_mode=op.rounding_mode)
    else:  # BipolarQuant, DequantizeLinear: a unit scale leaves the levels
        s = node.inputs[1]
        node.set_input(1, graph.add_constant(f"{s.name}_unit", np.ones_like(s.data)))


def _sign_decisions_only(graph: Graph, v: Value) -> bool:
    """Whether v's only uses are sign decisions: BipolarQuant, or a 1-bit signed Quant with zero zero point."""
    if not v.users or any(o is v for o in graph.outputs):
        return False
    for u in v.users:
        if u.inputs[0] is not v or any(w is v for w in u.inputs[1:]):
            return False
        if u.op_type in ("Quant", "IntQuant") and u.op.signed and all(p is not None and p.is_constant
                                                                         for p in u.inputs[1:4]):
            if np.asarray(u.inputs[3].data).reshape(-1)[0] == 1 and not np.any(u.inputs[2].data):
                continue
        if u.op_type != "BipolarQuant":
            return False
    return True


def _normalize_sign_channels(graph: Graph, node: Node) -> None:
    """Scale each output channel of a linear layer that only feeds sign decisions by a power of two so that its
    largest weight magnitude is in [0.5, 1): exact in float, and no decision changes."""
    activation = getattr(node.op, "activation", None)  # Relu commutes with positive factors; others need not
    w, b = node.inputs[1], node.inputs[2] if len(node.inputs) > 2 else None
    if (activation is not None and activation.op_type != "Relu") or node.op_type == "Gemm" or not w.is_constant \
            or (b is not None and not b.is_constant) or w.type.rank < 2 \
            or not _sign_decisions_only(graph, node.outputs[0]):
        return
    axis = 0 if node.op_type in ("Conv", "FusedConv") else w.type.rank - 1  # output channels of W
    rest = tuple(i for i in range(w.type.rank) if i != axis)
    peak = np.max(np.abs(w.data.astype(np.float64)), axis=rest)
    factor = np.where(peak > 0, np.ldexp(1.0, -np.frexp(peak)[1]), 1.0)  # peak * factor in [0.5, 1)
    if np.all(factor == 1.0) or not np.all(np.isfinite(w.data)):
        return
    shape = [-1 if i == axis else 1 for i in range(w.type.rank)]
    scaled = (w.data * factor.reshape(shape)).astype(w.data.dtype)
    node.set_input(1, graph.add_constant(f"{w.name}_normalized", scaled))
    if b is not None:
        node.set_input(2, graph.add_constant(f"{b.name}_normalized", (b.data * factor).astype(b.data.dtype)))


# -- plan helpers for the quantizer ops (accelgen/ir/ops/quant.py) ---------------------------------------------------

def parameters(node, names: dict[int, str]) -> list[np.ndarray]:
    """The float64 data of the node's constant parameter inputs (slot -> name), or a clear error."""
    out = []
    for slot, name in names.items():
        v = node.inputs[slot] if slot < len(node.inputs) else None
        if v is None or not v.is_constant:
            raise QuantizationError(f"{node.name} ({node.op_type}): its {name} must be a constant to be quantized")
        out.append(np.asarray(v.data, np.float64))
    return out


def check_scale(node, scale: np.ndarray, need_pow2: bool = False) -> None:
    if not np.all(np.isfinite(scale) & (scale > 0)) or np.any(scale.astype(np.float32) != scale):
        raise QuantizationError(f"{node.name} ({node.op_type}): scales must be positive float32 values, got "
                                f"{_show(scale)}")
    if need_pow2 and pow2_exponents(scale) is None:
        raise QuantizationError(f"{node.name} ({node.op_type}): scale {_show(scale)} is not a power of two, which "
                                "this op needs in fixed point")


def quantizer_plan(node, ctx, t: FixedType | None, cast: bool, slots) -> FixedPlan:
    """A quantizer's plan: its exact type `t`; or, for a scale that is not a power of two (which prepare_imported could
    not move into the consumers' weights), the calibrated activation type, which rounds levels * scale like any
    float activation: `exact=False` says so in the node's params."""
    out, exact = ([t], True) if t is not None else (ctx.output_types(node), False)
    return FixedPlan(out, [("cast", cast), ("exact", exact)], exact_constants(node, slots))


def check_integer(node, zeropt: np.ndarray) -> None:
    if np.any(zeropt != np.round(zeropt)):
        raise QuantizationError(f"{node.name} ({node.op_type}): zero point {_show(zeropt)} is not an integer")


def _show(a: np.ndarray) -> str:
    flat = np.unique(np.asarray(a).reshape(-1))
    return f"{flat[0]:g}" if flat.size == 1 else "[" + ", ".join(f"{v:g}" for v in flat[:4]) + \
        (", ...]" if flat.size > 4 else "]")


def exact_constants(node, slots) -> dict:
    """Parameter constants (scales, zero points, bit widths) as the exact types of their values."""
    out = {}
    for i in slots:
        v = node.inputs[i] if i < len(node.inputs) else None
        if v is not None and v.is_constant and is_float(v.dtype):
            t = exact_type(v.data)
            if t is not None:
                out[i] = t
    return out


def same_constant(node, slot: int, v) -> bool:
    """Whether node's input `slot` is a constant with the same values as the constant v."""
    u = node.inputs[slot] if slot < len(node.inputs) else None
    if u is None or v is None or not (u.is_constant and v.is_constant):
        return False
    return u is v or (u.data.shape == v.data.shape and np.array_equal(np.asarray(u.data, np.float64),
                                                                        np.asarray(v.data, np.float64)))
