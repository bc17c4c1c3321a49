// accelgen HLS kernels: softmax along the last axis, bit for bit as accelgen's fixed-point softmax
// (accelgen/ir/ops/fixed_math.py softmax_fixed):
//   d = x - max(x)                  rounded (saturating) to diff_t
//   t = d * log2(e)                 d first rounded to pre_t, the product rounded to t_t
//   exp(d) = exp_table[i] * 2**n    n = floor(t), i = the top index_bits bits of t - n; n clamped
//   e = exp(d)                      rounded to exp_t
//   s = sum(e)                      exact (sum_t)
//   1/s = recip_table[i] * 2**-p    s = m * 2**p, m in [1, 2); i = the recip_bits bits after the leading one
//   y = e * (1/s)                   exact, then rounded to the output type
// The tables are written by the generator from the same Python objects the interpreter uses.
#ifndef AG_SOFTMAX_H_
#define AG_SOFTMAX_H_

#include "ag_common.h"

namespace ag {

// floor(f * 2**BITS) for 0 <= f < 1: the top BITS fractional bits of f.
template <int BITS, class F> unsigned top_fraction_bits(const F &f) {
    const ap_ufixed<BITS, BITS, AP_TRN, AP_WRAP> scaled = f * ap_ufixed<1, BITS + 1>(1 << BITS);
    return scaled.to_uint();
}

// Row r of x (n entries), of which the first `valid` take part (causal attention: the keys up to the query); the
// others get probability 0, as accelgen's softmax_fixed with `keep`. valid >= 1.
template <class CONFIG, class X, class Y>
void softmax_row(const X x[CONFIG::rows * CONFIG::n], Y y[CONFIG::rows * CONFIG::n], const unsigned r,
                 const unsigned valid, const typename CONFIG::exp_entry_t exp_table[1 << CONFIG::exp_bits],
                 const typename CONFIG::recip_entry_t recip_table[1 << CONFIG::recip_bits],
                 const typename CONFIG::log2e_t log2e) {
    X row_max = x[r * CONFIG::n];
    for (unsigned k = 1; k < CONFIG::n; k++) {
        if (k < valid && x[r * CONFIG::n + k] > row_max) {
            row_max = x[r * CONFIG::n + k];
        }
    }
    typename CONFIG::exp_t e[CONFIG::n];
#pragma HLS ARRAY_PARTITION variable = e complete
    typename CONFIG::sum_t s = 0;
    for (unsigned k = 0; k < CONFIG::n; k++) {
        const typename CONFIG::diff_t d = x[r * CONFIG::n + k] - row_max;
        const typename CONFIG::pre_t dp = d;
        const typename CONFIG::t_t t = dp * log2e;
        const typename CONFIG::floor_t n_floor = t;  // AP_TRN to an integer type: floor
        const ap_ufixed<CONFIG::t_frac, 0> frac = t - n_floor;
        const unsigned i = top_fraction_bits<CONFIG::exp_bits>(frac);
        int n = n_floor.to_int();
        n = n < CONFIG::min_shift ? CONFIG::min_shift : (n > CONFIG::max_shift ? CONFIG::max_shift : n);
        if (k < valid) {
            e[k] = shift_exact<typename CONFIG::exp_wide_t>(exp_table[i], n);
        } else {
            e[k] = 0;
        }
        s += e[k];
    }
    if (s == 0) {
        s[0] = 1;  // one lsb: max(s, lsb) as in Python; unreachable while the row maximum gives exp(0) ~ 1
    }
    // leading-one normalisation of s: s = raw * 2**-sum_frac, the top set bit of raw at position `lead`
    const ap_uint<CONFIG::sum_width> raw = s.range(CONFIG::sum_width - 1, 0);
    int lead = 0;
    for (int b = 0; b < CONFIG::sum_width; b++) {
        if (raw[b]) {
            lead = b;
        }
    }
    ap_uint<CONFIG::sum_width + CONFIG::recip_bits> bits = raw;
    if (lead >= CONFIG::recip_bits) {
        bits >>= (lead - CONFIG::recip_bits);
    } else {
        bits <<= (CONFIG::recip_bits - lead);
    }
    const unsigned i = (bits & ((1u << CONFIG::recip_bits) - 1)).to_uint();
    const int exponent = lead - CONFIG::sum_frac;
    const typename CONFIG::recip_entry_t reciprocal = recip_table[i];
    for (unsigned k = 0; k < CONFIG::n; k++) {
        y[r * CONFIG::n + k] = shift_exact<typename CONFIG::out_wide_t>(e[k] * reciprocal, -exponent);
    }
}

template <class CONFIG, class X, class Y>
void softmax(const X x[CONFIG::rows * CONFIG::n], Y y[CONFIG::rows * CONFIG::n],
             const typename CONFIG::exp_entry_t exp_table[1 << CONFIG::exp_bits],
             const typename CONFIG::recip_entry_t recip_table[1 << CONFIG::recip_bits],
             const typename CONFIG::log2e_t log2e) {
    for (unsigned r = 0; r < CONFIG::rows; r++) {
#pragma HLS PIPELINE II = 1
        softmax_row<CONFIG>(x, y, r, CONFIG::n, exp_table, recip_table, log2e);
    }
}

} // namespace ag

#endif
