// accelgen HLS kernels: multi-head self- or cross-attention (batch 1), bit for bit as accelgen's fixed-point
// MultiHeadAttention (accelgen/ir/ops/attention.py, compute_fixed):
//   Q = x_q Wq + bq, K = x_kv Wk + bk, V = x_kv Wv + bv     exact (*_accum_t), rounded to q_t, k_t, v_t
//   per head h and query s: scores = Q_h[s] . K_h[t]         exact (scores_accum_t)
//   logits = scores * scale                                   scores first rounded to scale_pre_t, the product
//                                                             rounded to logits_t
//   masked = logits + mask[h, s, t]                           rounded (saturating) to masked_t; without a mask the
//                                                             generator passes one 0 and masked_t = logits_t
//   probs = softmax(masked)                                   ag::softmax_row (same CONFIG), rounded to probs_t;
//                                                             causal: only keys t <= s take part
//   heads[s, h] = probs . V_h                                 exact (pv_accum_t), rounded to heads_t
//   y = heads Wo + bo                                         exact (out_accum_t), rounded to the output type
// Weights are row-major [in][out] as in the graph. Every accumulator is exact, so any summation order gives the
// same bits: the resource form below (multihead_attention_resource) time-multiplexes the same sums.
#ifndef AG_ATTENTION_H_
#define AG_ATTENTION_H_

#include "ag_common.h"
#include "ag_softmax.h"

