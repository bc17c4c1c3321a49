"""Attention: accelgen's fused MultiHeadAttention and the ONNX Attention op (opsets 23 to 25).

Both compute softmax(Q K^T * scale + bias) V per head. They differ in where their inputs come from (MHA owns its
projections, Attention takes projected Q/K/V) and in the details ONNX specifies: Attention scales Q and K by
sqrt(scale) each, soft-caps logits, pads short masks with -inf, and gives zero rows where every key is masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from accelgen.errors import InvalidModelError, QuantizationError, ShapeError
from accelgen.ir.ops.base import ACCELGEN_DOMAIN, Cost, Op
from accelgen.ir.ops.dtypes import onnx_dtype
from accelgen.ir.ops.fixed_math import INTERNAL_ROUNDING, add_type, fixed_round, softmax_difference_type, softmax_fixed
from accelgen.ir.ops.linear import as_work, work_dtype
from accelgen.ir.ops.normalization import Softmax
from accelgen.ir.ops.quantized import FixedPlan
from accelgen.ir.ops.registry import register
from accelgen.ir.types import BOOL, I64, FixedType, FloatType, Overflow, TensorType


def _fits(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether `shape` broadcasts to `target` without growing it."""
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """[B, S, heads * d] -> [B, heads, S, d]."""
    b, s, width = x.shape
    return x.reshape(b, s, heads, width // heads).transpose(0, 2, 1, 3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """[B, heads, S, d] -> [B, S, heads * d]."""
    b, h, s, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, s, h * d)


def _causal_bias(q_len: int, kv_len: int, offset, dtype) -> np.ndarray:
    """0 where query i may see key j (j <= i + offset), -inf elsewhere; [q, kv], or [B, 1, q, kv] when `offset`
    is one number per batch."""
    i = np.arange(q_len).reshape(q_len, 1)
    j = np.arange(kv_len).reshape(1, kv_len)
    if np.ndim(offset):
        allowed = j <= i + np.reshape(offset, (-1, 1, 1))
        allowed = allowed[:, None]
    else:
        allowed = j <= i + int(offset)
    return np.where(allowed, dtype.type(0), dtype.type(-np.inf))


