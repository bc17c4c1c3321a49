"""Integer reference kernels for the fixed-point tests: raw two's-complement integers, shifts and a priority
encoder, the way the HLS kernels compute. They share nothing with the float64 emulation in accelgen except the
plan (types, constants, table entries), so agreement bit for bit shows that the emulation computes what the
integer hardware will."""

from __future__ import annotations

import numpy as np

from accelgen.ir.ops.attention import merge_heads, split_heads
from accelgen.ir.types import FixedType, Rounding


def raw(values, t: FixedType) -> np.ndarray:
    """The raw integers of values that lie on t's grid (checked)."""
    scaled = np.ldexp(np.asarray(values, np.float64), t.fractional)
    r = np.round(scaled).astype(np.int64)
    assert np.array_equal(r, scaled), f"values are not on the grid of {t}"
    return r


def value(r: np.ndarray, frac) -> np.ndarray:
    return np.ldexp(np.asarray(r, np.float64), -np.asarray(frac))


def round_raw(r: np.ndarray, frac, t: FixedType) -> np.ndarray:
    """Raw integers at `frac` fractional bits (scalar or per element) rounded to t: round half up (RND) or floor
    (TRN) by shifting, then saturation."""
    assert t.rounding in (Rounding.RND, Rounding.TRN)
    r = np.asarray(r, np.int64)
    s = np.asarray(frac, np.int64) - t.fractional
    right, left = np.maximum(s, 0), np.maximum(-s, 0)
    half = np.where(right > 0, np.left_shift(np.int64(1), np.maximum(right - 1, 0)), 0)
    if t.rounding is Rounding.TRN:
        half = 0 * half
    out = np.where(right > 0, (r + half) >> right, r << left)
    return np.clip(out, t.raw_min, t.raw_max)


def align(a: np.ndarray, fa: int, b: np.ndarray, fb: int) -> tuple[np.ndarray, np.ndarray, int]:
    f = max(fa, fb)
    return a << (f - fa), b << (f - fb), f


def leading_one(r: np.ndarray) -> np.ndarray:
    """Position of the leading one of positive integers (a priority encoder)."""
    r = np.asarray(r, np.int64)
    assert (r > 0).all()
    return np.array([int(v).bit_length() - 1 for v in r.reshape(-1)], np.int64).reshape(r.shape)


