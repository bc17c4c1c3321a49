"""Linear-layer fusions: `fuse-dense`, `fuse-batchnorm` and `fuse-activation`.

fuse-dense makes one Dense op of a MatMul or Gemm with a constant 2-D weight and its bias:
- dense_from_matmul: MatMul(x, W), W a constant [K, N] -> Dense(x, W); x of any rank (token-wise);
- dense_from_gemm: Gemm(x, B, C), B and C constant -> Dense(x, alpha * B', beta * C) with B' = B or B^T;
- dense_bias / dense_bias_sub: Add(Dense(x, W), b) in either order, or Sub(Dense(x, W), c) -> Dense(x, W, b) or
  Dense(x, W, -c), when the constant is one value per output feature ([N], [1, ..., 1, N] or a scalar).

fuse-batchnorm folds an inference BatchNormalization into the weights before it:
- conv_batchnorm: Conv(x, W, b) -> BatchNormalization becomes Conv(x, W * s, b * s + t), per output channel;
- dense_batchnorm: Dense, MatMul or Gemm giving [M, N] -> BatchNormalization (its channel axis 1 is then the N
  features, as in hls4ml- and Brevitas-style MLPs) becomes one Dense;
- dense_scale / dense_shift: the same fold for a BatchNormalization that the exporter decomposed into Mul, Div,
  Add or Sub by per-feature constants after a Dense giving [M, N].
Only 2-D Dense outputs are folded: on [B, T, N] a BatchNormalization normalizes axis 1 (T), not the features.

fuse-activation gives Dense and Conv their elementwise activation: dense_activation (Dense(activation=...)) and
conv_activation (FusedConv).

Folds that change weight values (alpha, beta, BatchNorm, scales) compute in float64 and round once to the weight
type; they run only for float32 and float64, where that rounding stays far inside the equivalence tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelgen.ir.graph import Graph, Node, Value
from accelgen.ir.ops.fused import Dense, FusedConv
from accelgen.ir.types import F32, F64, ElementType
from accelgen.passes import register_pass
from accelgen.passes.pattern import Match, RewritePass, Rule, const, op, val

# Elementwise one-input activations a Dense or Conv may absorb (Clip's bounds are attributes in the IR).
ACTIVATIONS = ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "Gelu", "HardSigmoid", "HardSwish", "Elu", "Selu",
               "Celu", "Softplus", "Softsign", "Mish", "ThresholdedRelu", "Clip")


def folds_exactly(dtype: ElementType) -> bool:
    """Whether weights of this type may be rescaled (rounded once more) without leaving the tolerance."""
    return dtype in (F32, F64)


def scalar(v: Value) -> float | None:
    """The value of a one-element constant, else None."""
    return float(v.data.reshape(-1)[0]) if v.is_constant and v.data.size == 1 else None


def per_feature(c: Value, out_shape: tuple[int, ...]) -> np.ndarray | str:
    """Constant `c` as one value per output feature ([N]) if it broadcasts along the last axis of `out_shape` only
    and leaves that shape unchanged; otherwise the reason it does not."""
    shape, n = c.shape, out_shape[-1]
    if len(shape) > len(out_shape):
        return f"constant of shape {shape} would raise the rank of the output {out_shape}"
    if any(d != 1 for d in shape[:-1]) or (shape and shape[-1] not in (1, n)):
        return f"constant of shape {shape} is not one value per output feature (expected ({n},) or (1, ..., {n}))"
    return np.ascontiguousarray(np.broadcast_to(c.data.reshape(-1), (n,)))


# -- the linear layer a node computes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Linear:
    """x @ weight (+ bias): what a MatMul, Gemm or Dense node computes, in Dense's terms."""

    x: Value
    weight: np.ndarray  # [K, N]
    bias: np.ndarray | None  # [N]
    weight_value: Value | None = None  # the graph's own constant when `weight` is its data unchanged


