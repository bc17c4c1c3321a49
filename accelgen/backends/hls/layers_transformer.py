"""Layer contexts of the transformer kernels (LayerNormalization, standalone GELU, MultiHeadAttention), mixed into
layers.LayerBuilder, which dispatches on `_<op_type lower case>`. As in layers.py, every decision and every type is
made here in Python; the kernels (templates/hls/kernels/ag_layernorm.h, ag_gelu.h,
ag_attention.h) only assign to the named types."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from accelgen.backends.hls.cpp import exact_literals, exact_type
from accelgen.errors import OptionError, QuantizationError
from accelgen.ir.ops.fixed_math import NormalizedTable, Rescale, add_type, product_type
from accelgen.ir.types import FixedType

TRANSFORMER_OPS = ("LayerNormalization", "Gelu", "MultiHeadAttention")


def reuse_split(products: int, reuse_factor: int) -> tuple[int, int]:
    """(multipliers, cycles) of `products` time-multiplexed by a reuse factor, as ag::dense_resource and
    hls4ml: ceil(products / RF) multipliers over ceil(products / multipliers) cycles (fewer than RF when RF does not
    divide; RF above `products` leaves one multiplier)."""
    lanes = max(1, -(-products // reuse_factor))
    return lanes, -(-products // lanes)


@dataclass(frozen=True)
class AttentionShape:
    """The sizes of one ag::multihead_attention and the multipliers each form instantiates."""

    seq_q: int
    embed_q: int
    seq_kv: int
    embed_kv: int
    heads: int
    head_dim: int
    embed_out: int

    @property
    def width(self) -> int:
        return self.heads * self.head_dim

    def resource_split(self, reuse_factor: int) -> dict[str, tuple[int, int]]:
        """(multipliers per cycle, cycles) of each stage of ag::multihead_attention_resource. A projection
        (per token) shares its n_in n_out products as Dense resource does; Q.K (per query) computes
        ceil(heads seq_kv / R) whole scores per cycle, head_dim multipliers each; P.V computes ceil(width / R) whole
        outputs per cycle, seq_kv multipliers each."""
        w, rf = self.width, reuse_factor
        split = {"q": reuse_split(self.embed_q * w, rf), "k": reuse_split(self.embed_kv * w, rf),
                 "v": reuse_split(self.embed_kv * w, rf), "o": reuse_split(w * self.embed_out, rf)}
        scores_units, scores_cycles = reuse_split(self.heads * self.seq_kv, rf)
        pv_units, pv_cycles = reuse_split(w, rf)
        split["scores"] = (scores_units * self.head_dim, scores_cycles)
        split["pv"] = (pv_units * self.seq_kv, pv_cycles)
        return split

    def config(self, reuse_factor: int) -> list[tuple[str, str, int]]:
        """The resource kernel's CONFIG entries: lanes and cycles of each projection, units and cycles of Q.K and
        P.V."""
        split = self.resource_split(reuse_factor)
        entries = [("int", "reuse_factor", reuse_factor)]
        for stage in "qkvo":
            entries += [("int", f"{stage}_lanes", split[stage][0]), ("int", f"{stage}_cycles", split[stage][1])]
        entries += [("int", "scores_units", split["scores"][0] // self.head_dim),
                    ("int", "scores_cycles", split["scores"][1]),
                    ("int", "pv_units", split["pv"][0] // self.seq_kv), ("int", "pv_cycles", split["pv"][1])]
        return entries

    def multipliers(self, choice) -> int:
        """What the kernel instantiates. Latency: one query's work at once (pipelined over the sequence, heads
        unrolled): one token of each projection, all of Q.K and P.V, and per head and key the scale, log2(e) and
        reciprocal products of the row softmax. Resource: each stage's shared multipliers plus one row (one head)
        of scale and softmax."""
        softmax_row = 3 * self.seq_kv
        if choice.strategy == "resource":
            return sum(n for n, _ in self.resource_split(choice.reuse_factor).values()) + softmax_row
        w = self.width
        return ((self.embed_q + 2 * self.embed_kv + self.embed_out) * w + 2 * self.seq_kv * w
                + self.heads * softmax_row)


def streams_tokens(node, choice) -> bool:
    """Whether io stream runs this attention token by token (ag_stream_attention.h): self-attention (one input
    tensor) with the latency strategy and a mask that is absent or constant."""
    op = node.op.op
    mask = node.inputs[op.MASK]
    return (choice.strategy == "latency" and node.inputs[op.X_Q] is node.inputs[op.X_KV]
            and (mask is None or mask.is_constant))


class TransformerKernels:
    """Methods of LayerBuilder for the transformer ops. Uses LayerBuilder's _typedef, _x, _y, _const, fixed_type."""

    def _layernormalization(self, layer, node, q, op, choice) -> None:
        shape = node.inputs[0].shape
        axis = op.axis % len(shape)
        rows = int(np.prod(shape[:axis], dtype=np.int64))
        n = int(np.prod(shape[axis:], dtype=np.int64))
        x = self.fixed_type(node.inputs[0])
        self.fixed_type(node.outputs[0])
        mean, var, eps = q.param("mean"), q.param("var"), q.param("var_epsilon")
        rsqrt, norm = q.param("rsqrt"), q.param("norm")
        if (not isinstance(mean, Rescale) or not isinstance(var, Rescale) or mean.out is None or var.out is None
                or not isinstance(rsqrt, NormalizedTable) or rsqrt.function != "rsqrt"
                or not isinstance(norm, FixedType) or var.out.signed or var.out.fractional < 0):
            raise QuantizationError(f"{node.name}: layer-norm precision params the HLS kernel does not know")
        diff = add_type(x, mean.out)
        v = exact_type(var.out.width + 1, var.out.integer + 1, False)  # var + epsilon, both of var.out
        # 1/sqrt(v) = entry * 2**-h, h = floor(e / 2), e from -v.fractional (v >= lsb) to v.integer - 1
        h_min, h_max = math.floor(-v.fractional / 2), math.floor((v.integer - 1) / 2)
        left, right = max(-h_min, 0), max(h_max, 0)
        prod = product_type(diff, rsqrt.out)
        norm_wide = exact_type(prod.width + left + right, prod.integer + left, prod.signed)
        if v.width > 62:
            raise QuantizationError(f"{node.name}: variance type {var.out} is too wide for the HLS kernel")
        types = {"sum_t": mean.x_type, "mean_pre_t": mean.pre or mean.x_type, "mean_scale_t": mean.constant.type,
                 "mean_t": mean.out, "diff_t": diff, "squares_t": var.x_type, "var_pre_t": var.pre or var.x_type,
                 "var_scale_t": var.constant.type, "var_t": var.out, "v_t": v, "rsqrt_entry_t": rsqrt.out,
                 "norm_t": norm, "norm_wide_t": norm_wide}
        for name, t in types.items():
            layer.config.append(("type", name, self._typedef(layer, name[:-2], t)))
        layer.config += [("int", "rows", rows), ("int", "n", n), ("int", "table_bits", rsqrt.index_bits),
                         ("int", "v_width", v.width), ("int", "v_frac", v.fractional)]
        c = layer.cname
        affine = []
        for i, what in ((1, "gamma"), (2, "beta")):
            value = node.inputs[i] if len(node.inputs) > i else None
            if value is None:
                self._const(layer, f"{c}_{what}", "ap_uint<1>", ["0"] * n)
            elif not value.is_constant:
                raise OptionError(f"{node.name}: LayerNormalization's {what} must be a constant for the HLS kernel")
            else:
                t = self.fixed_type(value)
                data = np.broadcast_to(np.asarray(value.data, np.float64), shape[axis:]).reshape(-1)
                self._const(layer, f"{c}_{what}", self._typedef(layer, what, t),
                            exact_literals(data, t, f"{node.name} {what}"))
            affine.append(f"{c}_{what}")
        self._const(layer, f"{c}_rsqrt_table", f"{c}_rsqrt_entry_t",
                    exact_literals(rsqrt.values, rsqrt.out, "rsqrt table"))
        layer.scalars = [(f"{c}_mean_scale", f"{c}_mean_scale_t",
                          exact_literals(mean.constant.array, mean.constant.type, "1/n")[0]),
                         (f"{c}_var_scale", f"{c}_var_scale_t",
                          exact_literals(var.constant.array, var.constant.type, "1/n")[0]),
                         (f"{c}_epsilon", f"{c}_var_t", exact_literals(np.asarray(eps.value), var.out, "epsilon")[0])]
        layer.call = (f"ag::layernorm<{layer.config_name}>({self._x(node)}, {self._y(node)}, {affine[0]}, "
                      f"{affine[1]}, {c}_rsqrt_table, {c}_mean_scale, {c}_var_scale, {c}_epsilon);")
        layer.multipliers = 3 * n
        layer.kernel = f"layernorm over {n}, rsqrt table {rsqrt.size}"

    def _gelu(self, layer, node, q, op, choice) -> None:
        x = self.fixed_type(node.inputs[0])
        self.fixed_type(node.outputs[0])
        table = q.param("table")
        if table is None:
            raise QuantizationError(f"{node.name}: Gelu has no lookup table in its precision params")
        name = self._table(layer, x, table)  # "ag::table_activation<NAME>"
        struct = name[len("ag::table_activation<"):-1]
        layer.call = f"ag::gelu<{struct}, {node.outputs[0].type.numel}>({self._x(node)}, {self._y(node)});"
        layer.kernel = f"gelu table {table.size}; x above it, 0 below"


    def _multiheadattention(self, layer, node, q, op, choice) -> None:
        xq, xkv = node.inputs[op.X_Q], node.inputs[op.X_KV]
        if xq.shape[0] != 1:
            raise OptionError(f"{node.name}: only attention with batch 1 has an HLS kernel in this version")
        if op.zero_masked_rows:
            raise OptionError(f"{node.name}: attention that zeroes fully masked rows has no HLS kernel")
        self.fixed_type(xq), self.fixed_type(xkv), self.fixed_type(node.outputs[0])
        mask = self._attention_mask(layer, node, op)
        width, seq_kv = op.num_heads * op.head_dim, xkv.shape[1]
        wo = node.inputs[op.W_O]
        scale = q.param("scores_scale")
        if not isinstance(scale, Rescale) or scale.out is None:
            raise QuantizationError(f"{node.name}: attention precision params the HLS kernel does not know")
        self._softmax_config(layer, node, q.param("exp"), q.param("reciprocal"), 1, seq_kv)
        types = {name: q.param(name) for name in ("q_accum", "k_accum", "v_accum", "q", "k", "v", "scores_accum",
                                                  "probs", "pv_accum", "heads", "out_accum")}
        types.update(scale_pre=scale.pre or scale.x_type, scale=scale.constant.type, logits=scale.out,
                     masked=q.param("masked") if node.inputs[op.MASK] is not None else scale.out)
        for name, t in types.items():
            layer.config.append(("type", f"{name}_t", self._typedef(layer, name, t)))
        layer.config += [("int", "seq_q", xq.shape[1]), ("int", "embed_q", xq.shape[2]), ("int", "seq_kv", seq_kv),
                         ("int", "embed_kv", xkv.shape[2]), ("int", "width", width),
                         ("int", "embed_out", wo.shape[1]), ("int", "heads", op.num_heads),
                         ("int", "head_dim", op.head_dim), ("unsigned", "causal", int(op.causal)),
                         ("unsigned", "qkv_together", int(xq.shape[1] == seq_kv))]  # one loop for Q, K and V
        c = layer.cname
        names = []
        for slot in range(op.W_Q, op.B_O + 1):
            value, what = node.inputs[slot], op.SLOTS[slot]
            t = self.fixed_type(value)
            self._const(layer, f"{c}_{what}", self._typedef(layer, what, t),
                        exact_literals(value.data, t, f"{node.name} {what}"))
            names.append(f"{c}_{what}")
        wq, wk, wv, bq, bk, bv, wo_name, bo = names
        layer.scalars.append((f"{c}_scale", f"{c}_scale_t",
                              exact_literals(scale.constant.array, scale.constant.type, "attention scale")[0]))
        shape = AttentionShape(xq.shape[1], xq.shape[2], seq_kv, xkv.shape[2], op.num_heads, op.head_dim,
                               wo.shape[1])
        kernel, form = "multihead_attention", "pipelined over queries"
        if choice.strategy == "resource":  # every multiplier shared by the reuse factor (see ag_attention.h)
            kernel, form = "multihead_attention_resource", f"resource, reuse {choice.reuse_factor}"
            layer.config += shape.config(choice.reuse_factor)
        layer.multipliers = shape.multipliers(choice)
        masking = ", causal" if op.causal else ""
        masking += ", additive mask" if node.inputs[op.MASK] is not None else ""
        layer.kernel = (f"multi-head attention, {op.num_heads} heads of {op.head_dim}, {seq_kv} keys{masking}, "
                        f"{form}, {layer.multipliers} multipliers")
        layer.call = (f"ag::{kernel}<{layer.config_name}>({self._x(node, op.X_Q)}, {self._x(node, op.X_KV)}, "
                      f"{mask}, {self._y(node)}, {wq}, {wk}, {wv}, {bq}, {bk}, {bv}, {wo_name}, {bo}, "
                      f"{c}_exp_table, {c}_recip_table, {c}_log2e, {c}_scale);")
        if streams_tokens(node, choice):  # io stream: tokens in as they arrive, each query's output out at once
            layer.stream_form = ("multihead_attention_stream", [mask, wq, wk, wv, bq, bk, bv, wo_name, bo,
                                                                f"{c}_exp_table", f"{c}_recip_table", f"{c}_log2e",
                                                                f"{c}_scale"])

    def _attention_mask(self, layer, node, op) -> str:
        """The mask operand and its strides over (head, query, key) in the config; without a mask, one 0."""
        mask = node.inputs[op.MASK]
        if mask is None:
            self._const(layer, f"{layer.cname}_no_mask", "ap_uint<1>", ["0"])
            strides, name, size = (0, 0, 0), f"{layer.cname}_no_mask", 1
        else:
            shape = (1,) * (4 - len(mask.shape)) + tuple(mask.shape)  # broadcasts to [1, heads, seq_q, seq_kv]
            row_major = np.cumprod((1,) + shape[:0:-1])[::-1]
            strides = tuple(0 if d == 1 else int(s) for d, s in zip(shape[1:], row_major[1:]))
            name, size = self._operand(layer, node, op.MASK), mask.type.numel
        layer.config += [("unsigned", "mask_size", size), ("unsigned", "mask_h_stride", strides[0]),
                         ("unsigned", "mask_s_stride", strides[1]), ("unsigned", "mask_t_stride", strides[2])]
        return name
