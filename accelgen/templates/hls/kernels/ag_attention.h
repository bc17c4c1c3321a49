// accelgen HLS kernels: multi-head self- or cross-attention (batch 1, no mask, not causal), bit for bit as
// accelgen's fixed-point MultiHeadAttention (accelgen/ir/ops/attention.py, compute_fixed):
//   Q = x_q Wq + bq, K = x_kv Wk + bk, V = x_kv Wv + bv     exact (*_accum_t), rounded to q_t, k_t, v_t
//   per head h and query s: scores = Q_h[s] . K_h[t]         exact (scores_accum_t)
//   logits = scores * scale                                   scores first rounded to scale_pre_t, the product
//                                                             rounded to logits_t
//   probs = softmax(logits)                                   ag::softmax (same CONFIG), rounded to probs_t
//   heads[s, h] = probs . V_h                                 exact (pv_accum_t), rounded to heads_t
//   y = heads Wo + bo                                         exact (out_accum_t), rounded to the output type
// Weights are row-major [in][out] as in the graph.
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

template <class CONFIG, class XQ, class XKV, class Y, class WQ, class WK, class WV, class BQ, class BK, class BV,
          class WO, class BO>
void multihead_attention(const XQ x_q[CONFIG::seq_q * CONFIG::embed_q],
                         const XKV x_kv[CONFIG::seq_kv * CONFIG::embed_kv],
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
    attention_projection<CONFIG::seq_q, CONFIG::embed_q, CONFIG::width, typename CONFIG::q_accum_t>(x_q, w_q, b_q, q);
    attention_projection<CONFIG::seq_kv, CONFIG::embed_kv, CONFIG::width, typename CONFIG::k_accum_t>(x_kv, w_k, b_k,
                                                                                                      k);
    attention_projection<CONFIG::seq_kv, CONFIG::embed_kv, CONFIG::width, typename CONFIG::v_accum_t>(x_kv, w_v, b_v,
                                                                                                      v);
    for (unsigned s = 0; s < CONFIG::seq_q; s++) {
#pragma HLS PIPELINE II = 1
        for (unsigned h = 0; h < CONFIG::heads; h++) {
#pragma HLS UNROLL
            typename CONFIG::logits_t logits[CONFIG::seq_kv];
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
                logits[t] = scores * scale;
            }
            softmax<CONFIG>(logits, probs, exp_table, recip_table, log2e);  // CONFIG::rows = 1, n = seq_kv
            for (unsigned d = 0; d < CONFIG::head_dim; d++) {
                const unsigned j = h * CONFIG::head_dim + d;
                typename CONFIG::pv_accum_t acc = 0;
                for (unsigned t = 0; t < CONFIG::seq_kv; t++) {
                    acc += probs[t] * v[t * CONFIG::width + j];
                }
                heads[s * CONFIG::width + j] = acc;
            }
        }
    }
    attention_projection<CONFIG::seq_q, CONFIG::width, CONFIG::embed_out, typename CONFIG::out_accum_t>(heads, w_o,
                                                                                                         b_o, y);
}

} // namespace ag

#endif