def linear_of(node: Node) -> Linear | str:
    """The Dense equivalent of a MatMul, Gemm or activation-free Dense node, or why it has none."""
    x, w = node.inputs[0], node.inputs[1]
    if node.op_type == "Dense":
        if node.op.activation is not None:
            return f"the Dense already applies {node.op.activation.op_type}"
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        return Linear(x, w.data, None if bias is None else bias.data, w)
    if node.op_type == "MatMul":
        if not w.is_constant:
            return "the weight (second operand) is not a constant"
        if w.type.rank != 2:
            return f"the weight has shape {w.shape}; Dense takes a 2-D weight"
        return Linear(x, w.data, None, w)
    return _gemm_linear(node)


def _gemm_linear(node: Node) -> Linear | str:
    g, (a, b), c = node.op, node.inputs[:2], (node.inputs[2] if len(node.inputs) > 2 else None)
    if g.transA:
        return "transA=1: the input is transposed, and Dense takes x[M, K]"
    if not b.is_constant:
        return "the weight B is not a constant"
    if c is not None and g.beta == 0:
        c = None  # Gemm ignores C when beta is 0
    if c is not None and not c.is_constant:
        return "the bias C is not a constant"
    rescaled = g.alpha != 1 or (c is not None and g.beta != 1)
    if rescaled and not folds_exactly(a.dtype):
        return f"folding alpha={g.alpha:g}, beta={g.beta:g} into {a.dtype} weights would round them"
    if c is not None and not folds_exactly(a.dtype) and a.dtype.np_dtype.kind == "f":
        return f"{a.dtype} Gemm adds C before rounding the product, Dense after"
    w = b.data.T if g.transB else b.data
    if g.alpha != 1:
        w = (w.astype(np.float64) * g.alpha).astype(w.dtype)
    bias = None
    if c is not None:
        bias = per_feature(c, node.outputs[0].shape)
        if isinstance(bias, str):
            return f"C: {bias}"
        if g.beta != 1:
            bias = (bias.astype(np.float64) * g.beta).astype(bias.dtype)
    unchanged = not g.transB and g.alpha == 1
    return Linear(a, np.ascontiguousarray(w), bias, b if unchanged else None)


def add_dense(graph: Graph, at: Node, lin: Linear, activation=None) -> list[Value]:
    """Insert Dense(lin) before `at` (with new constants for a changed weight and the bias); return its outputs."""
    weight = lin.weight_value or graph.add_constant(f"{at.name}_weight", lin.weight)
    inputs = [lin.x, weight]
    if lin.bias is not None:
        inputs.append(graph.add_constant(f"{at.name}_bias", lin.bias))
    return graph.add_node(Dense(activation=activation), inputs, name=at.name, before=at).outputs


# -- fuse-dense ----------------------------------------------------------------------------------------------------
def _check_linear(m: Match) -> str | None:
    lin = linear_of(m["layer"])
    return lin if isinstance(lin, str) else None


def _check_bias(m: Match) -> str | None:
    vec = per_feature(m["b"], m["dense"].outputs[0].shape)
    return vec if isinstance(vec, str) else None


def _check_bias_sub(m: Match) -> str | None:
    if m["b"].dtype.np_dtype.kind != "f":
        return "integer subtraction is kept as it is"
    return _check_bias(m)


def _rewrite_bias(graph: Graph, m: Match, at: Node) -> list[Value]:
    vec = per_feature(m["b"], m["dense"].outputs[0].shape)
    if at.op_type == "Sub":
        vec = -vec  # y - c == y + (-c) exactly in IEEE arithmetic
    x, w = m["dense"].inputs[:2]
    return add_dense(graph, at, Linear(x, w.data, vec, w))


def _plain_dense(node: Node) -> bool:
    return node.op.activation is None


