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

// Max and Min: both operands first converted to C, a type that holds each exactly (signed when either is: the
// Xilinx headers compare mixed signedness wrongly), so the comparison and the chosen value are exact.
template <class C> struct max_op {
    static bool replaces(const C &v, const C &best) { return v > best; }
    template <class A, class B, class Y> static void store(const A &a, const B &b, Y &y) {
        const C ca = a;
        const C cb = b;
        if (replaces(cb, ca)) {
            y = cb;
        } else {
            y = ca;
        }
    }
};

template <class C> struct min_op {
    static bool replaces(const C &v, const C &best) { return v < best; }
    template <class A, class B, class Y> static void store(const A &a, const B &b, Y &y) {
        const C ca = a;
        const C cb = b;
        if (replaces(cb, ca)) {
            y = cb;
        } else {
            y = ca;
        }
    }
};

// Equal, Less, LessOrEqual, Greater, GreaterOrEqual (K = 0..4), compared exactly in C (as max_op); the result is
// a bool stored in the output's ap_ufixed<1,1>.
template <class C, int K> struct compare_op {
    template <class A, class B, class Y> static void store(const A &a, const B &b, Y &y) {
        const C ca = a;
        const C cb = b;
        const bool r = K == 0 ? ca == cb : K == 1 ? ca < cb : K == 2 ? ca <= cb : K == 3 ? ca > cb : ca >= cb;
        y = r;
    }
};

// PRelu: x * slope below zero, x itself otherwise (the product exact; x is signed, the generator copies unsigned x).
struct prelu_op {
    template <class A, class B, class Y> static void store(const A &x, const B &slope, Y &y) {
        if (x < 0) {
            y = x * slope;
        } else {
            y = x;
        }
    }
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

// Where: y = cond ? a : b, every operand read through its index table (broadcasting); the condition is a 1-bit
// value (its bit read as a bool), the assignment the node's rounding.
template <unsigned N, unsigned NC, unsigned NA, unsigned NB, class I, class C, class A, class B, class Y>
void where(const C cond[NC], const A a[NA], const B b[NB], Y y[N], const I c_index[N], const I a_index[N],
           const I b_index[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        if (cond[c_index[i]][0]) {
            y[i] = a[a_index[i]];
        } else {
            y[i] = b[b_index[i]];
        }
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

template <unsigned N, class X, class Y> void negate(const X x[N], Y y[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = -x[i];  // exact: unary minus widens by one bit
    }
}

// |x| of signed x (the generator copies unsigned x).
template <unsigned N, class X, class Y> void absolute(const X x[N], Y y[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        if (x[i] < 0) {
            y[i] = -x[i];
        } else {
            y[i] = x[i];
        }
    }
}

// A fixed-point constant of a CONFIG, whose static members can only be integers: type T from its raw bits (the
// value times 2**fractional bits), W = T's width. Synthesis folds the loop into the constant.
template <class T, int W> T from_raw(const long long raw) {
    T t = 0;
    for (int i = 0; i < W; i++) {
        t[i] = bool((raw >> i) & 1);
    }
    return t;
}

// Clip as accelgen's fixed-point Clip (clamp the exact x, then round): x is compared exactly, in clip_t (signed,
// holding x, the output type and one lsb of x beyond either end of x's range), against the bounds moved onto x's
// grid (x < lo iff x < below, x > hi iff x > above); a clamped x takes the bound rounded to the output type
// (clip_lo = q(min(lo, hi)), clip_hi = q(hi)). Used standalone and fused after a Dense or convolution (ReLU6).
template <class CONFIG> struct clip_activation {
    typedef typename CONFIG::clip_t C;
    static C constant(const long long raw) { return from_raw<C, CONFIG::clip_width>(raw); }
    template <class T, class Y> static void store(const T &x, Y &y) {
        const C v = x;
        if (v < constant(CONFIG::clip_below)) {
            y = constant(CONFIG::clip_lo);
        } else if (v > constant(CONFIG::clip_above)) {
            y = constant(CONFIG::clip_hi);
        } else {
            y = x;
        }
    }
};

template <class CONFIG, unsigned N, class X, class Y> void clip(const X x[N], Y y[N]) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        clip_activation<CONFIG>::store(x[i], y[i]);
    }
}

// LeakyRelu: x at or above zero, else x * q(alpha), x first rounded to pre_t where the product would pass 53 bits
// (accelgen's Rescale); the product is exact, the assignment the node's rounding. x is signed (the generator
// copies unsigned x).
template <class CONFIG, unsigned N, class X, class Y>
void leaky_relu(const X x[N], Y y[N], const typename CONFIG::scale_t slope) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        if (x[i] < 0) {
            const typename CONFIG::pre_t p = x[i];
            y[i] = p * slope;
        } else {
            y[i] = x[i];
        }
    }
}

// clip(x * q(alpha) + q(beta), 0, 1), exact: HardSigmoid's result and HardSwish's gate before its rounding.
// clamp_t is signed and holds every sum and 1 (generated).
template <class CONFIG, class X>
typename CONFIG::clamp_t hard_line(const X &x, const typename CONFIG::scale_t slope,
                                   const typename CONFIG::offset_t offset) {
    const typename CONFIG::pre_t p = x;
    typename CONFIG::clamp_t s = p * slope + offset;
    if (s < 0) {
        s = 0;
    } else if (s > 1) {
        s = 1;
    }
    return s;
}

template <class CONFIG, unsigned N, class X, class Y>
void hard_sigmoid(const X x[N], Y y[N], const typename CONFIG::scale_t slope, const typename CONFIG::offset_t offset) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = hard_line<CONFIG>(x[i], slope, offset);
    }
}

// HardSwish: x times the gate clip(x / 6 + 1/2, 0, 1) rounded to gate_t (accelgen's "gate"); the product is exact.
template <class CONFIG, unsigned N, class X, class Y>
void hard_swish(const X x[N], Y y[N], const typename CONFIG::scale_t sixth, const typename CONFIG::offset_t half) {
    for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
        const typename CONFIG::gate_t gate = hard_line<CONFIG>(x[i], sixth, half);
        y[i] = x[i] * gate;
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
