"""The analytical model of accelgen's transformer kernels (templates/hls/kernels/ag_attention.h, ag_layernorm.h,
ag_gelu.h; softmax is in estimate_model.py). Pure functions of the generator's decisions, like estimate_model.py;
equations in docs/estimator.md.

Each kernel is a loop over tokens (or rows) pipelined at II=1 whose body is fully unrolled. In a DATAFLOW top the
loop stays a loop: one body of hardware, reading its token through a multiplexer over the sequence, for
`tokens - 1 + depth` cycles. In a PIPELINE top (every layer on the latency strategy) HLS unrolls the loop too:
`unrolled=True` gives `tokens` bodies side by side, no multiplexer, and the combinational path of one body, which
then chains into the neighbouring kernels. Attention with strategy resource (attention_resource) instead shares
every multiplier by the reuse factor; it is always looped (a resource layer makes the top a DATAFLOW).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from accelgen.backends.hls.estimate_model import (
    T_DSP_MUL,
    Cost,
    Timing,
    dsp_per_product,
    products,
    rom,
    softmax,
    t_add,
    t_lut_mul,
    t_mux,
    tree_depth,
)
from accelgen.backends.hls.layers_transformer import AttentionShape, reuse_split

LOOP_OVERHEAD = 1  # the state that enters and leaves a pipelined loop inside a function's FSM


def variable_product(a: int, b: int, n: int) -> tuple[int, int, float]:
    """(DSPs, LUTs, delay) of n products of two variables (no constant to fold): a DSP each from 10-bit
    operands, otherwise a LUT multiplier."""
    per = dsp_per_product(a, b)
    if per:
        return n * per, 0, T_DSP_MUL
    return 0, n * int(0.6 * a * b), t_lut_mul(a, b)


def _looped(body: Cost, trips: int, unrolled: bool, timing: Timing) -> Cost:
    """`trips` iterations of a pipelined loop of `body`: one body for trips - 1 + depth cycles, or `trips`
    bodies side by side when a pipelined top unrolls it (the delay then stays chainable)."""
    if unrolled:
        return Cost(delay_ns=body.delay_ns, cycles=body.cycles, dsp=body.dsp * trips, lut=body.lut * trips,
                    ff=body.ff * trips, bram18=body.bram18 * trips, notes=list(body.notes))
    return Cost(delay_ns=body.delay_ns, cycles=trips - 1 + body.cycles, ii=1, dsp=body.dsp, lut=body.lut,
                ff=body.ff, bram18=body.bram18, notes=list(body.notes))


def _loop_cycles(c: Cost, timing: Timing) -> int:
    """Cycles of a looped kernel stage run on its own (before the next stage may start)."""
    return c.cycles + max(timing.stages(c.delay_ns), 1) + LOOP_OVERHEAD


@dataclass(frozen=True)
class Projection:
    """y[s] = b + x[s] W for `tokens` tokens; W's nonzero weights as raw integers (zeros are constant-folded:
    the weight arrays are constants with constant indices once the loops are unrolled)."""

    tokens: int
    n_in: int
    n_out: int
    weights_raw: np.ndarray
    x_w: int
    w_w: int
    acc_w: int
    out_w: int


def projection(p: Projection, unrolled: bool, timing: Timing) -> Cost:
    """ag::attention_projection: PIPELINE over tokens, every product of one token unrolled (as Dense latency)."""
    nz = len(p.weights_raw)
    dsp, lut, t_mul = products(p.weights_raw, nz, p.x_w, p.w_w, constant=True)
    fan_in = max(math.ceil(nz / max(p.n_out, 1)), 1)
    t_sel = 0.0 if unrolled else t_mux(p.tokens)  # x[s * n_in + i]: a mux over the tokens
    body = Cost(delay_ns=t_sel + t_mul + tree_depth(fan_in + 1) * t_add(p.acc_w), dsp=dsp,
                lut=lut + nz * p.acc_w + (0 if unrolled else p.n_in * p.x_w * math.ceil(p.tokens / 4)),
                ff=p.n_out * p.out_w)
    return _looped(body, p.tokens, unrolled, timing)


@dataclass(frozen=True)
class SoftmaxTypes:
    """Widths and table sizes of ag::softmax (the arguments of estimate_model.softmax after rows and n)."""

    x_w: int
    t_w: int
    log2e_w: int
    exp_entries: int
    exp_w: int
    result_w: int
    sum_w: int
    recip_entries: int
    recip_w: int

    def cost(self, rows: int, n: int, timing: Timing) -> Cost:
        return softmax(rows, n, self.x_w, self.t_w, self.log2e_w, self.exp_entries, self.exp_w, self.result_w,
                       self.sum_w, self.recip_entries, self.recip_w, timing)


@dataclass(frozen=True)
class Attention:
    """The shapes and widths of one generated ag::multihead_attention."""

    seq_q: int
    seq_kv: int
    heads: int
    head_dim: int
    q: Projection
    k: Projection
    v: Projection
    out: Projection
    q_w: int
    k_w: int
    v_w: int
    scores_acc_w: int
    scale_pre_w: int
    scale_raw: int
    scale_w: int
    logits_w: int
    softmax: SoftmaxTypes
    probs_w: int
    pv_acc_w: int
    heads_w: int
    mask_w: int = 0  # an additive mask's sum width (masked_t); 0 without a mask
    causal: bool = False


def attention_core(a: Attention, unrolled: bool, timing: Timing) -> Cost:
    """One query token (the pipelined s loop), heads unrolled: per head seq_kv dot products of head_dim, the
    constant scale, a row softmax over seq_kv, and head_dim dot products of seq_kv."""
    h, n, d = a.heads, a.seq_kv, a.head_dim
    s_dsp, s_lut, t_s = variable_product(a.q_w, a.k_w, h * n * d)
    c_dsp, c_lut, t_c = products(np.full(h * n, a.scale_raw), h * n, a.scale_pre_w, a.scale_w, constant=True)
    sm = a.softmax.cost(1, n, timing)
    p_dsp, p_lut, t_p = variable_product(a.probs_w, a.v_w, h * d * n)
    t_sel = 0.0 if unrolled else t_mux(a.seq_q)  # q[s * width + j]
    # an additive mask adds one saturating add per logit; causal masking a compare and select per key
    t_mask = (t_add(a.mask_w) if a.mask_w else 0.0) + (t_mux(2) if a.causal else 0.0)
    delay = (t_sel + t_s + tree_depth(d) * t_add(a.scores_acc_w) + t_add(a.scale_pre_w) + t_c + t_mask
             + sm.delay_ns + t_p + tree_depth(n) * t_add(a.pv_acc_w))
    lut = (s_lut + h * n * d * a.scores_acc_w + c_lut + h * n * a.logits_w + h * sm.lut + p_lut
           + h * d * n * a.pv_acc_w + (0 if unrolled else h * d * a.q_w * math.ceil(a.seq_q / 4))
           + h * n * (2 * a.mask_w + (a.softmax.exp_w + 8 if a.causal else 0)))
    body = Cost(delay_ns=delay, cycles=sm.cycles, dsp=s_dsp + c_dsp + h * sm.dsp + p_dsp, lut=lut,
                ff=h * (sm.ff + d * a.heads_w), bram18=h * sm.bram18,
                notes=[f"{h * n * d} Q.K and {h * d * n} P.V multipliers per query", *sm.notes])
    return _looped(body, a.seq_q, unrolled, timing)


def attention(a: Attention, unrolled: bool, timing: Timing) -> Cost:
    """ag::multihead_attention: the Q, K, V projections, the per-query loop, the output projection.

    Looped (DATAFLOW top): the projection loop (Q, K and V of a token per iteration for self-attention; else Q's
    loop and a K/V one), the per-query loop and the output projection run one after the other inside the process;
    the output projection's path is the kernel's `delay_ns`, everything before it `cycles`. Unrolled (PIPELINE
    top): Q, K and V are computed side by side, then the core and the output projection chain combinationally."""
    parts = {"Q": projection(a.q, unrolled, timing), "K": projection(a.k, unrolled, timing),
             "V": projection(a.v, unrolled, timing), "attention": attention_core(a, unrolled, timing),
             "output": projection(a.out, unrolled, timing)}
    total = Cost(notes=[])
    for name, c in parts.items():
        total.dsp += c.dsp
        total.lut += c.lut
        total.ff += c.ff
        total.bram18 += c.bram18
        total.notes.append(f"{name}: {c.dsp} DSP")
    total.notes += parts["attention"].notes
    out = parts["output"]
    if unrolled:
        qkv = max(parts[k].delay_ns for k in "QKV")
        total.delay_ns = qkv + parts["attention"].delay_ns + out.delay_ns
        total.cycles = parts["attention"].cycles
    else:  # K and V share a loop, and Q joins it when the queries are the keys' tokens (ag::attention_qkv)
        together = ("Q", "K", "V") if a.seq_q == a.seq_kv else ("K", "V")
        merged = Cost(delay_ns=max(parts[k].delay_ns for k in together), cycles=max(parts[k].cycles for k in together))
        loops = [merged, parts["attention"]] + ([] if a.seq_q == a.seq_kv else [parts["Q"]])
        total.delay_ns = out.delay_ns
        total.cycles = sum(_loop_cycles(c, timing) for c in loops) + out.cycles
        total.notes.append(f"{', '.join(together)} in one loop; then the attention and output loops")
    total.ii = 1 if unrolled else total.cycles + max(timing.stages(total.delay_ns), 1) + LOOP_OVERHEAD
    return total


def attention_stream_depths(a: Attention, timing: Timing) -> tuple[int, int]:
    """ag::multihead_attention_stream (io stream, self-attention): the pipeline depth of its token loop (Q, K and
    V of the token just read) and of its query loop (that query's heads and output projection, then the write)."""
    parts = [projection(p, False, timing) for p in (a.q, a.k, a.v)]
    core, out = attention_core(a, False, timing), projection(a.out, False, timing)
    d_in = max(_loop_cycles(c, timing) - (a.seq_kv - 1) for c in parts)
    d_out = (core.cycles - (a.seq_q - 1)) + (out.cycles - (a.seq_q - 1)) + \
        max(timing.stages(core.delay_ns + out.delay_ns), 1) + LOOP_OVERHEAD
    return max(d_in, 1), max(d_out, 1)


@dataclass(frozen=True)
class LayerNorm:
    """The shapes and widths of one generated ag::layernorm (names as its CONFIG types)."""

    rows: int
    n: int
    x_w: int
    sum_w: int
    mean_pre_w: int
    mean_scale_raw: int
    mean_scale_w: int
    mean_w: int
    diff_w: int
    squares_w: int
    var_pre_w: int
    var_scale_raw: int
    var_scale_w: int
    v_w: int
    table_entries: int
    rsqrt_w: int
    norm_w: int
    shift_range: int
    gamma_raw: np.ndarray  # nonzero gamma as raw integers (constants: +-2**k are shifts)
    gamma_w: int
    out_w: int


def layernorm(c: LayerNorm, unrolled: bool, timing: Timing) -> Cost:
    """One row per pipelined iteration: sum tree, 1/n scale, n differences, n squares and their tree, 1/n scale,
    + epsilon, leading-one search and normalising shift, rsqrt table read, n products d * rsqrt, the 2**-h
    shift, n constant gamma products and the beta add."""
    n = c.n
    _, m_lut, t_mean = products(np.array([c.mean_scale_raw]), 1, c.mean_pre_w, c.mean_scale_w, constant=True)
    _, v_lut, t_var = products(np.array([c.var_scale_raw]), 1, c.var_pre_w, c.var_scale_w, constant=True)
    sq_dsp, sq_lut, t_sq = variable_product(c.diff_w, c.diff_w, n)
    nm_dsp, nm_lut, t_nm = variable_product(c.diff_w, c.rsqrt_w, n)
    g_dsp, g_lut, t_g = products(c.gamma_raw, len(c.gamma_raw), c.norm_w, c.gamma_w, constant=True)
    t_g = t_g if len(c.gamma_raw) else 0.0
    bram, rom_lut, rom_cycles, t_rom = rom(c.table_entries, c.rsqrt_w, 1, timing)
    mean_dsp = dsp_per_product(c.mean_pre_w, c.mean_scale_w) if not _is_shift(c.mean_scale_raw) else 0
    var_dsp = dsp_per_product(c.var_pre_w, c.var_scale_w) if not _is_shift(c.var_scale_raw) else 0
    t_sel = 0.0 if unrolled else t_mux(c.rows)
    delay = (t_sel + tree_depth(n) * t_add(c.sum_w) + t_mean + t_add(c.diff_w) + t_sq
             + tree_depth(n) * t_add(c.squares_w) + t_var + t_add(c.v_w) + 2 * t_mux(c.v_w) + t_rom + t_nm
             + t_mux(c.shift_range) + t_g + t_add(c.out_w))
    lut = (n * c.sum_w + m_lut + n * c.diff_w + sq_lut + n * c.squares_w + v_lut + c.v_w * 4 + rom_lut + nm_lut
           + n * c.norm_w * math.ceil(c.shift_range / 4) + g_lut + n * c.out_w
           + (0 if unrolled else n * c.x_w * math.ceil(c.rows / 4)))
    body = Cost(delay_ns=delay, cycles=rom_cycles, dsp=sq_dsp + nm_dsp + g_dsp + mean_dsp + var_dsp, lut=lut,
                ff=n * (c.diff_w + c.out_w) + c.v_w, bram18=bram,
                notes=[(f"{n} squares, {n} d*rsqrt and {len(c.gamma_raw)} gamma products per row, rsqrt table "
                        f"{c.table_entries} ({'BRAM' if bram else 'LUT ROM'})")])
    return _looped(body, c.rows, unrolled, timing)


def _is_shift(raw: int) -> bool:
    raw = abs(int(raw))
    return raw != 0 and raw & (raw - 1) == 0


def gelu(n: int, x_w: int, floor_w: int, entries: int, out_w: int, timing: Timing) -> Cost:
    """ag::gelu: n elements side by side (UNROLL, no loop left): the index x * 2**f is wires, the offset
    subtraction and the two range compares, one table read per element, a 3:1 select (0, entry, x)."""
    bram, rom_lut, cycles, t_rom = rom(entries, out_w, n, timing)
    delay = 2 * t_add(floor_w) + t_rom + t_mux(3)
    return Cost(delay_ns=delay, cycles=cycles, lut=rom_lut + n * (3 * floor_w + 2 * out_w), bram18=bram,
                ff=0, notes=[f"table {entries}x{out_w} bit, {'BRAM' if bram else 'LUT ROM'}, {n} readers"])


def projection_resource(p: Projection, reuse: int, timing: Timing) -> Cost:
    """ag::attention_projection_resource: L = ceil(n_in n_out / R) multipliers, C = ceil(n_in n_out / L) cycles a
    token (the loop over tokens is not pipelined). Product k is multiplier k % L's in cycle k / L: a cycle reads a
    window of ceil(L / n_out) (+1 unless aligned) consecutive inputs, each a mux over the cycles; accumulator j
    sums ceil(L / n_out) products a cycle from the multipliers l = (j - r L) mod n_out < L, which are the same ones
    every cycle when L divides n_out or n_out divides L (otherwise a mux over the distinct ones); the weights are
    a ROM of C words of L weights (zeros included)."""
    total = p.n_in * p.n_out
    lanes, cycles = reuse_split(total, reuse)
    aligned = lanes % p.n_out == 0 or p.n_out % lanes == 0
    x_reads = math.ceil(lanes / p.n_out) + (0 if aligned else 1)
    x_cands = min(cycles, p.n_in)
    per_acc = math.ceil(lanes / p.n_out)
    phases = p.n_out // math.gcd(lanes, p.n_out)
    acc_cands = 1 if aligned else max(1, math.ceil(min(cycles, phases) * min(lanes, p.n_out) / p.n_out))
    dsp, mul_lut, t_mul = variable_product(p.x_w, p.w_w, lanes)
    bram, rom_lut, _, _ = rom(cycles, p.w_w * lanes, 1, timing)
    lut = (mul_lut + rom_lut + p.n_out * per_acc * p.acc_w * (1 + (math.ceil(acc_cands / 4) if acc_cands > 1 else 0))
           + (x_reads * p.x_w * math.ceil(x_cands / 4) if x_cands > 1 else 0))
    delay = t_mux(x_cands) + t_mul + t_mux(acc_cands) + tree_depth(per_acc + 1) * t_add(p.acc_w)
    body = cycles + max(timing.stages(delay), 1) + 1  # the reuse loop, its drain, the next token's reset
    return Cost(delay_ns=delay, cycles=p.tokens * body - max(timing.stages(delay), 1) - 1, ii=p.tokens * body,
                dsp=dsp, lut=lut, ff=p.n_out * p.acc_w + lanes * (p.x_w + p.w_w), bram18=bram,
                notes=[f"{lanes} multipliers x {cycles} cycles"])


def _memory(entries: int, width: int, banks: int, timing: Timing) -> tuple[int, int]:
    """(BRAM18, LUT) of an array of `entries` words split into `banks` cyclic banks, one access each per cycle."""
    bram, lut, _, _ = rom(math.ceil(entries / banks), width, 1, timing)
    return banks * bram, banks * lut


def attention_resource(a: Attention, reuse: int, timing: Timing) -> Cost:
    """ag::multihead_attention_resource (strategy resource, reuse factor R): the four projections
    (projection_resource, about R cycles a token); per query (a loop that
    is not pipelined), Q.K in scores_cycles cycles of U_s whole dot products of D, the heads through one row of
    scale, mask and softmax (a loop pipelined at II=1 over H), and P.V in pv_cycles cycles of U_p dot products of
    Skv. Everything runs one stage after the other inside the process."""
    h, n, d = a.heads, a.seq_kv, a.head_dim
    shape = AttentionShape(a.seq_q, a.q.n_in, n, a.k.n_in, h, d, a.out.n_out)
    split = shape.resource_split(reuse)
    parts = {name: projection_resource(p, reuse, timing)
             for name, p in (("Q", a.q), ("K", a.k), ("V", a.v), ("output", a.out))}
    s_mul, s_cycles = split["scores"]
    p_mul, p_cycles = split["pv"]
    # Q.K: each unit picks its head's D values of the query row (a mux over the heads it meets) and reads one K
    # bank per multiplier; a D-input adder tree per unit
    s_heads = min(h, s_cycles)
    s_dsp, s_lut, t_s = variable_product(a.q_w, a.k_w, s_mul)
    qk_delay = t_mux(s_heads) + t_s + tree_depth(d) * t_add(a.scores_acc_w)
    qk = Cost(delay_ns=qk_delay, cycles=s_cycles - 1 + max(timing.stages(qk_delay), 1) + 1, dsp=s_dsp,
              lut=s_lut + s_mul * a.scores_acc_w + (s_mul * a.q_w * math.ceil(s_heads / 4) if s_heads > 1 else 0),
              ff=h * n * a.scores_acc_w)
    # one head's row per iteration: read its Skv scores (a mux over the heads), scale, mask, row softmax
    sm = a.softmax.cost(1, n, timing)
    c_dsp, c_lut, t_c = products(np.full(n, a.scale_raw), n, a.scale_pre_w, a.scale_w, constant=True)
    t_mask = (t_add(a.mask_w) if a.mask_w else 0.0) + (t_mux(2) if a.causal else 0.0)
    row_delay = t_mux(h) + t_add(a.scale_pre_w) + t_c + t_mask + sm.delay_ns
    rows = Cost(delay_ns=row_delay, cycles=h - 1 + max(timing.stages(row_delay), 1) + sm.cycles + 1,
                dsp=c_dsp + sm.dsp, bram18=sm.bram18, ff=sm.ff + h * n * a.probs_w,
                lut=(c_lut + sm.lut + n * a.scores_acc_w * math.ceil(h / 4) + n * a.logits_w
                     + n * (2 * a.mask_w + (a.softmax.exp_w + 8 if a.causal else 0))))
    # P.V: each unit picks its output's head row of probabilities and reads Skv banks of the transposed V
    p_heads = min(h, p_cycles)
    p_dsp, p_lut, t_p = variable_product(a.probs_w, a.v_w, p_mul)
    pv_delay = t_mux(p_heads) + t_p + tree_depth(n) * t_add(a.pv_acc_w)
    pv = Cost(delay_ns=pv_delay, cycles=p_cycles - 1 + max(timing.stages(pv_delay), 1) + 1, dsp=p_dsp,
              lut=p_lut + p_mul * a.pv_acc_w + (p_mul * a.probs_w * math.ceil(p_heads / 4) if p_heads > 1 else 0))
    per_query = qk.cycles + rows.cycles + pv.cycles + LOOP_OVERHEAD
    width = h * d
    k_bram, k_lut = _memory(n * width, a.k_w, s_mul, timing)
    v_bram, v_lut = _memory(n * width, a.v_w, p_mul, timing)
    q_bram, q_lut = _memory(a.seq_q * width, a.q_w, width, timing)  # a query's row at once
    heads_bram, heads_lut = _memory(a.seq_q * width, a.heads_w, p_mul // n, timing)
    total = Cost(notes=[])
    for name, c in parts.items():
        total.dsp, total.lut, total.ff, total.bram18 = (total.dsp + c.dsp, total.lut + c.lut, total.ff + c.ff,
                                                        total.bram18 + c.bram18)
        total.notes.append(f"{name}: {c.dsp} DSP ({c.notes[0]} a token)")
    for c in (qk, rows, pv):
        total.dsp, total.lut, total.ff, total.bram18 = (total.dsp + c.dsp, total.lut + c.lut, total.ff + c.ff,
                                                        total.bram18 + c.bram18)
    total.lut += k_lut + v_lut + q_lut + heads_lut + width * a.q_w
    total.bram18 += k_bram + v_bram + q_bram + heads_bram
    total.ff += width * a.q_w
    total.notes += [f"Q.K: {s_mul // d} dot products of {d} a cycle ({s_dsp} DSP) x {s_cycles} cycles a query",
                    f"P.V: {p_mul // n} dot products of {n} a cycle ({p_dsp} DSP) x {p_cycles} cycles a query",
                    f"heads through one softmax row ({rows.dsp} DSP), {h} cycles a query", *sm.notes]
    out = parts["output"]
    total.delay_ns = out.delay_ns
    total.cycles = (sum(_loop_cycles(parts[k], timing) for k in "QKV") + a.seq_q * per_query + LOOP_OVERHEAD
                    + out.cycles)
    total.ii = total.cycles + max(timing.stages(total.delay_ns), 1) + LOOP_OVERHEAD
    total.notes.append("Q, K, V projections, the query loop and the output projection run one after the other")
    return total