DENSE_RULES = [
    Rule("dense_from_matmul", op("MatMul", val("x"), const("w"), name="layer"),
         rewrite=lambda g, m, at: add_dense(g, at, linear_of(at)), check=_check_linear),
    Rule("dense_from_gemm", op("Gemm", any_inputs=True, name="layer"),
         rewrite=lambda g, m, at: add_dense(g, at, linear_of(at)), check=_check_linear),
    Rule("dense_bias", op("Add", op("Dense", val("x"), const("w"), name="dense", where=_plain_dense), const("b"),
                          commutative=True),
         rewrite=_rewrite_bias, check=_check_bias),
    Rule("dense_bias_sub", op("Sub", op("Dense", val("x"), const("w"), name="dense", where=_plain_dense), const("b")),
         rewrite=_rewrite_bias, check=_check_bias_sub),
]


# -- fuse-batchnorm ------------------------------------------------------------------------------------------------
def _bn_affine(bn: Node) -> tuple[np.ndarray, np.ndarray]:
    """BatchNormalization as y = x * s + t per channel, in float64."""
    scale, bias, mean, var = (v.data.astype(np.float64) for v in bn.inputs[1:])
    s = scale / np.sqrt(var + bn.op.epsilon)
    return s, bias - mean * s


def _bn_params_finite(bn: Node) -> str | None:
    s, t = _bn_affine(bn)
    return None if np.isfinite(s).all() and np.isfinite(t).all() else "the BatchNormalization scale is not finite"


def _check_conv_bn(m: Match) -> str | None:
    conv, bn = m["conv"], m["bn"]
    if not conv.inputs[1].is_constant or (len(conv.inputs) > 2 and conv.inputs[2] is not None
                                          and not conv.inputs[2].is_constant):
        return "the Conv weight or bias is not a constant"
    if bn.op.spatial == 0 and conv.outputs[0].type.rank > 2:
        return "BatchNormalization with spatial=0 has per-position parameters"
    if not folds_exactly(conv.outputs[0].dtype):
        return f"folding into {conv.outputs[0].dtype} weights would round them"
    return _bn_params_finite(bn)