def _reference_softmax(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Softmax along the last axis as the ONNX reference computes it in `dtype`: each step rounded to it, and the
    sum accumulated in it (numpy's pairwise sum) for float16/bfloat16; an all -inf row gives 0s, not NaN."""
    x = x.astype(dtype)
    row_max = np.max(x, axis=-1, keepdims=True) if x.shape[-1] else np.zeros((), dtype)
    e = np.exp(x - np.where(np.isneginf(row_max), dtype.type(0), row_max)).astype(dtype)
    total = e.sum(axis=-1, keepdims=True, dtype=dtype)
    return as_work(e / np.where(total == 0, dtype.type(1), total))


def _zero_masked_rows(probs: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Zero the rows whose bias is -inf everywhere (no key may be attended), as ONNX Attention specifies."""
    empty = np.isneginf(np.max(bias, axis=-1, keepdims=True)) if bias.shape[-1] else False
    return np.where(empty, probs.dtype.type(0), probs)


# -- accelgen's fused op -------------------------------------------------------------------------------------------
@register
@dataclass(frozen=True)
class MultiHeadAttention(Op):
    """Multi-head attention with its four projections: y = concat_h(softmax(Q_h K_h^T * scale + mask) V_h) Wo + bo,
    where Q = x_q Wq + bq, K = x_kv Wk + bk, V = x_kv Wv + bv are split into `num_heads` heads of `head_dim`
    columns each (head h owns columns h*head_dim ... (h+1)*head_dim - 1).

    Inputs (in this order): x_q [B, S, E], x_kv [B, Skv, Ekv] (the same value as x_q for self-attention), an
    optional additive mask broadcasting to [B, num_heads, S, Skv], then Wq, Wk, Wv [E or Ekv, num_heads*head_dim],
    bq, bk, bv [num_heads*head_dim], Wo [num_heads*head_dim, E_out], bo [E_out]. The weights are inputs so that they
    stay graph constants a backend can read. `causal` masks key j for query i when j > i. `zero_masked_rows` gives
    zero attention to a query row whose whole bias is -inf (ONNX Attention's rule) where plain softmax gives NaN.

    The reference computes in float32 (float64 stays float64): the projections like MatMul + Add, the softmax
    exactly as the ONNX Softmax op does.
    """

    domain = ACCELGEN_DOMAIN
    num_heads: int = 1
    head_dim: int = 1
    scale: float = 1.0
    causal: bool = False
    zero_masked_rows: bool = False

    X_Q, X_KV, MASK, W_Q, W_K, W_V, B_Q, B_K, B_V, W_O, B_O = range(11)
    SLOTS: ClassVar[tuple[str, ...]] = ("x_q", "x_kv", "mask", "Wq", "Wk", "Wv", "bq", "bk", "bv", "Wo", "bo")

    def __post_init__(self):
        if self.num_heads < 1 or self.head_dim < 1:
            raise InvalidModelError(f"MultiHeadAttention: num_heads ({self.num_heads}) and head_dim "
                                    f"({self.head_dim}) must be positive")

    def infer(self, inputs):
        if len(inputs) != len(self.SLOTS) or any(t is None for i, t in enumerate(inputs) if i != self.MASK):
            raise ShapeError(f"MultiHeadAttention takes the inputs {', '.join(self.SLOTS)} (only mask may be "
                             f"empty), got {len(inputs)}")
        (xq, xkv, mask), wo = inputs[:3], inputs[self.W_O]
        if not isinstance(xq.dtype, FloatType):
            raise ShapeError(f"MultiHeadAttention: x_q has element type {xq.dtype}; it takes float tensors")
        others = [t for t in inputs[1:] if t is not None]
        if any(t.dtype != xq.dtype for t in others):
            raise ShapeError("MultiHeadAttention: inputs have different element types "
                             f"({', '.join(str(t.dtype) for t in inputs if t is not None)})")
        if xq.rank != 3 or xkv.rank != 3 or xq.shape[0] != xkv.shape[0]:
            raise ShapeError(f"MultiHeadAttention: x_q {xq.shape} and x_kv {xkv.shape} must be [B, S, E] and "
                             "[B, Skv, Ekv] with the same B")
        width = self.num_heads * self.head_dim
        want = {"Wq": (xq.shape[2], width), "Wk": (xkv.shape[2], width), "Wv": (xkv.shape[2], width),
                "bq": (width,), "bk": (width,), "bv": (width,), "Wo": (width, wo.shape[-1]), "bo": (wo.shape[-1],)}
        for name, t in zip(("Wq", "Wk", "Wv", "bq", "bk", "bv", "Wo", "bo"), inputs[3:]):
            if t.shape != want[name]:
                raise ShapeError(f"MultiHeadAttention: {name} has shape {t.shape}, expected {want[name]} "
                                 f"(num_heads={self.num_heads}, head_dim={self.head_dim})")
        scores = (xq.shape[0], self.num_heads, xq.shape[1], xkv.shape[1])
        if mask is not None and (mask.rank > 4 or not _fits(mask.shape, scores)):
            raise ShapeError(f"MultiHeadAttention: mask of shape {mask.shape} does not broadcast to the scores "
                             f"[B, heads, S, Skv] = {list(scores)}")
        return [TensorType((xq.shape[0], xq.shape[1], wo.shape[1]), xq.dtype)]

    def compute(self, inputs):
        xq, xkv, mask, wq, wk, wv, bq, bk, bv, wo, bo = inputs
        w = work_dtype(xq.dtype)
        q = split_heads(np.matmul(as_work(xq), as_work(wq)) + as_work(bq), self.num_heads)
        k = split_heads(np.matmul(as_work(xkv), as_work(wk)) + as_work(bk), self.num_heads)
        v = split_heads(np.matmul(as_work(xkv), as_work(wv)) + as_work(bv), self.num_heads)
        scores = np.matmul(q, k.transpose(0, 1, 3, 2)) * w.type(self.scale)
        bias = None if mask is None else as_work(mask)
        if self.causal:
            causal = _causal_bias(q.shape[2], k.shape[2], 0, w)
            bias = causal if bias is None else bias + causal
        with np.errstate(invalid="ignore", over="ignore"):
            if bias is not None:
                scores = scores + bias
            probs = Softmax(axis=-1).compute([scores])[0]
            if self.zero_masked_rows and bias is not None:
                probs = _zero_masked_rows(probs, np.broadcast_to(bias, scores.shape))
        heads = merge_heads(np.matmul(probs, v))
        y = np.matmul(heads, as_work(wo)) + as_work(bo)
        return [y.astype(xq.dtype, copy=False)]

    # -- fixed point ------------------------------------------------------------------------------------------------
    # The kernel, every rounding named by a param:
    #   Q = x_q Wq + bq exactly ("q_accum"), rounded to "q"; K, V likewise ("k", "v").
    #   scores = Q_h K_h^T exactly ("scores_accum"); logits = scores * q(scale) rounded to "logits"
    #   ("scores_scale": the constant and that rounding; a power-of-two scale is an exact shift).
    #   With a mask: logits + mask, saturated into "masked" (a few integer bits more than the logits: keys masked by
    #   -10000 or -3.4e38 all land far enough below the row maximum that their exp rounds to 0).
    #   probs = softmax (fixed_math.softmax_fixed: exp as 2**t from "exp", sum exact, normalised "reciprocal"),
    #   rounded to "probs"; causal: keys after the query get exp 0.
    #   heads = probs V_h exactly ("pv_accum"), rounded to "heads"; merged (data movement);
    #   y = heads Wo + bo exactly ("out_accum"), rounded to the output type by the wrapper.
    def _float_stages(self, inputs) -> dict[str, np.ndarray]:
        """The float64 internal tensors whose ranges choose the internal types."""
        xq, xkv, mask, wq, wk, wv, bq, bk, bv = (None if a is None else np.asarray(a, np.float64)
                                                 for a in inputs[:9])
        q, k, v = xq @ wq + bq, xkv @ wk + bk, xkv @ wv + bv
        logits = split_heads(q, self.num_heads) @ split_heads(k, self.num_heads).transpose(0, 1, 3, 2) * self.scale
        bias = mask
        if self.causal:
            causal = _causal_bias(logits.shape[2], logits.shape[3], 0, np.dtype(np.float64))
            bias = causal if bias is None else bias + causal
        with np.errstate(invalid="ignore", over="ignore"):
            probs = Softmax(axis=-1).compute([logits if bias is None else logits + bias])[0]
        heads = merge_heads(probs @ split_heads(v, self.num_heads))
        return {"q": q, "k": k, "v": v, "logits": logits, "heads": heads}

    def calibration_probes(self, inputs):
        return self._float_stages(inputs)

    def fixed_precision(self, node, ctx) -> FixedPlan:
        accumulator = ctx.accumulator
        mask = node.inputs[self.MASK]
        if self.zero_masked_rows and mask is not None:
            raise QuantizationError(f"{node.name}: attention that zeroes fully masked rows (from ONNX Attention "
                                    "with a mask) has no fixed-point kernel")
        weights = {i: node.inputs[i] for i in range(self.W_Q, self.B_O + 1)}
        if not all(w.is_constant for w in weights.values()):
            raise QuantizationError(f"{node.name}: MultiHeadAttention needs constant projection weights")
        constants = {i: ctx.weight_type(w.data, node.name, node.op_type) for i, w in weights.items()}
        xq, xkv = node.inputs[self.X_Q], node.inputs[self.X_KV]
        width, skv = self.num_heads * self.head_dim, xkv.shape[1]
        q_t, k_t, v_t = (ctx.internal_type(node, name) for name in ("q", "k", "v"))
        scores = accumulator(q_t, k_t, self.head_dim)
        logits = ctx.internal_type(node, "logits")
        x = logits
        params = [("q_accum", accumulator(xq.dtype, constants[self.W_Q], xq.shape[2], constants[self.B_Q])),
                  ("k_accum", accumulator(xkv.dtype, constants[self.W_K], xkv.shape[2], constants[self.B_K])),
                  ("v_accum", accumulator(xkv.dtype, constants[self.W_V], xkv.shape[2], constants[self.B_V])),
                  ("q", q_t), ("k", k_t), ("v", v_t), ("scores_accum", scores),
                  ("scores_scale", ctx.rescale(scores, self.scale, logits))]
        if mask is not None:
            if not isinstance(mask.dtype, FixedType):
                raise QuantizationError(f"{node.name}: the attention mask must be a fixed-point tensor, not "
                                        f"{mask.dtype}")
            exact = add_type(logits, mask.dtype)
            integer = min(exact.integer, logits.integer + 6)
            x = FixedType(integer + exact.fractional, integer, True, INTERNAL_ROUNDING, Overflow.SAT)
            params.append(("masked", x))
        probs = FixedType(q_t.width, 1, False, INTERNAL_ROUNDING, Overflow.SAT)  # probabilities lie in [0, 1]
        heads = ctx.internal_type(node, "heads")
        entry = ctx.table_entry_type()
        params += [("exp", ctx.exp_function(softmax_difference_type(x, entry), entry)),
                   ("reciprocal", ctx.normalized_table("reciprocal")), ("probs", probs),
                   ("pv_accum", accumulator(probs, v_t, skv)), ("heads", heads),
                   ("out_accum", accumulator(heads, constants[self.W_O], width, constants[self.B_O]))]
        return FixedPlan(ctx.output_types(node), params, constants)

    def compute_fixed(self, inputs, q):
        xq, xkv, mask, wq, wk, wv, bq, bk, bv, wo, bo = inputs
        h = self.num_heads
        query = split_heads(fixed_round(q.param("q"), xq @ wq + bq, q, "q"), h)
        key = split_heads(fixed_round(q.param("k"), xkv @ wk + bk, q, "k"), h)
        value = split_heads(fixed_round(q.param("v"), xkv @ wv + bv, q, "v"), h)
        logits = q.param("scores_scale").apply(query @ key.transpose(0, 1, 3, 2), q, "logits")
        if mask is not None:  # saturation here is what masking means: not counted
            logits = fixed_round(q.param("masked"), logits + mask)
        keep = None
        if self.causal:
            keep = np.arange(logits.shape[3])[None, :] <= np.arange(logits.shape[2])[:, None]
        probs = softmax_fixed(logits, -1, q.param("exp"), q.param("reciprocal"), keep, q)
        probs = fixed_round(q.param("probs"), probs, q, "probs")
        heads = fixed_round(q.param("heads"), merge_heads(probs @ value), q, "heads")
        return [heads @ wo + bo]

    def cost(self, inputs, outputs):
        xq, xkv = inputs[self.X_Q], inputs[self.X_KV]
        (b, s, e), skv, ekv = xq.shape, xkv.shape[1], xkv.shape[2]
        width, e_out = self.num_heads * self.head_dim, outputs[0].shape[2]
        macs = b * (s * e * width + 2 * skv * ekv * width + 2 * s * skv * width + s * width * e_out)
        return Cost(macs=macs, bytes=super().cost(inputs, outputs).bytes)


# -- ONNX Attention ----------------------------------------------------------------------------------------------
_SOFTMAX_PRECISIONS = (1, 10, 11, 16)  # float, float16, double, bfloat16


@register
@dataclass(frozen=True)
class Attention(Op):
    """ONNX Attention (opset 23; opset 24 adds the nonpad_kv_seqlen input, opset 25 the sliding window).

    Inputs Q, K, V are 4-D [B, heads, seq, head_size] or 3-D [B, seq, heads*head_size] (then q_num_heads and
    kv_num_heads say how to split them); then optional attn_mask (bool: True attends; or float, added), past_key,
    past_value and nonpad_kv_seqlen. Outputs Y, present_key, present_value and qk_matmul_output; `num_outputs`
    (not an ONNX attribute) records how many the node declares. Grouped-query attention repeats each K/V head for
    q_num_heads / kv_num_heads consecutive query heads. Computed in float32 for float16/bfloat16, rounding to the
    input type after each step, where the ONNX reference computes in that type.
    """

    is_causal: int = 0
    kv_num_heads: int | None = None
    q_num_heads: int | None = None
    qk_matmul_output_mode: int = 0
    scale: float | None = None
    softcap: float = 0.0
    softmax_precision: int | None = None
    left_window_size: int = -1
    right_window_size: int = -1
    num_outputs: int = 1

    @classmethod
    def from_onnx(cls, attrs, opset, n_outputs):
        if "num_outputs" in attrs:
            raise InvalidModelError("Attention: unsupported attribute(s) num_outputs")
        if opset < 25 and ({"left_window_size", "right_window_size"} & set(attrs)):
            raise InvalidModelError(f"Attention: left/right_window_size need opset 25, the model has {opset}")
        return cls.from_attrs({**attrs, "num_outputs": n_outputs})

    def __post_init__(self):
        if not 1 <= self.num_outputs <= 4:
            raise InvalidModelError(f"Attention has 1 to 4 outputs, the node declares {self.num_outputs}")
        if self.qk_matmul_output_mode not in (0, 1, 2, 3):
            raise InvalidModelError(f"Attention: qk_matmul_output_mode {self.qk_matmul_output_mode} is not 0-3")
        if self.softmax_precision is not None and self.softmax_precision not in _SOFTMAX_PRECISIONS:
            raise InvalidModelError(f"Attention: softmax_precision {self.softmax_precision} is not one of "
                                    f"{_SOFTMAX_PRECISIONS} (float, float16, double, bfloat16)")
        if self.left_window_size < -1 or self.right_window_size < -1:
            raise InvalidModelError("Attention: window sizes must be -1 (unbounded) or nonnegative")

    def dims(self, inputs) -> dict[str, int]:
        """Batch, heads, lengths and head sizes, checked; from the input types."""
        self.arity(inputs, 3, 7)
        q, k, v = inputs[:3]
        mask, past_k, past_v, nonpad = (list(inputs[3:]) + [None] * 4)[:4]
        if not isinstance(q.dtype, FloatType) or k.dtype != q.dtype or v.dtype != q.dtype:
            raise ShapeError(f"Attention: Q, K and V must have one float element type, got {q.dtype}, {k.dtype}, "
                             f"{v.dtype}")
        if not q.rank == k.rank == v.rank or q.rank not in (3, 4):
            raise ShapeError(f"Attention: Q, K, V must all be 3-D or all 4-D, got {q.shape}, {k.shape}, {v.shape}")
        if q.rank == 3:
            if self.q_num_heads is None or self.kv_num_heads is None:
                raise ShapeError("Attention: 3-D inputs need the q_num_heads and kv_num_heads attributes")
            hq, hkv = self.q_num_heads, self.kv_num_heads
            if hq < 1 or hkv < 1 or q.shape[2] % hq or k.shape[2] % hkv or v.shape[2] % hkv:
                raise ShapeError(f"Attention: hidden sizes Q {q.shape[2]}, K {k.shape[2]}, V {v.shape[2]} do not "
                                 f"split into q_num_heads={hq} / kv_num_heads={hkv} heads")
            d = {"B": q.shape[0], "Hq": hq, "Hkv": hkv, "S": q.shape[1], "Skv": k.shape[1], "hd": q.shape[2] // hq,
                 "hdk": k.shape[2] // hkv, "hdv": v.shape[2] // hkv, "Sv": v.shape[1]}
        else:
            d = {"B": q.shape[0], "Hq": q.shape[1], "Hkv": k.shape[1], "S": q.shape[2], "Skv": k.shape[2],
                 "hd": q.shape[3], "hdk": k.shape[3], "hdv": v.shape[3], "Sv": v.shape[2]}
            if v.shape[1] != d["Hkv"]:
                raise ShapeError(f"Attention: K {k.shape} and V {v.shape} have different numbers of heads")
            for name, given, actual in (("q", self.q_num_heads, d["Hq"]), ("kv", self.kv_num_heads, d["Hkv"])):
                if given is not None and given != actual:
                    raise ShapeError(f"Attention: {name}_num_heads={given} but the 4-D input has {actual} heads")
        if k.shape[0] != d["B"] or v.shape[0] != d["B"] or d["Sv"] != d["Skv"] or d["hdk"] != d["hd"]:
            raise ShapeError(f"Attention: Q {q.shape}, K {k.shape} and V {v.shape} disagree on batch, key length or "
                             "head size")
        if d["Hq"] % d["Hkv"]:
            raise ShapeError(f"Attention: {d['Hq']} query heads are not a multiple of {d['Hkv']} key/value heads")
        past = 0
        if (past_k is None) != (past_v is None):
            raise ShapeError("Attention: past_key and past_value must be given together")
        if past_k is not None:
            past = past_k.shape[2] if past_k.rank == 4 else -1
            if (past_k.shape != (d["B"], d["Hkv"], past, d["hd"]) or past_v.shape != (d["B"], d["Hkv"], past, d["hdv"])
                    or past_k.dtype != q.dtype or past_v.dtype != q.dtype):
                raise ShapeError(f"Attention: past_key {past_k} / past_value {past_v} do not fit "
                                 f"[B, kv_num_heads, past, head_size] with B={d['B']}, heads={d['Hkv']}")
        if nonpad is not None:
            if nonpad.shape != (d["B"],) or nonpad.dtype != I64:
                raise ShapeError(f"Attention: nonpad_kv_seqlen must be int64 of shape ({d['B']},), got {nonpad}")
            if past_k is not None:
                raise ShapeError("Attention: nonpad_kv_seqlen cannot be combined with past_key/past_value")
        d["past"], d["total"] = past, past + d["Skv"]
        if mask is not None:
            scores = (d["B"], d["Hq"], d["S"], d["total"])
            if mask.dtype != BOOL and mask.dtype != q.dtype:
                raise ShapeError(f"Attention: attn_mask must be bool or {q.dtype}, got {mask.dtype}")
            if mask.rank < 1 or mask.shape[-1] > d["total"] or not _fits(mask.shape[:-1] + (d["total"],), scores):
                raise ShapeError(f"Attention: attn_mask of shape {mask.shape} does not broadcast to {list(scores)} "
                                 "(its last dimension may be shorter, then it is padded with -inf)")
        return d

    def infer(self, inputs):
        d = self.dims(inputs)
        dtype = inputs[0].dtype
        y = (d["B"], d["S"], d["Hq"] * d["hdv"]) if inputs[0].rank == 3 else (d["B"], d["Hq"], d["S"], d["hdv"])
        shapes = [y, (d["B"], d["Hkv"], d["total"], d["hd"]), (d["B"], d["Hkv"], d["total"], d["hdv"]),
                  (d["B"], d["Hq"], d["S"], d["total"])]
        return [TensorType(s, dtype) for s in shapes[: self.num_outputs]]

    def compute(self, inputs):
        d = self.dims([TensorType.of(x) if x is not None else None for x in inputs])
        q, k, v = inputs[:3]
        mask, past_k, past_v, nonpad = (list(inputs[3:]) + [None] * 4)[:4]
        dt, w = q.dtype, work_dtype(q.dtype)

        def rnd(a):  # the reference computes in the input type: round there after every step
            return np.asarray(a).astype(dt).astype(w, copy=False)

        if q.ndim == 3:
            q, k, v = split_heads(q, d["Hq"]), split_heads(k, d["Hkv"]), split_heads(v, d["Hkv"])
        present_k = k if past_k is None else np.concatenate([past_k, k], axis=2)
        present_v = v if past_v is None else np.concatenate([past_v, v], axis=2)
        bias = self.bias(d, mask, nonpad, w, dt)
        groups = d["Hq"] // d["Hkv"]
        kk = np.repeat(as_work(present_k), groups, axis=1)
        vv = np.repeat(as_work(present_v), groups, axis=1)
        scale = self.scale if self.scale is not None else 1 / np.sqrt(d["hd"])
        root = as_work(np.asarray(np.sqrt(scale)).astype(dt))
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            qk = rnd(np.matmul(rnd(as_work(q) * root), rnd(kk * root).transpose(0, 1, 3, 2)))
            capped = rnd(self.softcap * np.tanh(rnd(qk / w.type(self.softcap)))) if self.softcap > 0 else qk
            logits = rnd(capped + bias)
            x = logits
            if self.softmax_precision is not None:
                precision = onnx_dtype(self.softmax_precision, "Attention").np_dtype
                x = as_work(logits.astype(precision))
            probs = _reference_softmax(x, precision if self.softmax_precision is not None else dt)
            probs = rnd(_zero_masked_rows(probs, np.broadcast_to(bias, probs.shape)))
            y = rnd(np.matmul(probs, vv))
        if inputs[0].ndim == 3:
            y = merge_heads(y)
        qk_out = (qk, capped, logits, probs)[self.qk_matmul_output_mode]
        outs = [y, present_k, present_v, np.broadcast_to(qk_out, probs.shape)]
        return [np.ascontiguousarray(o).astype(dt, copy=False) for o in outs[: self.num_outputs]]

    def bias(self, d, mask, nonpad, w, dt) -> np.ndarray:
        """The additive bias broadcasting to [B, Hq, S, total]: mask (bool -> 0/-inf, padded to `total` with
        -inf), causal frontier, sliding window and key padding, summed as the ONNX reference sums them."""
        s, total = d["S"], d["total"]
        bias = np.zeros((s, total), w)
        if mask is not None:
            pad = total - mask.shape[-1]
            if pad:
                fill = False if mask.dtype == np.bool_ else -np.inf
                mask = np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, pad)], constant_values=fill)
            mask = np.where(mask, w.type(0), w.type(-np.inf)) if mask.dtype == np.bool_ else as_work(mask)
            bias = np.asarray(bias + mask)
        # queries sit after the cached keys: past_key's length, or the valid keys of an external cache
        offset = d["past"] if nonpad is None else nonpad.astype(np.int64) - s
        if self.is_causal:
            bias = bias + _causal_bias(s, total, offset, w)
        if self.left_window_size >= 0 or self.right_window_size >= 0:
            bias = bias + self.window_bias(s, total, offset, w)
        if nonpad is not None:
            valid = np.arange(total) < nonpad.astype(np.int64)[:, None]
            bias = bias + np.where(valid, w.type(0), w.type(-np.inf)).reshape(d["B"], 1, 1, total)
        return np.asarray(bias).astype(dt).astype(w, copy=False)

    def window_bias(self, s, total, offset, w) -> np.ndarray:
        i = np.arange(s).reshape(s, 1)
        j = np.arange(total).reshape(1, total)
        diff = i + (np.reshape(offset, (-1, 1, 1)) if np.ndim(offset) else int(offset)) - j
        allowed = np.ones(diff.shape, bool)
        if self.left_window_size >= 0:
            allowed &= diff <= self.left_window_size
        if self.right_window_size >= 0:
            allowed &= -diff <= self.right_window_size
        out = np.where(allowed, w.type(0), w.type(-np.inf))
        return out[:, None] if np.ndim(offset) else out

    def cost(self, inputs, outputs):
        d = self.dims(inputs)
        macs = d["B"] * d["Hq"] * d["S"] * d["total"] * (d["hd"] + d["hdv"])
        return Cost(macs=macs, bytes=super().cost(inputs, outputs).bytes)

