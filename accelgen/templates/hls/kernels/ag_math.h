// accelgen HLS kernels: MatMul between activations, Div, Reciprocal, Sqrt and Exp, bit for bit as the ops'
// compute_fixed (accelgen/ir/ops/linear.py, elementwise.py; tables from accelgen/ir/ops/fixed_math.py):
//   matmul        y = sum_k a[.., i, k] * b[.., k, j]      exact (accum_t), rounded to the output type
//   divide        a / b = a * (1/|b|) with the sign of b    1/|b| = table[i] * 2**-e, |b| = m * 2**e, m in [1, 2),
//                                                          i = the recip_bits bits after the leading one; the
//                                                          product and shift exact; a / 0 is what the output
//                                                          rounding makes of +-inf (0 / 0 is 0)
//   reciprocal    1 / x, as divide with a = 1
//   square_root   sqrt(x) = table[i + 2**bits * (e & 1)] * 2**floor(e / 2) for x > 0, else 0
//   exponential   exp(x) = table[top bits of t - floor(t)] * 2**floor(t), t = x * log2(e) rounded to t_t, the
//                 shift clamped (as softmax's exp)
// No kernel divides a fixed-point value: reciprocals and square roots are table entries and exact shifts, the
// tables written by the generator from the same Python objects the interpreter uses. Signed and unsigned values are
// never compared: both sides are first converted to a signed type.
#ifndef AG_MATH_H_
#define AG_MATH_H_

#include "ag_common.h"
#include "ag_softmax.h"

namespace ag {

// Batched numpy.matmul: output batch t multiplies a's batch a_batch[t] ([m, k]) by b's batch b_batch[t] ([k, n])
// (the generator resolved the broadcast batch dims into these tables). One output row per iteration.
template <class CONFIG, class A, class B, class Y, class I>
void matmul(const A a[CONFIG::a_size], const B b[CONFIG::b_size], Y y[CONFIG::batches * CONFIG::m * CONFIG::n],
            const I a_batch[CONFIG::batches], const I b_batch[CONFIG::batches]) {
    for (unsigned t = 0; t < CONFIG::batches; t++) {
        for (unsigned i = 0; i < CONFIG::m; i++) {
#pragma HLS PIPELINE II = 1
            const unsigned a_row = (a_batch[t] * CONFIG::m + i) * CONFIG::k;
            const unsigned b_base = b_batch[t] * CONFIG::k * CONFIG::n;
            for (unsigned j = 0; j < CONFIG::n; j++) {
                typename CONFIG::accum_t acc = 0;
                for (unsigned kk = 0; kk < CONFIG::k; kk++) {
                    acc += a[a_row + kk] * b[b_base + kk * CONFIG::n + j];
                }
                y[(t * CONFIG::m + i) * CONFIG::n + j] = acc;
            }
        }
    }
}

// The position of the top set bit of raw (a priority encoder); raw != 0.
template <int W> int leading_one(const ap_uint<W> &raw) {
    int lead = 0;
    for (int b = 0; b < W; b++) {
        if (raw[b]) {
            lead = b;
        }
    }
    return lead;
}

// The BITS bits of raw after its leading one at `lead`: floor((m - 1) * 2**BITS) for raw = m * 2**lead.
template <int BITS, int W> unsigned bits_after_lead(const ap_uint<W> &raw, const int lead) {
    ap_uint<W + BITS> bits = raw;
    if (lead >= BITS) {
        bits >>= (lead - BITS);
    } else {
        bits <<= (BITS - lead);
    }
    return (bits & ((1u << BITS) - 1)).to_uint();
}

// One quotient a / b (fixed_math.signed_reciprocal, then the product): CONFIG from layers_math._reciprocal_config.
template <class CONFIG, class A, class B, class Y>
void divide_one(const A &a, const B &b, Y &y, const typename CONFIG::recip_entry_t table[1 << CONFIG::recip_bits],
                const typename CONFIG::out_t pos_inf, const typename CONFIG::out_t neg_inf) {
    const typename CONFIG::num_t num = a;
    const typename CONFIG::den_t den = b;
    const bool negative = den < 0;
    typename CONFIG::mag_t mag = den;
    if (negative) {
        mag = -den;  // exact: mag_t has one integer bit more than den's magnitude needs
    }
    const ap_uint<CONFIG::mag_width> raw = mag.range(CONFIG::mag_width - 1, 0);
    if (raw == 0) {  // a * (+inf): saturates toward a's sign; 0 * inf (NaN in Python) is 0
        if (num > 0) {
            y = pos_inf;
        } else if (num < 0) {
            y = neg_inf;
        } else {
            y = 0;
        }
    } else {
        const int lead = leading_one<CONFIG::mag_width>(raw);
        const unsigned i = bits_after_lead<CONFIG::recip_bits, CONFIG::mag_width>(raw, lead);
        const int exponent = lead - CONFIG::mag_frac;
        typename CONFIG::prod_t p = num * table[i];
        if (negative) {
            p = -p;
        }
        y = shift_exact<typename CONFIG::wide_t>(p, -exponent);
    }
}

template <class CONFIG, unsigned N, class A, class B, class Y>
void divide(const A a[N], const B b[N], Y y[N], const typename CONFIG::recip_entry_t table[1 << CONFIG::recip_bits],
            const typename CONFIG::out_t pos_inf, const typename CONFIG::out_t neg_inf) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        divide_one<CONFIG>(a[i], b[i], y[i], table, pos_inf, neg_inf);
    }
}