def _rewrite_conv_bn(graph: Graph, m: Match, at: Node) -> list[Value]:
    conv = m["conv"]
    s, t = _bn_affine(at)
    w = conv.inputs[1].data
    b = conv.inputs[2].data if len(conv.inputs) > 2 and conv.inputs[2] is not None else np.zeros(w.shape[0], w.dtype)
    w_new = (w.astype(np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
    b_new = (b.astype(np.float64) * s + t).astype(b.dtype)
    inputs = [conv.inputs[0], graph.add_constant(f"{conv.name}_weight", w_new),
              graph.add_constant(f"{conv.name}_bias", b_new)]
    return graph.add_node(conv.op, inputs, name=conv.name, before=at).outputs


def _check_2d_linear(lin_node: Node) -> str | None:
    rank = lin_node.outputs[0].type.rank
    if rank != 2:
        return (f"the layer's output has rank {rank}: a per-channel fold needs [M, N], where axis 1 is the "
                "output features")
    if not folds_exactly(lin_node.outputs[0].dtype):
        return f"folding into {lin_node.outputs[0].dtype} weights would round them"
    lin = linear_of(lin_node)
    return lin if isinstance(lin, str) else None


def _check_dense_bn(m: Match) -> str | None:
    return _check_2d_linear(m["lin"]) or _bn_params_finite(m["bn"])


def _fold_affine(graph: Graph, at: Node, lin: Linear, s: np.ndarray, t: np.ndarray | None) -> list[Value]:
    """Dense computing (x @ W + b) * s + t per output feature (t None: no shift)."""
    dtype = lin.weight.dtype
    w = (lin.weight.astype(np.float64) * s).astype(dtype)
    b = lin.bias.astype(np.float64) * s if lin.bias is not None else None
    if t is not None:
        b = t if b is None else b + t
    kept = lin.weight_value if (s == 1).all() else None  # a pure shift keeps (and still shares) the weight
    return add_dense(graph, at, Linear(lin.x, w, None if b is None else b.astype(dtype), kept))


def _rewrite_dense_bn(graph: Graph, m: Match, at: Node) -> list[Value]:
    return _fold_affine(graph, at, linear_of(m["lin"]), *_bn_affine(at))


def _check_dense_affine(m: Match) -> str | None:
    reason = _check_2d_linear(m["dense"])
    if reason:
        return reason
    vec = per_feature(m["c"], m["dense"].outputs[0].shape)
    if isinstance(vec, str):
        return vec
    if not np.isfinite(vec).all() or (m["root"].op_type == "Div" and (vec == 0).any()):
        return "the constant has zeros or non-finite values"
    return None


def _rewrite_dense_affine(graph: Graph, m: Match, at: Node) -> list[Value]:
    lin = linear_of(m["dense"])
    vec = per_feature(m["c"], m["dense"].outputs[0].shape).astype(np.float64)
    if at.op_type == "Div":  # divide rather than multiply by 1/c, which would round twice
        w = (lin.weight.astype(np.float64) / vec).astype(lin.weight.dtype)
        b = None if lin.bias is None else (lin.bias.astype(np.float64) / vec).astype(lin.bias.dtype)
        return add_dense(graph, at, Linear(lin.x, w, b))
    if at.op_type == "Mul":
        return _fold_affine(graph, at, lin, vec, None)
    return _fold_affine(graph, at, lin, np.ones_like(vec), vec if at.op_type == "Add" else -vec)


_BN_PARAMS = (const("scale"), const("bn_bias"), const("mean"), const("var"))
_DENSE = op("Dense", any_inputs=True, name="dense", where=_plain_dense)

BATCHNORM_RULES = [
    Rule("conv_batchnorm", op("BatchNormalization", op("Conv", any_inputs=True, name="conv"), *_BN_PARAMS, name="bn"),
         rewrite=_rewrite_conv_bn, check=_check_conv_bn),
    Rule("dense_batchnorm", op("BatchNormalization", op(("Dense", "MatMul", "Gemm"), any_inputs=True, name="lin"),
                               *_BN_PARAMS, name="bn"),
         rewrite=_rewrite_dense_bn, check=_check_dense_bn),
    Rule("dense_scale", op("Mul", _DENSE, const("c"), commutative=True, name="root"),
         rewrite=_rewrite_dense_affine, check=_check_dense_affine),
    Rule("dense_scale", op("Div", _DENSE, const("c"), name="root"),
         rewrite=_rewrite_dense_affine, check=_check_dense_affine),
    Rule("dense_shift", op("Add", _DENSE, const("c"), commutative=True, name="root"),
         rewrite=_rewrite_dense_affine, check=_check_dense_affine),
    Rule("dense_shift", op("Sub", _DENSE, const("c"), name="root"),
         rewrite=_rewrite_dense_affine, check=_check_dense_affine),
]


# -- fuse-activation -----------------------------------------------------------------------------------------------
def _one_input(node: Node) -> bool:
    return len(node.inputs) == 1


def _rewrite_dense_act(graph: Graph, m: Match, at: Node) -> list[Value]:
    dense = m["dense"]
    return graph.add_node(Dense(activation=at.op), dense.inputs, name=dense.name, before=at).outputs


def _rewrite_conv_act(graph: Graph, m: Match, at: Node) -> list[Value]:
    conv = m["conv"]
    return graph.add_node(FusedConv(conv=conv.op, activation=at.op), conv.inputs, name=conv.name, before=at).outputs


ACTIVATION_RULES = [
    Rule("dense_activation", op(ACTIVATIONS, _DENSE, where=_one_input), rewrite=_rewrite_dense_act),
    Rule("conv_activation", op(ACTIVATIONS, op("Conv", any_inputs=True, name="conv"), where=_one_input),
         rewrite=_rewrite_conv_act),
]

register_pass(lambda: RewritePass("fuse-dense", DENSE_RULES))
register_pass(lambda: RewritePass("fuse-batchnorm", BATCHNORM_RULES))
register_pass(lambda: RewritePass("fuse-activation", ACTIVATION_RULES))
