// accelgen HLS kernels: the io stream design's self-attention (latency form): each token is taken from the input
// FIFO as it arrives and its Q, K and V rows computed in the same iteration, then each query's output row is
// written to the output FIFO as soon as its heads and output projection are done. The arithmetic is
// ag::multihead_attention's (attention_qkv_row, attention_query, the output projection), so the bits are the same;
// only the whole-tensor copies in and out are gone.
#ifndef AG_STREAM_ATTENTION_H_
#define AG_STREAM_ATTENTION_H_

#include "ag_attention.h"
#include "ag_stream.h"

namespace ag {

template <class CONFIG, class X, class Y, class WQ, class WK, class WV, class BQ, class BK, class BV, class WO,
          class BO, class M>
void multihead_attention_stream(hls::stream<frame<X, CONFIG::embed_q> > &in,
                                hls::stream<frame<Y, CONFIG::embed_out> > &out, const M mask[CONFIG::mask_size],
                                const WQ w_q[CONFIG::embed_q * CONFIG::width],
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
#pragma HLS ARRAY_PARTITION variable = q complete
#pragma HLS ARRAY_PARTITION variable = k complete
#pragma HLS ARRAY_PARTITION variable = v complete
    for (unsigned s = 0; s < CONFIG::seq_kv; s++) {  // one token in per iteration
#pragma HLS PIPELINE II = 1
        const frame<X, CONFIG::embed_q> token = in.read();
        X x_row[CONFIG::embed_q];
#pragma HLS ARRAY_PARTITION variable = x_row complete
        for (unsigned i = 0; i < CONFIG::embed_q; i++) {
            x_row[i] = token[i];
        }
        attention_qkv_row<CONFIG, true>(x_row, x_row, w_q, w_k, w_v, b_q, b_k, b_v, s, q, k, v);
    }
    for (unsigned s = 0; s < CONFIG::seq_q; s++) {  // one query's output out per iteration
#pragma HLS PIPELINE II = 1
        typename CONFIG::heads_t heads_row[CONFIG::width];
#pragma HLS ARRAY_PARTITION variable = heads_row complete
        attention_query<CONFIG>(q, k, v, mask, s, heads_row, exp_table, recip_table, log2e, scale);
        Y y_row[CONFIG::embed_out];
#pragma HLS ARRAY_PARTITION variable = y_row complete
        attention_projection<1, CONFIG::width, CONFIG::embed_out, typename CONFIG::out_accum_t>(heads_row, w_o, b_o,
                                                                                                 y_row);
        frame<Y, CONFIG::embed_out> y_frame;
        for (unsigned j = 0; j < CONFIG::embed_out; j++) {
            y_frame[j] = y_row[j];
        }
        out.write(y_frame);
    }
}

} // namespace ag

#endif
