// accelgen HLS kernels: layer normalization over the last n elements of each row, bit for bit as accelgen's
// fixed-point LayerNormalization (accelgen/ir/ops/normalization.py, compute_fixed):
//   s = sum(x)                      exact (sum_t)
//   mean = s * (1/n)                s first rounded to mean_pre_t, the product rounded to mean_t
//   d = x - mean                    exact (diff_t)
//   q = sum(d * d)                  exact (squares_t)
//   var = q * (1/n)                 q first rounded to var_pre_t, the product rounded to var_t
//   v = max(var + epsilon, lsb)     exact (v_t)
//   1/sqrt(v) = table[i] * 2**-h    v = m * 2**e, m in [1, 2); i = the table_bits bits after the leading one,
//                                   plus 2**table_bits when e is odd; h = floor(e / 2)
//   norm = d * (1/sqrt(v))          exact, then rounded to norm_t
//   y = norm * gamma + beta         exact, then rounded to the output type
// The rsqrt table is written by the generator from the same Python object the interpreter uses.
#ifndef AG_LAYERNORM_H_
#define AG_LAYERNORM_H_

#include "ag_common.h"

namespace ag {

template <class CONFIG, class X, class Y, class G, class B>
void layernorm(const X x[CONFIG::rows * CONFIG::n], Y y[CONFIG::rows * CONFIG::n], const G gamma[CONFIG::n],
               const B beta[CONFIG::n], const typename CONFIG::rsqrt_entry_t rsqrt_table[2 << CONFIG::table_bits],
               const typename CONFIG::mean_scale_t mean_scale, const typename CONFIG::var_scale_t var_scale,
               const typename CONFIG::var_t epsilon) {
    for (unsigned r = 0; r < CONFIG::rows; r++) {
#pragma HLS PIPELINE II = 1
        typename CONFIG::sum_t s = 0;
        for (unsigned k = 0; k < CONFIG::n; k++) {
            s += x[r * CONFIG::n + k];
        }
        const typename CONFIG::mean_pre_t s_pre = s;
        const typename CONFIG::mean_t mean = s_pre * mean_scale;
        typename CONFIG::diff_t d[CONFIG::n];
#pragma HLS ARRAY_PARTITION variable = d complete
        typename CONFIG::squares_t squares = 0;
        for (unsigned k = 0; k < CONFIG::n; k++) {
            d[k] = x[r * CONFIG::n + k] - mean;
            squares += d[k] * d[k];
        }
        const typename CONFIG::var_pre_t squares_pre = squares;
        const typename CONFIG::var_t var = squares_pre * var_scale;
        typename CONFIG::v_t v = var + epsilon;
        if (v == 0) {
            v[0] = 1;  // max(v, lsb of var_t): v_t has var_t's fractional bits
        }
        // leading-one normalisation of v: v = raw * 2**-v_frac, the top set bit of raw at position `lead`
        const ap_uint<CONFIG::v_width> raw = v.range(CONFIG::v_width - 1, 0);
        int lead = 0;
        for (int b = 0; b < CONFIG::v_width; b++) {
            if (raw[b]) {
                lead = b;
            }
        }
        ap_uint<CONFIG::v_width + CONFIG::table_bits> bits = raw;
        if (lead >= CONFIG::table_bits) {
            bits >>= (lead - CONFIG::table_bits);
        } else {
            bits <<= (CONFIG::table_bits - lead);
        }
        const int exponent = lead - CONFIG::v_frac;
        const int odd = exponent & 1;
        const int half = (exponent - odd) / 2;  // floor(exponent / 2)
        const unsigned i = (bits & ((1u << CONFIG::table_bits) - 1)).to_uint() + (odd << CONFIG::table_bits);
        const typename CONFIG::rsqrt_entry_t inv_std = rsqrt_table[i];
        for (unsigned k = 0; k < CONFIG::n; k++) {
            const typename CONFIG::norm_t norm = shift_exact<typename CONFIG::norm_wide_t>(d[k] * inv_std, -half);
            y[r * CONFIG::n + k] = norm * gamma[k] + beta[k];
        }
    }
}

} // namespace ag

#endif
