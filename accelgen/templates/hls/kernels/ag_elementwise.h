// accelgen HLS kernels: elementwise ops and data movement on flat arrays (the graph's row-major layout).
// Sums, differences and products of ap_fixed values are exact; the assignment to the output is the node's one
// rounding, as accelgen's fixed-point interpreter rounds its exact result once.
#ifndef AG_ELEMENTWISE_H_
#define AG_ELEMENTWISE_H_

#include "ag_common.h"

namespace ag {

struct add_op {
    template <class A, class B, class Y> static void store(const A &a, const B &b, Y &y) { y = a + b; }
};

struct sub_op {
    template <class A, class B, class Y> static void store(const A &a, const B &b, Y &y) { y = a - b; }
};

struct mul_op {
    template <class A, class B, class Y> static void store(const A &a, const B &b, Y &y) { y = a * b; }
};

// Operands of the output's shape.
template <class OP, unsigned N, class A, class B, class Y> void elementwise(const A a[N], const B b[N], Y y[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        OP::store(a[i], b[i], y[i]);
    }
}

// Broadcasting operands: output element i reads a[a_index[i]] and b[b_index[i]] (index tables computed by the
// generator from the shapes; constant, so synthesis turns them into wiring).
template <class OP, unsigned N, unsigned NA, unsigned NB, class I, class A, class B, class Y>
void elementwise_broadcast(const A a[NA], const B b[NB], Y y[N], const I a_index[N], const I b_index[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        OP::store(a[a_index[i]], b[b_index[i]], y[i]);
    }
}

// Reshape, Flatten, Squeeze, Unsqueeze, Identity, Cast: the flat layout does not change, only the type may (an
// assignment).
template <unsigned N, class X, class Y> void copy(const X x[N], Y y[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = x[i];
    }
}

template <unsigned N, class X, class Y> void relu(const X x[N], Y y[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        relu_activation::store(x[i], y[i]);
    }
}

// Standalone table activations (Sigmoid, Tanh): ag::table_activation on each element.
template <class TABLE, unsigned N, class X, class Y> void table_map(const X x[N], Y y[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        table_activation<TABLE>::store(x[i], y[i]);
    }
}

// Transpose, Slice, Gather with constant indices, Expand, Tile: y[i] = x[index[i]], the source of every output
// element computed by the generator (the op run on the element numbers).
template <unsigned N_IN, unsigned N_OUT, class I, class X, class Y>
void gather(const X x[N_IN], Y y[N_OUT], const I index[N_OUT]) {
    for (unsigned i = 0; i < N_OUT; i++) {
#pragma HLS UNROLL
        y[i] = x[index[i]];
    }
}

// One input of a Concat: the output is OUTER blocks of OUT_BLOCK elements; this input fills IN_BLOCK of them in
// each block, starting at OFFSET.
template <unsigned OUTER, unsigned IN_BLOCK, unsigned OUT_BLOCK, unsigned OFFSET, class X, class Y>
void concat_part(const X x[OUTER * IN_BLOCK], Y y[OUTER * OUT_BLOCK]) {
    for (unsigned o = 0; o < OUTER; o++) {
#pragma HLS UNROLL
        for (unsigned k = 0; k < IN_BLOCK; k++) {
#pragma HLS UNROLL
            y[o * OUT_BLOCK + OFFSET + k] = x[o * IN_BLOCK + k];
        }
    }
}

// BatchNormalization left unfolded: y = x * a[c] + b[c] over OUTER x C x INNER elements, c the channel; the
// product and sum are exact, the assignment rounds once (accelgen/ir/ops/normalization.py, compute_fixed).
template <unsigned OUTER, unsigned C, unsigned INNER, class X, class Y, class A, class B>
void scale_shift(const X x[OUTER * C * INNER], Y y[OUTER * C * INNER], const A a[C], const B b[C]) {
    for (unsigned o = 0; o < OUTER; o++) {
        for (unsigned c = 0; c < C; c++) {
#pragma HLS UNROLL
            for (unsigned i = 0; i < INNER; i++) {
#pragma HLS UNROLL
                const unsigned k = (o * C + c) * INNER + i;
                y[k] = x[k] * a[c] + b[c];
            }
        }
    }
}

} // namespace ag

#endif
