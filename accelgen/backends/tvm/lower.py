"""Lowering from accelgen's IR (after accelgen.optimize) to a Relax IRModule.

One small function per IR op type, in the LOWERINGS table, so what our optimizer decided (fused Dense with its
activation, LayerNorm, Gelu, MultiHeadAttention) is what TVM compiles; we never round-trip through TVM's ONNX
importer. Shapes come from the IR's static types (a Reshape lowers to its inferred output shape), so the Relax
module is fully static.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from accelgen.errors import InvalidModelError, UnsupportedOpsError
from accelgen.ir.graph import Graph, Node
from accelgen.ir.types import FloatType

R = relax.op


def _const(array: np.ndarray) -> relax.Constant:
    return relax.const(np.ascontiguousarray(array))


def _scalar(value: float, dtype: str) -> relax.Constant:
    return relax.const(np.array(value, dtype=dtype))


def _dtype(value) -> str:
    return str(np.dtype(value.dtype.np_dtype))


# -- activations (also used inside Dense and FusedConv) --------------------------------------------------------------
def _gelu(op, x, dtype):
    if getattr(op, "approximate", "none") == "tanh":
        return R.nn.gelu_tanh(x)
    # written out (not nn.gelu) so that erf legalizes to the vectorizable fast_erf (see build.py)
    half = _scalar(0.5, dtype)
    erf = R.erf(R.multiply(x, _scalar(0.5 ** 0.5, dtype)))
    return R.multiply(R.multiply(x, half), R.add(_scalar(1.0, dtype), erf))


def softmax(x, axis: int):
    """Written out (not nn.softmax) so that exp legalizes to the vectorizable fast_exp (see build.py)."""
    shifted = R.subtract(x, R.max(x, axis=axis, keepdims=True))
    e = R.exp(shifted)
    return R.divide(e, R.sum(e, axis=axis, keepdims=True))


ACTIVATIONS = {
    "Relu": lambda op, x, dtype: R.nn.relu(x),
    "Sigmoid": lambda op, x, dtype: R.sigmoid(x),
    "Tanh": lambda op, x, dtype: R.tanh(x),
    "Erf": lambda op, x, dtype: R.erf(x),
    "Gelu": _gelu,
    "Identity": lambda op, x, dtype: x,
}


def _activate(op, x, dtype: str):
    if op is None:
        return x
    if op.op_type not in ACTIVATIONS:
        raise InvalidModelError(f"activation {op.op_type} inside a fused op has no TVM lowering")
    return ACTIVATIONS[op.op_type](op, x, dtype)


def _can_lower(node: Node) -> bool:
    if node.op_type not in LOWERINGS or len(node.outputs) != 1:
        return False
    inner = getattr(node.op, "activation", None)
    return inner is None or inner.op_type in ACTIVATIONS


# -- linear algebra ---------------------------------------------------------------------------------------------------
class Context:
    """What a lowering function may use besides its node: the block builder, and the SIMD width that constant
    weights are packed for (0: no packing)."""

    def __init__(self, bb: relax.BlockBuilder, lanes: int, sparse: bool = True):
        self.bb, self.lanes, self.sparse = bb, lanes, sparse

    def emit(self, expr):
        return self.bb.emit(expr)


def _packed_matmul(x, wp):
    """x [..., K] times a weight packed as [N / L, K, L] (panel n // L holds columns n of W, contiguous in k)."""
    from tvm import te

    *lead, k_dim = x.shape
    panels, _, lanes = wp.shape
    k = te.reduce_axis((0, k_dim), "k")
    return te.compute((*lead, panels * lanes),
                      lambda *i: te.sum(x[(*i[:-1], k)] * wp[i[-1] // lanes, k, i[-1] % lanes], axis=k),
                      name="matmul")


def linear(ctx, x, w_value, w_expr):
    """x @ W. A constant W whose width divides into SIMD panels is packed at compile time so that the kernel's
    inner loop streams one contiguous panel per reduction step (a row-major W strides N floats per step); a W
    pruned in whole panel-row blocks keeps only those blocks (sparse.py)."""
    from accelgen.backends.tvm.sparse import sparse_layout, sparse_packed_matmul

    lanes = ctx.lanes
    if w_value is None or w_value.data is None or not lanes or w_value.shape[1] % lanes:
        return R.matmul(x, w_expr)
    w = np.asarray(w_value.data, dtype=w_value.dtype.np_dtype)
    layout = sparse_layout(w, lanes) if ctx.sparse and w.ndim == 2 else None
    if layout is not None:
        rows, data = layout
        return ctx.bb.call_te(sparse_packed_matmul, x, _const(rows), _const(data), primfunc_name_hint="dense_bsr")
    k_dim, n = w.shape
    packed = np.ascontiguousarray(w.reshape(k_dim, n // lanes, lanes).transpose(1, 0, 2))
    return ctx.bb.call_te(_packed_matmul, x, _const(packed), primfunc_name_hint="dense_packed")


def lower_dense(node, args, ctx):
    x, w = args[:2]
    y = linear(ctx, x, node.inputs[1], w)
    if len(args) > 2 and args[2] is not None:
        y = R.add(y, args[2])
    return _activate(node.op.activation, y, _dtype(node.outputs[0]))


def lower_matmul(node, args, ctx):
    return R.matmul(args[0], args[1])


def lower_gemm(node, args, ctx):
    op, dtype = node.op, _dtype(node.outputs[0])
    a = R.permute_dims(args[0]) if op.transA else args[0]
    b = R.permute_dims(args[1]) if op.transB else args[1]
    y = R.matmul(a, b)
    if op.alpha != 1.0:
        y = R.multiply(y, _scalar(op.alpha, dtype))
    if len(args) > 2 and args[2] is not None:
        c = args[2] if op.beta == 1.0 else R.multiply(args[2], _scalar(op.beta, dtype))
        y = R.add(y, c)
    return y


# -- convolution and pooling ------------------------------------------------------------------------------------------
def _spatial_pads(geometry) -> tuple[int, ...]:
    if min(geometry.begin + geometry.end, default=0) < 0:
        raise InvalidModelError("negative (cropping) pads have no TVM lowering")
    return tuple(geometry.begin) + tuple(geometry.end)


def _packed_conv2d(xp, wp, strides, dilations, out_hw):
    """NHWC-ordered output [N, OH, OW, M] of a padded NCHW input and a weight packed as [M / L, C, KH, KW, L]:
    output channels innermost, so the kernel vectorizes over them and streams one contiguous weight panel."""
    from tvm import te

    n, c = xp.shape[:2]
    panels, _, kh, kw, lanes = wp.shape
    rc, rh, rw = te.reduce_axis((0, c), "rc"), te.reduce_axis((0, kh), "rh"), te.reduce_axis((0, kw), "rw")
    (sh, sw), (dh, dw) = strides, dilations
    return te.compute(
        (n, *out_hw, panels * lanes),
        lambda b, y, x, m: te.sum(xp[b, rc, y * sh + rh * dh, x * sw + rw * dw] * wp[m // lanes, rc, rh, rw, m % lanes],
                                  axis=[rc, rh, rw]),
        name="conv2d_packed")


def _conv(conv, node, args, ctx, activation):
    x, w = args[:2]
    xt, wt = node.inputs[0], node.inputs[1]
    nd = xt.type.rank - 2
    g = conv.geometry(xt.shape[2:], wt.shape[2:])
    if nd not in (1, 2):
        raise InvalidModelError(f"{node.name}: {nd}-D convolution has no TVM lowering (1-D and 2-D do)")
    dtype = _dtype(node.outputs[0])
    bias = args[2] if len(args) > 2 else None
    m = wt.shape[0]
    if nd == 2 and conv.group == 1 and wt.is_constant and ctx.lanes and m % ctx.lanes == 0:
        # like Dense: weights packed at compile time; bias and activation applied before the one transpose back
        lanes = ctx.lanes
        wd = np.asarray(wt.data, dtype=wt.dtype.np_dtype)
        packed = np.ascontiguousarray(wd.reshape(m // lanes, lanes, *wd.shape[1:]).transpose(0, 2, 3, 4, 1))
        pads = _spatial_pads(g)
        xp = R.nn.pad(x, [0, 0, 0, 0, pads[0], pads[2], pads[1], pads[3]]) if any(pads) else x
        y = ctx.bb.call_te(_packed_conv2d, ctx.emit(xp), _const(packed), g.strides, g.dilations,
                           node.outputs[0].shape[2:], primfunc_name_hint="conv2d_packed")
        if bias is not None:
            y = R.add(y, bias)
        return R.permute_dims(_activate(activation, y, dtype), (0, 3, 1, 2))
    fn = R.nn.conv1d if nd == 1 else R.nn.conv2d
    layout = ("NCW", "OIW") if nd == 1 else ("NCHW", "OIHW")
    y = fn(x, w, strides=g.strides, padding=_spatial_pads(g), dilation=g.dilations, groups=conv.group,
           data_layout=layout[0], kernel_layout=layout[1])
    if bias is not None:
        y = R.add(y, R.reshape(bias, (1, m) + (1,) * nd))
    return _activate(activation, y, dtype)


def lower_conv(node, args, ctx):
    return _conv(node.op, node, args, ctx, None)


def lower_fused_conv(node, args, ctx):
    return _conv(node.op.conv, node, args, ctx, node.op.activation)


def _pool(kind):
    def lower(node, args, ctx):
        op, x = node.op, node.inputs[0]
        nd = x.type.rank - 2
        if nd not in (1, 2):
            raise InvalidModelError(f"{node.name}: {nd}-D pooling has no TVM lowering (1-D and 2-D do)")
        g = op.geometry(x.shape)
        options = {"pool_size": g.kernel, "strides": g.strides, "padding": _spatial_pads(g),
                   "ceil_mode": bool(op.ceil_mode)}
        if kind == "max":
            fn = R.nn.max_pool1d if nd == 1 else R.nn.max_pool2d
            options["dilation"] = g.dilations
        else:
            fn = R.nn.avg_pool1d if nd == 1 else R.nn.avg_pool2d
            options["count_include_pad"] = bool(op.count_include_pad)
        return fn(args[0], layout="NCW" if nd == 1 else "NCHW", **options)
    return lower


def lower_global_average_pool(node, args, ctx):
    return R.mean(args[0], axis=list(range(2, node.inputs[0].type.rank)), keepdims=True)


# -- normalisation and attention --------------------------------------------------------------------------------------
def _softmax(x, axis: int, shape: tuple[int, ...], coerce_2d: bool):
    if not coerce_2d:
        return softmax(x, axis)
    rows = int(np.prod(shape[:axis], dtype=np.int64))
    flat = R.reshape(x, (rows, -1))
    return R.reshape(softmax(flat, 1), shape)


def lower_softmax(node, args, ctx):
    op, shape = node.op, node.inputs[0].shape
    axis = op._axis(len(shape))
    if op.coerce_2d and axis == len(shape):  # rows of length 1: every entry is 1
        return R.ones_like(args[0])
    return _softmax(args[0], axis, shape, op.coerce_2d)


def lower_layer_norm(node, args, ctx):
    op, x = node.op, node.inputs[0]
    if op.outputs != 1:
        raise InvalidModelError(f"{node.name}: LayerNormalization with mean/inv-std outputs has no TVM lowering")
    rank = x.type.rank
    axis = op.axis % rank
    norm_shape = x.shape[axis:]
    dtype = _dtype(x)
    gamma = args[1]
    beta = args[2] if len(args) > 2 and args[2] is not None else _const(np.zeros(norm_shape, dtype))
    if tuple(node.inputs[1].shape) != norm_shape:
        gamma = R.broadcast_to(gamma, norm_shape)
    if len(args) > 2 and args[2] is not None and tuple(node.inputs[2].shape) != norm_shape:
        beta = R.broadcast_to(beta, norm_shape)
    return R.nn.layer_norm(args[0], gamma, beta, axes=list(range(axis, rank)), epsilon=op.epsilon)


def _heads(ctx, x, b: int, s: int, heads: int, d: int):
    """[B, S, heads*d] -> [B, heads, S, d]."""
    return ctx.emit(R.permute_dims(R.reshape(x, (b, s, heads, d)), (0, 2, 1, 3)))


def lower_mha(node, args, ctx):
    op = node.op
    xq, xkv, mask, wq, wk, wv, bq, bk, bv, wo, bo = args
    b, s, _ = node.inputs[0].shape
    skv = node.inputs[1].shape[1]
    dtype = _dtype(node.inputs[0])
    h, d = op.num_heads, op.head_dim
    slot = node.inputs
    q = _heads(ctx, ctx.emit(R.add(linear(ctx, xq, slot[op.W_Q], wq), bq)), b, s, h, d)
    k = _heads(ctx, ctx.emit(R.add(linear(ctx, xkv, slot[op.W_K], wk), bk)), b, skv, h, d)
    v = _heads(ctx, ctx.emit(R.add(linear(ctx, xkv, slot[op.W_V], wv), bv)), b, skv, h, d)
    scores = ctx.emit(R.multiply(R.matmul(q, R.permute_dims(k, (0, 1, 3, 2))), _scalar(op.scale, dtype)))
    bias = mask
    if op.causal:
        allowed = np.arange(skv)[None, :] <= np.arange(s)[:, None]
        causal = _const(np.where(allowed, 0.0, -np.inf).astype(dtype))
        bias = causal if bias is None else R.add(bias, causal)
    if bias is not None:
        scores = ctx.emit(R.add(scores, bias))
    probs = ctx.emit(softmax(scores, -1))
    if op.zero_masked_rows and bias is not None:  # rows where every key is masked attend to nothing
        row_max = R.max(R.broadcast_to(bias, (b, h, s, skv)), axis=-1, keepdims=True)
        empty = R.equal(row_max, _scalar(-np.inf, dtype))
        probs = ctx.emit(R.where(empty, R.zeros_like(probs), probs))
    merged = R.reshape(R.permute_dims(R.matmul(probs, v), (0, 2, 1, 3)), (b, s, h * d))
    return R.add(linear(ctx, ctx.emit(merged), slot[op.W_O], wo), bo)


# -- elementwise, movement, reductions --------------------------------------------------------------------------------
def _binary(fn, float_only=False):
    def lower(node, args, ctx):
        if float_only and not isinstance(node.outputs[0].dtype, FloatType):
            raise InvalidModelError(f"{node.name}: integer {node.op_type} has no TVM lowering (ONNX truncates, "
                                    "TVM floors)")
        return fn(args[0], args[1])
    return lower


def _activation_node(node, args, ctx):
    return _activate(node.op, args[0], _dtype(node.outputs[0]))


def lower_reshape(node, args, ctx):  # Reshape and Flatten: the IR already inferred the static output shape
    return R.reshape(args[0], node.outputs[0].shape)


def lower_transpose(node, args, ctx):
    perm = node.op.perm
    return R.permute_dims(args[0], None if perm is None else list(perm))


def lower_concat(node, args, ctx):
    return R.concat([a for a in args if a is not None], axis=node.op.axis)


def lower_reduce_mean(node, args, ctx):
    axes = node.op.reduced_axes(node.inputs[0].type.rank)
    if not axes:
        return args[0]
    return R.mean(args[0], axis=list(axes), keepdims=bool(node.op.keepdims))


def lower_cast(node, args, ctx):
    return R.astype(args[0], _dtype(node.outputs[0]))


LOWERINGS = {
    "Dense": lower_dense, "MatMul": lower_matmul, "Gemm": lower_gemm,
    "Conv": lower_conv, "FusedConv": lower_fused_conv,
    "MaxPool": _pool("max"), "AveragePool": _pool("avg"), "GlobalAveragePool": lower_global_average_pool,
    "LayerNormalization": lower_layer_norm, "Softmax": lower_softmax, "MultiHeadAttention": lower_mha,
    "Add": _binary(R.add), "Sub": _binary(R.subtract), "Mul": _binary(R.multiply), "Div": _binary(R.divide, True),
    **{name: _activation_node for name in ACTIVATIONS},
    "Reshape": lower_reshape, "Flatten": lower_reshape, "Transpose": lower_transpose, "Concat": lower_concat,
    "ReduceMean": lower_reduce_mean, "Cast": lower_cast,
}


def check_lowerable(graph: Graph) -> None:
    """List every op without a lowering, with node names (for a quantized graph: without an exact integer
    lowering, fixed_lower.py)."""
    from accelgen.backends.tvm.fixed_lower import check_fixed_lowerable, is_fixed_graph

    if is_fixed_graph(graph):
        check_fixed_lowerable(graph)
        return
    unsupported: dict[str, list[str]] = {}
    for node in graph.nodes:
        if not _can_lower(node):
            label = node.op_type
            inner = getattr(node.op, "activation", None)
            if node.op_type in LOWERINGS and inner is not None:
                label = f"{node.op_type}+{inner.op_type}"
            unsupported.setdefault(label, []).append(node.name)
    if unsupported:
        raise UnsupportedOpsError(unsupported)


def to_relax(graph: Graph, lanes: int = 0, sparse: bool = True) -> tvm.IRModule:
    """The graph as a Relax module whose `main` takes the graph inputs in order and returns a tuple of the
    outputs in order; constant matmul weights packed into panels of `lanes` columns (0: as they are), block-sparse
    ones (sparse.py) in their sparse form unless sparse=False."""
    from accelgen.backends.tvm.fixed_lower import is_fixed_graph, to_relax_fixed

    if is_fixed_graph(graph):
        return to_relax_fixed(graph)
    check_lowerable(graph)
    params = [relax.Var(_safe(v.name, i), relax.TensorType(shape=v.shape, dtype=_dtype(v)))
              for i, v in enumerate(graph.inputs)]
    env: dict[int, relax.Expr] = {id(v): p for v, p in zip(graph.inputs, params)}
    bb = relax.BlockBuilder()
    ctx = Context(bb, lanes, sparse)
    with bb.function("main", params):
        with bb.dataflow():
            for node in graph.nodes:
                args = [None if v is None else _lookup(v, env) for v in node.inputs]
                out = bb.emit(LOWERINGS[node.op_type](node, args, ctx), name_hint=_safe(node.outputs[0].name, 0))
                _check_shape(node, out)
                env[id(node.outputs[0])] = out
            results = [_lookup(v, env) for v in graph.outputs]
            tuple_out = bb.emit_output(relax.Tuple(results))
        bb.emit_func_output(tuple_out)
    return bb.get()


def _lookup(value, env) -> relax.Expr:
    """The Relax expression for an IR value: a computed one, or its constant (made once)."""
    if id(value) in env:
        return env[id(value)]
    if value.data is None:
        raise InvalidModelError(f"value {value.name!r} is used before it is computed")
    env[id(value)] = c = _const(np.asarray(value.data, dtype=value.dtype.np_dtype))
    return c


def _check_shape(node: Node, out: relax.Expr) -> None:
    """Our lowering must reproduce the IR's inferred type exactly (pool rounding modes, pads...)."""
    sinfo = out.ty
    got = tuple(int(d) for d in sinfo.shape.values)
    want = node.outputs[0].shape
    if got != tuple(want) or str(sinfo.dtype) != _dtype(node.outputs[0]):
        raise InvalidModelError(f"{node.name}: the TVM lowering of {node.op_type} gives {sinfo.dtype}{list(got)}, "
                                f"the IR says {_dtype(node.outputs[0])}{list(want)}; this op configuration has no "
                                "faithful TVM lowering")


def _safe(name: str, index: int) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name).strip("_")
    return cleaned if cleaned and not cleaned[0].isdigit() else f"v{index}_{cleaned}"