def normalized_index(r: np.ndarray, frac: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(index of the k bits after the leading one, exponent e with x = m * 2**e)."""
    p = leading_one(r)
    bits = np.where(p >= k, r >> np.maximum(p - k, 0), r << np.maximum(k - p, 0))
    return bits & ((1 << k) - 1), p - frac


def layer_norm(node, x: np.ndarray) -> np.ndarray:
    """A quantized LayerNormalization node (last axis) on exact input values, in integers."""
    q = node.op
    xt = node.inputs[0].dtype
    mean, var, eps, rsqrt, norm_t = (q.param(k) for k in ("mean", "var", "var_epsilon", "rsqrt", "norm"))
    assert mean.pre is None
    xr, fx = raw(x, xt), xt.fractional
    c, fc = raw(mean.constant.array, mean.constant.type), mean.constant.type.fractional
    m = round_raw(xr.sum(-1, keepdims=True) * c, fx + fc, mean.out)
    a, b, fd = align(xr, fx, m, mean.out.fractional)
    d = a - b
    sq, fs = (d * d).sum(-1, keepdims=True), 2 * fd
    if var.pre is not None:
        sq, fs = round_raw(sq, fs, var.pre), var.pre.fractional
    cv, fcv = raw(var.constant.array, var.constant.type), var.constant.type.fractional
    fv = var.out.fractional
    v = np.maximum(round_raw(sq * cv, fs + fcv, var.out) + raw(eps.value, var.out), 1)
    idx, e = normalized_index(v, fv, rsqrt.index_bits)
    idx = idx + (e & 1) * (1 << rsqrt.index_bits)
    shift = -(e >> 1)  # rsqrt(v) = entry * 2**shift
    entry, fe = raw(rsqrt.values, rsqrt.out)[idx], rsqrt.out.fractional
    n, fn = round_raw(d * entry, fd + fe - shift, norm_t), norm_t.fractional
    g_t, b_t = node.inputs[1].dtype, node.inputs[2].dtype
    y, fy = n * raw(node.inputs[1].data, g_t), fn + g_t.fractional
    y, bias, fy = align(y, fy, raw(node.inputs[2].data, b_t), b_t.fractional)
    return value(round_raw(y + bias, fy, node.outputs[0].dtype), node.outputs[0].dtype.fractional)


def exp(d: np.ndarray, fd: int, exp) -> np.ndarray:
    """exp of raw integers d (fd fractional bits) to raw integers of exp.result: t = d * log2(e) rounded, its
    integer part a shift, its top fractional bits the table address."""
    assert exp.scale.pre is None
    c = exp.scale.constant
    t_t = exp.scale.out
    t = round_raw(d * raw(c.array, c.type), fd + c.type.fractional, t_t)
    ft, k = t_t.fractional, exp.index_bits
    n = np.clip(t >> ft, exp.min_shift, exp.max_shift)
    i = (t & ((1 << ft) - 1)) >> (ft - k)
    return round_raw(raw(exp.values, exp.out)[i], exp.out.fractional - n, exp.result)


def softmax(x: np.ndarray, fx: int, exp_fn, recip, probs: FixedType) -> np.ndarray:
    """Softmax along the last axis of raw integers x (fx fractional bits) to raw integers of `probs`."""
    d_t = exp_fn.scale.x_type  # the difference saturates to the exp input type
    e = exp(round_raw(x - x.max(-1, keepdims=True), fx, d_t), d_t.fractional, exp_fn)
    fe = exp_fn.result.fractional
    s = e.sum(-1, keepdims=True)
    idx, es = normalized_index(s, fe, recip.index_bits)
    r = raw(recip.values, recip.out)[idx]  # 1/s = r * 2**-es
    return round_raw(e * r, fe + recip.out.fractional + es, probs)


def attention(node, xq: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """A quantized self-attention MultiHeadAttention node on exact input values, in integers."""
    q = node.op
    op, h = q.op, q.op.num_heads
    xt = node.inputs[0].dtype
    xr, fx = raw(xq, xt), xt.fractional

    def project(wi, bi, out):
        w, b = node.inputs[wi], node.inputs[bi]
        acc, fa = xr @ raw(w.data, w.dtype), fx + w.dtype.fractional
        acc, bias, fa = align(acc, fa, raw(b.data, b.dtype), b.dtype.fractional)
        return round_raw(acc + bias, fa, out)

    qt, kt, vt = q.param("q"), q.param("k"), q.param("v")
    qr = split_heads(project(op.W_Q, op.B_Q, qt), h)
    kr = split_heads(project(op.W_K, op.B_K, kt), h)
    vr = split_heads(project(op.W_V, op.B_V, vt), h)
    scores, fs = qr @ kr.transpose(0, 1, 3, 2), qt.fractional + kt.fractional
    scale = q.param("scores_scale")
    assert scale.pre is None
    c = scale.constant
    logits = round_raw(scores * raw(c.array, c.type), fs + c.type.fractional, scale.out)
    fl = scale.out.fractional
    if mask is not None:
        mt = node.inputs[op.MASK].dtype
        a, b, fl2 = align(logits, fl, raw(mask, mt), mt.fractional)
        masked = q.param("masked")
        logits, fl = round_raw(a + b, fl2, masked), masked.fractional
    probs_t = q.param("probs")
    p = softmax(logits, fl, q.param("exp"), q.param("reciprocal"), probs_t)
    heads_t = q.param("heads")
    heads = merge_heads(round_raw(p @ vr, probs_t.fractional + vt.fractional, heads_t))
    wo, bo = node.inputs[op.W_O], node.inputs[op.B_O]
    y, fy = heads @ raw(wo.data, wo.dtype), heads_t.fractional + wo.dtype.fractional
    y, bias, fy = align(y, fy, raw(bo.data, bo.dtype), bo.dtype.fractional)
    out = node.outputs[0].dtype
    return value(round_raw(y + bias, fy, out), out.fractional)