namespace ag {

// y[s][j] = b[j] + sum_i x[s][i] * w[i][j], exact in ACCUM, rounded by the assignment to Y.
template <unsigned S, unsigned N_IN, unsigned N_OUT, class ACCUM, class X, class W, class B, class Y>
void attention_projection(const X x[S * N_IN], const W w[N_IN * N_OUT], const B b[N_OUT], Y y[S * N_OUT]) {
    for (unsigned s = 0; s < S; s++) {
#pragma HLS PIPELINE II = 1
        for (unsigned j = 0; j < N_OUT; j++) {
            ACCUM acc = b[j];
            for (unsigned i = 0; i < N_IN; i++) {
                acc += x[s * N_IN + i] * w[i * N_OUT + j];
            }
            y[s * N_OUT + j] = acc;
        }
    }
}

// The K and V projections of one token per iteration, and Q too when `WITH_Q` (self-attention: the same tokens):
// one pipelined loop instead of two or three one after another, so the projections' multipliers (as many as
// before) work side by side and the loop takes a third of the cycles.
// K and V (and Q when WITH_Q) of token s from its input rows x_q_row and x_kv_row.
template <class CONFIG, bool WITH_Q, class XQ, class XKV, class WQ, class WK, class WV, class BQ, class BK, class BV>
void attention_qkv_row(const XQ x_q_row[CONFIG::embed_q], const XKV x_kv_row[CONFIG::embed_kv],
                       const WQ w_q[CONFIG::embed_q * CONFIG::width], const WK w_k[CONFIG::embed_kv * CONFIG::width],
                       const WV w_v[CONFIG::embed_kv * CONFIG::width], const BQ b_q[CONFIG::width],
                       const BK b_k[CONFIG::width], const BV b_v[CONFIG::width], const unsigned s,
                       typename CONFIG::q_t q[CONFIG::seq_q * CONFIG::width],
                       typename CONFIG::k_t k[CONFIG::seq_kv * CONFIG::width],
                       typename CONFIG::v_t v[CONFIG::seq_kv * CONFIG::width]) {
    for (unsigned j = 0; j < CONFIG::width; j++) {
        typename CONFIG::k_accum_t acc_k = b_k[j];
        typename CONFIG::v_accum_t acc_v = b_v[j];
        for (unsigned i = 0; i < CONFIG::embed_kv; i++) {
            acc_k += x_kv_row[i] * w_k[i * CONFIG::width + j];
            acc_v += x_kv_row[i] * w_v[i * CONFIG::width + j];
        }
        k[s * CONFIG::width + j] = acc_k;
        v[s * CONFIG::width + j] = acc_v;
        if (WITH_Q) {
            typename CONFIG::q_accum_t acc_q = b_q[j];
            for (unsigned i = 0; i < CONFIG::embed_q; i++) {
                acc_q += x_q_row[i] * w_q[i * CONFIG::width + j];
            }
            q[s * CONFIG::width + j] = acc_q;
        }
    }
}

// The K and V projections of one token per iteration, and Q too when `WITH_Q` (self-attention: the same tokens):
// one pipelined loop instead of two or three one after another, so the projections' multipliers (as many as
// before) work side by side and the loop takes a third of the cycles.
template <class CONFIG, bool WITH_Q, class XQ, class XKV, class WQ, class WK, class WV, class BQ, class BK, class BV>
void attention_qkv(const XQ x_q[CONFIG::seq_q * CONFIG::embed_q], const XKV x_kv[CONFIG::seq_kv * CONFIG::embed_kv],
                   const WQ w_q[CONFIG::embed_q * CONFIG::width], const WK w_k[CONFIG::embed_kv * CONFIG::width],
                   const WV w_v[CONFIG::embed_kv * CONFIG::width], const BQ b_q[CONFIG::width],
                   const BK b_k[CONFIG::width], const BV b_v[CONFIG::width],
                   typename CONFIG::q_t q[CONFIG::seq_q * CONFIG::width],
                   typename CONFIG::k_t k[CONFIG::seq_kv * CONFIG::width],
                   typename CONFIG::v_t v[CONFIG::seq_kv * CONFIG::width]) {
    for (unsigned s = 0; s < CONFIG::seq_kv; s++) {
#pragma HLS PIPELINE II = 1
        XQ x_q_row[CONFIG::embed_q];
        XKV x_kv_row[CONFIG::embed_kv];
#pragma HLS ARRAY_PARTITION variable = x_q_row complete
#pragma HLS ARRAY_PARTITION variable = x_kv_row complete
        for (unsigned i = 0; i < CONFIG::embed_kv; i++) {
            x_kv_row[i] = x_kv[s * CONFIG::embed_kv + i];
        }
        for (unsigned i = 0; i < CONFIG::embed_q; i++) {
            x_q_row[i] = WITH_Q ? x_q[s * CONFIG::embed_q + i] : XQ(0);
        }
        attention_qkv_row<CONFIG, WITH_Q>(x_q_row, x_kv_row, w_q, w_k, w_v, b_q, b_k, b_v, s, q, k, v);
    }
}

// Query s against every key, all heads: scores, scale, mask, softmax and P.V into heads_row (the heads side by side).
template <class CONFIG, class M>
void attention_query(const typename CONFIG::q_t q[CONFIG::seq_q * CONFIG::width],
                     const typename CONFIG::k_t k[CONFIG::seq_kv * CONFIG::width],
                     const typename CONFIG::v_t v[CONFIG::seq_kv * CONFIG::width], const M mask[CONFIG::mask_size],
                     const unsigned s, typename CONFIG::heads_t heads_row[CONFIG::width],
                     const typename CONFIG::exp_entry_t exp_table[1 << CONFIG::exp_bits],
                     const typename CONFIG::recip_entry_t recip_table[1 << CONFIG::recip_bits],
                     const typename CONFIG::log2e_t log2e, const typename CONFIG::scale_t scale) {
    for (unsigned h = 0; h < CONFIG::heads; h++) {
#pragma HLS UNROLL
        typename CONFIG::masked_t logits[CONFIG::seq_kv];
        typename CONFIG::probs_t probs[CONFIG::seq_kv];
#pragma HLS ARRAY_PARTITION variable = logits complete
#pragma HLS ARRAY_PARTITION variable = probs complete
        for (unsigned t = 0; t < CONFIG::seq_kv; t++) {
            typename CONFIG::scores_accum_t acc = 0;
            for (unsigned d = 0; d < CONFIG::head_dim; d++) {
                const unsigned j = h * CONFIG::head_dim + d;
                acc += q[s * CONFIG::width + j] * k[t * CONFIG::width + j];
            }
            const typename CONFIG::scale_pre_t scores = acc;
            const typename CONFIG::logits_t scaled = scores * scale;
            logits[t] = scaled + mask[h * CONFIG::mask_h_stride + s * CONFIG::mask_s_stride + t * CONFIG::mask_t_stride];
        }
        const unsigned valid = CONFIG::causal && s + 1 < CONFIG::seq_kv ? s + 1 : CONFIG::seq_kv;
        softmax_row<CONFIG>(logits, probs, 0, valid, exp_table, recip_table, log2e);  // rows = 1, n = seq_kv
        for (unsigned d = 0; d < CONFIG::head_dim; d++) {
            const unsigned j = h * CONFIG::head_dim + d;
            typename CONFIG::pv_accum_t acc = 0;
            for (unsigned t = 0; t < CONFIG::seq_kv; t++) {
                acc += probs[t] * v[t * CONFIG::width + j];
            }
            heads_row[j] = acc;
        }
    }
}

// Q, K and V: all three in one loop when the queries are the keys' tokens (qkv_together), else Q's loop, then K
// and V in one.
template <class CONFIG, bool TOGETHER> struct qkv_projections {
    template <class XQ, class XKV, class WQ, class WK, class WV, class BQ, class BK, class BV, class Q, class K,
              class V>
    static void run(const XQ x_q[], const XKV x_kv[], const WQ w_q[], const WK w_k[], const WV w_v[], const BQ b_q[],
                    const BK b_k[], const BV b_v[], Q q[], K k[], V v[]) {
        attention_qkv<CONFIG, true>(x_q, x_kv, w_q, w_k, w_v, b_q, b_k, b_v, q, k, v);
    }
};

template <class CONFIG> struct qkv_projections<CONFIG, false> {
    template <class XQ, class XKV, class WQ, class WK, class WV, class BQ, class BK, class BV, class Q, class K,
              class V>
    static void run(const XQ x_q[], const XKV x_kv[], const WQ w_q[], const WK w_k[], const WV w_v[], const BQ b_q[],
                    const BK b_k[], const BV b_v[], Q q[], K k[], V v[]) {
        attention_projection<CONFIG::seq_q, CONFIG::embed_q, CONFIG::width, typename CONFIG::q_accum_t>(x_q, w_q,
                                                                                                        b_q, q);
        attention_qkv<CONFIG, false>(x_q, x_kv, w_q, w_k, w_v, b_q, b_k, b_v, q, k, v);
    }
};

template <class CONFIG, class XQ, class XKV, class Y, class WQ, class WK, class WV, class BQ, class BK, class BV,
          class WO, class BO, class M>
void multihead_attention(const XQ x_q[CONFIG::seq_q * CONFIG::embed_q],
                         const XKV x_kv[CONFIG::seq_kv * CONFIG::embed_kv], const M mask[CONFIG::mask_size],
                         Y y[CONFIG::seq_q * CONFIG::embed_out], const WQ w_q[CONFIG::embed_q * CONFIG::width],
                         const WK w_k[CONFIG::embed_kv * CONFIG::width],
                         const WV w_v[CONFIG::embed_kv * CONFIG::width], const BQ b_q[CONFIG::width],
                         const BK b_k[CONFIG::width], const BV b_v[CONFIG::width],
                         const WO w_o[CONFIG::width * CONFIG::embed_out], const BO b_o[CONFIG::embed_out],
                         const typename CONFIG::exp_entry_t exp_table[1 << CONFIG::exp_bits],
                         const typename CONFIG::recip_entry_t recip_table[1 << CONFIG::recip_bits],
                         const typename CONFIG::log2e_t log2e, const typename CONFIG::scale_t scale) {
    typename CONFIG::q_t q[CONFIG::seq_q * CONFIG::width];
    typename CONFIG::k_t k[CONFIG::seq_kv * CONFIG::width];
    typename CONFIG::v_t v[CONFIG::seq_kv * CONFIG::width];
    typename CONFIG::heads_t heads[CONFIG::seq_q * CONFIG::width];
#pragma HLS ARRAY_PARTITION variable = q complete
#pragma HLS ARRAY_PARTITION variable = k complete
#pragma HLS ARRAY_PARTITION variable = v complete
#pragma HLS ARRAY_PARTITION variable = heads complete
    qkv_projections<CONFIG, (CONFIG::qkv_together != 0)>::run(x_q, x_kv, w_q, w_k, w_v, b_q, b_k, b_v, q, k, v);
    for (unsigned s = 0; s < CONFIG::seq_q; s++) {
#pragma HLS PIPELINE II = 1
        typename CONFIG::heads_t row[CONFIG::width];
#pragma HLS ARRAY_PARTITION variable = row complete
        attention_query<CONFIG>(q, k, v, mask, s, row, exp_table, recip_table, log2e, scale);
        for (unsigned j = 0; j < CONFIG::width; j++) {
            heads[s * CONFIG::width + j] = row[j];
        }
    }
    attention_projection<CONFIG::seq_q, CONFIG::width, CONFIG::embed_out, typename CONFIG::out_accum_t>(heads, w_o,
                                                                                                         b_o, y);
}

// Resource form of attention_projection: LANES multipliers over CYCLES cycles a token. Product k (row-major like
// w: input k / N_OUT, output k % N_OUT) is multiplier k % LANES's in cycle k / LANES, so each cycle reads a window
// of consecutive inputs, and when LANES divides N_OUT (or N_OUT divides LANES) every accumulator is fed by the same
// multipliers in every cycle (no crossbar). LANES * CYCLES exceeds N_IN * N_OUT by less than LANES (those lanes
// idle). TRANSPOSED writes y[j][s] instead of y[s][j].
template <unsigned S, unsigned N_IN, unsigned N_OUT, unsigned CYCLES, unsigned LANES, class ACCUM,
          bool TRANSPOSED = false, class X, class W, class B, class Y>
void attention_projection_resource(const X x[S * N_IN], const W w[N_IN * N_OUT], const B b[N_OUT],
                                   Y y[S * N_OUT]) {
    const unsigned lanes = LANES;  // cycle r reads weights r * lanes .. + lanes - 1: one word of each bank
#pragma HLS ARRAY_RESHAPE variable = w cyclic factor = lanes
    for (unsigned s = 0; s < S; s++) {
        ACCUM acc[N_OUT];
#pragma HLS ARRAY_PARTITION variable = acc complete
        for (unsigned j = 0; j < N_OUT; j++) {
#pragma HLS UNROLL
            acc[j] = b[j];
        }
        for (unsigned r = 0; r < CYCLES; r++) {
#pragma HLS PIPELINE II = 1
            for (unsigned l = 0; l < LANES; l++) {
#pragma HLS UNROLL
                const unsigned k = r * lanes + l;
                if (k < N_IN * N_OUT) {
                    acc[k % N_OUT] += x[s * N_IN + k / N_OUT] * w[k];
                }
            }
        }
        for (unsigned j = 0; j < N_OUT; j++) {
#pragma HLS UNROLL
            y[TRANSPOSED ? j * S + s : s * N_OUT + j] = acc[j];
        }
    }
}

// Resource form (strategy resource, the layer's reuse factor R): the same arithmetic on shared multipliers.
// - The four projections run as attention_projection_resource: ceil(n_in n_out / R) multipliers each, over about
//   R cycles a token. V is stored transposed (v_t[j][t]) so P.V reads consecutive addresses.
// - Per query, Q.K is heads * seq_kv dot products of head_dim: scores_units = ceil(heads seq_kv / R) units of
//   head_dim multipliers compute score i = r * scores_units + u (i = t * heads + h) in cycle r; its Q and K
//   operands lie at i * head_dim + d, so cycle r reads one block of K (cyclic partition, no bank conflict).
// - The heads take turns through one row of scale, mask and softmax hardware.
// - P.V is width dot products of seq_kv: pv_units = ceil(width / R) units of seq_kv multipliers compute output
//   j = r * pv_units + u in cycle r.
// A dot product is summed within its cycle (an adder tree), so no accumulator is shared across cycles.
template <class CONFIG, class XQ, class XKV, class Y, class WQ, class WK, class WV, class BQ, class BK, class BV,
          class WO, class BO, class M>
void multihead_attention_resource(const XQ x_q[CONFIG::seq_q * CONFIG::embed_q],
                                  const XKV x_kv[CONFIG::seq_kv * CONFIG::embed_kv], const M mask[CONFIG::mask_size],
                                  Y y[CONFIG::seq_q * CONFIG::embed_out],
                                  const WQ w_q[CONFIG::embed_q * CONFIG::width],
                                  const WK w_k[CONFIG::embed_kv * CONFIG::width],
                                  const WV w_v[CONFIG::embed_kv * CONFIG::width], const BQ b_q[CONFIG::width],
                                  const BK b_k[CONFIG::width], const BV b_v[CONFIG::width],
                                  const WO w_o[CONFIG::width * CONFIG::embed_out], const BO b_o[CONFIG::embed_out],
                                  const typename CONFIG::exp_entry_t exp_table[1 << CONFIG::exp_bits],
                                  const typename CONFIG::recip_entry_t recip_table[1 << CONFIG::recip_bits],
                                  const typename CONFIG::log2e_t log2e, const typename CONFIG::scale_t scale) {
    const unsigned k_banks = CONFIG::scores_units * CONFIG::head_dim;  // pragma arguments must be plain names
    const unsigned v_banks = CONFIG::pv_units * CONFIG::seq_kv;
    const unsigned q_banks = CONFIG::width;  // a query's row is read at once
    const unsigned heads_banks = CONFIG::pv_units;  // P.V writes pv_units consecutive outputs a cycle
    typename CONFIG::q_t q[CONFIG::seq_q * CONFIG::width];
    typename CONFIG::k_t k[CONFIG::seq_kv * CONFIG::width];
    typename CONFIG::v_t v_t[CONFIG::width * CONFIG::seq_kv];
    typename CONFIG::heads_t heads[CONFIG::seq_q * CONFIG::width];
#pragma HLS ARRAY_PARTITION variable = k cyclic factor = k_banks
#pragma HLS ARRAY_PARTITION variable = v_t cyclic factor = v_banks
#pragma HLS ARRAY_PARTITION variable = q cyclic factor = q_banks
#pragma HLS ARRAY_PARTITION variable = heads cyclic factor = heads_banks
    attention_projection_resource<CONFIG::seq_q, CONFIG::embed_q, CONFIG::width, CONFIG::q_cycles, CONFIG::q_lanes,
                                  typename CONFIG::q_accum_t>(x_q, w_q, b_q, q);
    attention_projection_resource<CONFIG::seq_kv, CONFIG::embed_kv, CONFIG::width, CONFIG::k_cycles,
                                  CONFIG::k_lanes, typename CONFIG::k_accum_t>(x_kv, w_k, b_k, k);
    attention_projection_resource<CONFIG::seq_kv, CONFIG::embed_kv, CONFIG::width, CONFIG::v_cycles,
                                  CONFIG::v_lanes, typename CONFIG::v_accum_t, true>(x_kv, w_v, b_v, v_t);
    for (unsigned s = 0; s < CONFIG::seq_q; s++) {
        typename CONFIG::q_t q_row[CONFIG::width];
        typename CONFIG::scores_accum_t scores[CONFIG::heads * CONFIG::seq_kv];
        typename CONFIG::probs_t probs[CONFIG::heads * CONFIG::seq_kv];
#pragma HLS ARRAY_PARTITION variable = q_row complete
#pragma HLS ARRAY_PARTITION variable = scores complete
#pragma HLS ARRAY_PARTITION variable = probs complete
        for (unsigned j = 0; j < CONFIG::width; j++) {
#pragma HLS UNROLL
            q_row[j] = q[s * q_banks + j];
        }
        for (unsigned r = 0; r < CONFIG::scores_cycles; r++) {
#pragma HLS PIPELINE II = 1
            for (unsigned u = 0; u < CONFIG::scores_units; u++) {
#pragma HLS UNROLL
                const unsigned i = r * CONFIG::scores_units + u;  // t * heads + h
                if (i < CONFIG::heads * CONFIG::seq_kv) {
                    typename CONFIG::scores_accum_t acc = 0;
                    for (unsigned d = 0; d < CONFIG::head_dim; d++) {
                        // k[i * head_dim + d]: bank u * head_dim + d
                        acc += q_row[i % CONFIG::heads * CONFIG::head_dim + d] *
                               k[r * k_banks + u * CONFIG::head_dim + d];
                    }
                    scores[i] = acc;
                }
            }
        }
        const unsigned valid = CONFIG::causal && s + 1 < CONFIG::seq_kv ? s + 1 : CONFIG::seq_kv;
        for (unsigned h = 0; h < CONFIG::heads; h++) {
#pragma HLS PIPELINE II = 1
            typename CONFIG::masked_t logits[CONFIG::seq_kv];
            typename CONFIG::probs_t row[CONFIG::seq_kv];
#pragma HLS ARRAY_PARTITION variable = logits complete
#pragma HLS ARRAY_PARTITION variable = row complete
            for (unsigned t = 0; t < CONFIG::seq_kv; t++) {
                const typename CONFIG::scale_pre_t rounded = scores[t * CONFIG::heads + h];
                const typename CONFIG::logits_t scaled = rounded * scale;
                logits[t] = scaled + mask[h * CONFIG::mask_h_stride + s * CONFIG::mask_s_stride +
                                          t * CONFIG::mask_t_stride];
            }
            softmax_row<CONFIG>(logits, row, 0, valid, exp_table, recip_table, log2e);  // rows = 1, n = CONFIG::seq_kv
            for (unsigned t = 0; t < CONFIG::seq_kv; t++) {
                probs[h * CONFIG::seq_kv + t] = row[t];
            }
        }
        for (unsigned r = 0; r < CONFIG::pv_cycles; r++) {
#pragma HLS PIPELINE II = 1
            for (unsigned u = 0; u < CONFIG::pv_units; u++) {
#pragma HLS UNROLL
                const unsigned j = r * CONFIG::pv_units + u;
                if (j < CONFIG::width) {
                    typename CONFIG::pv_accum_t acc = 0;
                    for (unsigned t = 0; t < CONFIG::seq_kv; t++) {
                        // v_t[j][t]: bank u * seq_kv + t
                        acc += probs[j / CONFIG::head_dim * CONFIG::seq_kv + t] *
                               v_t[r * v_banks + u * CONFIG::seq_kv + t];
                    }
                    heads[s * CONFIG::width + r * heads_banks + u] = acc;  // heads[s][j]
                }
            }
        }
    }
    attention_projection_resource<CONFIG::seq_q, CONFIG::width, CONFIG::embed_out, CONFIG::o_cycles,
                                  CONFIG::o_lanes, typename CONFIG::out_accum_t>(heads, w_o, b_o, y);
}

} // namespace ag

#endif
