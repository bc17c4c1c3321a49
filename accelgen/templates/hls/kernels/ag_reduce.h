// accelgen HLS kernels: reductions over one contiguous block of axes. The input is OUTER x R x INNER elements
// (the generator merges the reduced axes into R and the others into OUTER and INNER); each output element is the
// exact sum of R inputs, bit for bit as accelgen's fixed-point ReduceSum and ReduceMean
// (accelgen/ir/ops/reduce.py, compute_fixed). GlobalAveragePool and GlobalMaxPool are the reductions over the
// spatial axes (R = H * W, INNER = 1).
#ifndef AG_REDUCE_H_
#define AG_REDUCE_H_

#include "ag_common.h"

namespace ag {

// Sum in sum_t (exact); ReduceSum stores it, the assignment rounding to the output type.
template <class CONFIG, class X, class Y>
void reduce_sum(const X x[CONFIG::outer * CONFIG::r * CONFIG::inner], Y y[CONFIG::outer * CONFIG::inner]) {
    for (unsigned o = 0; o < CONFIG::outer; o++) {
        for (unsigned i = 0; i < CONFIG::inner; i++) {
#pragma HLS PIPELINE II = 1
            typename CONFIG::sum_t s = 0;
            for (unsigned k = 0; k < CONFIG::r; k++) {
                s += x[(o * CONFIG::r + k) * CONFIG::inner + i];
            }
            y[o * CONFIG::inner + i] = s;
        }
    }
}

// mean = sum * q(1/R): the sum first rounded to pre_t, the product to mean_t (exact when the node rounds it
// itself), then to the output type.
template <class CONFIG, class X, class Y>
void reduce_mean(const X x[CONFIG::outer * CONFIG::r * CONFIG::inner], Y y[CONFIG::outer * CONFIG::inner],
                 const typename CONFIG::scale_t scale) {
    for (unsigned o = 0; o < CONFIG::outer; o++) {
        for (unsigned i = 0; i < CONFIG::inner; i++) {
#pragma HLS PIPELINE II = 1
            typename CONFIG::sum_t s = 0;
            for (unsigned k = 0; k < CONFIG::r; k++) {
                s += x[(o * CONFIG::r + k) * CONFIG::inner + i];
            }
            const typename CONFIG::pre_t s_pre = s;
            const typename CONFIG::mean_t mean = s_pre * scale;
            y[o * CONFIG::inner + i] = mean;
        }
    }
}

// ReduceMax / ReduceMin (and GlobalMaxPool): OP is ag::max_op<X> or ag::min_op<X> (ag_elementwise.h); the
// extremum of values of one type is exact.
template <class CONFIG, class OP, class X, class Y>
void reduce_extremum(const X x[CONFIG::outer * CONFIG::r * CONFIG::inner], Y y[CONFIG::outer * CONFIG::inner]) {
    for (unsigned o = 0; o < CONFIG::outer; o++) {
        for (unsigned i = 0; i < CONFIG::inner; i++) {
#pragma HLS PIPELINE II = 1
            X best = x[o * CONFIG::r * CONFIG::inner + i];
            for (unsigned k = 1; k < CONFIG::r; k++) {
                const X v = x[(o * CONFIG::r + k) * CONFIG::inner + i];
                if (OP::replaces(v, best)) {
                    best = v;
                }
            }
            y[o * CONFIG::inner + i] = best;
        }
    }
}

} // namespace ag

#endif
