// accelgen HLS kernels: elementwise ops and data movement on flat arrays of N elements.
#ifndef AG_ELEMENTWISE_H_
#define AG_ELEMENTWISE_H_

#include "ag_common.h"

namespace ag {

// a + b is exact in ap_fixed; the assignment rounds to the output type.
template <unsigned N, class A, class B, class Y> void add(const A a[N], const B b[N], Y y[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = a[i] + b[i];
    }
}

// Reshape, Flatten, Squeeze, Unsqueeze: the flat layout does not change, only the type may (an assignment).
template <unsigned N, class X, class Y> void copy(const X x[N], Y y[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = x[i];
    }
}

template <unsigned N, class X, class Y> void relu(const X x[N], Y y[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = relu_activation::apply(x[i]);
    }
}

} // namespace ag

#endif