// Broadcasting operands, read through the generator's index tables (wiring).
template <class CONFIG, unsigned N, unsigned NA, unsigned NB, class I, class A, class B, class Y>
void divide_broadcast(const A a[NA], const B b[NB], Y y[N], const I a_index[N], const I b_index[N],
                      const typename CONFIG::recip_entry_t table[1 << CONFIG::recip_bits],
                      const typename CONFIG::out_t pos_inf, const typename CONFIG::out_t neg_inf) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        divide_one<CONFIG>(a[a_index[i]], b[b_index[i]], y[i], table, pos_inf, neg_inf);
    }
}

template <class CONFIG, unsigned N, class X, class Y>
void reciprocal(const X x[N], Y y[N], const typename CONFIG::recip_entry_t table[1 << CONFIG::recip_bits],
                const typename CONFIG::out_t pos_inf, const typename CONFIG::out_t neg_inf) {
    const ap_ufixed<1, 1> one = 1;
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        divide_one<CONFIG>(one, x[i], y[i], table, pos_inf, neg_inf);
    }
}

// Div by a constant: x * q(1/b), x first rounded to pre_t (the generator's Rescale; pre_t is x's type when the
// product fits 53 bits), the product exact until the output's rounding.
template <class CONFIG, unsigned N, unsigned NX, class I, class X, class Y>
void scale_by(const X x[NX], Y y[N], const I x_index[N], const typename CONFIG::scale_t scale[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        const typename CONFIG::pre_t xp = x[x_index[i]];
        y[i] = xp * scale[i];
    }
}

template <class CONFIG, unsigned N, class X, class Y>
void square_root(const X x[N], Y y[N], const typename CONFIG::sqrt_entry_t table[2 << CONFIG::table_bits]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        const typename CONFIG::sx_t sx = x[i];
        if (sx <= 0) {
            y[i] = 0;
        } else {
            const typename CONFIG::mag_t mag = sx;
            const ap_uint<CONFIG::mag_width> raw = mag.range(CONFIG::mag_width - 1, 0);
            const int lead = leading_one<CONFIG::mag_width>(raw);
            const int exponent = lead - CONFIG::mag_frac;
            const int odd = exponent & 1;  // an odd power reads the second half, which holds sqrt(2m)
            const int half = (exponent - odd) / 2;  // floor(exponent / 2)
            const unsigned index = bits_after_lead<CONFIG::table_bits, CONFIG::mag_width>(raw, lead) +
                                   (odd << CONFIG::table_bits);
            y[i] = shift_exact<typename CONFIG::wide_t>(table[index], half);
        }
    }
}

template <class CONFIG, unsigned N, class X, class Y>
void exponential(const X x[N], Y y[N], const typename CONFIG::exp_entry_t table[1 << CONFIG::exp_bits],
                 const typename CONFIG::log2e_t log2e) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        const typename CONFIG::pre_t xp = x[i];
        const typename CONFIG::t_t t = xp * log2e;
        const typename CONFIG::floor_t n_floor = t;  // AP_TRN to an integer type: floor
        const ap_ufixed<CONFIG::t_frac, 0> frac = t - n_floor;
        const unsigned index = top_fraction_bits<CONFIG::exp_bits>(frac);
        int n = n_floor.to_int();
        n = n < CONFIG::min_shift ? CONFIG::min_shift : (n > CONFIG::max_shift ? CONFIG::max_shift : n);
        y[i] = shift_exact<typename CONFIG::exp_wide_t>(table[index], n);
    }
}

} // namespace ag

#endif
