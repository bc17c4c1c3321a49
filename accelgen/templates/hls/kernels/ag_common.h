// accelgen HLS kernels: shared helpers. Header-only; every size is a compile-time constant.
#ifndef AG_COMMON_H_
#define AG_COMMON_H_

#include "ag_types.h"

namespace ag {

// Fused activations: store(x, y) takes the exact accumulator x; the assignment to y is the node's one rounding.
struct no_activation {
    template <class T, class Y> static void store(const T &x, Y &y) { y = x; }
};

struct relu_activation {
    template <class T, class Y> static void store(const T &x, Y &y) {
        if (x < 0) {
            y = 0;
        } else {
            y = x;
        }
    }
};

// Table activations (sigmoid, tanh...), as accelgen's LookupTable: the entry at floor(x * 2**frac_bits) - offset,
// clamped to [0, size - 1], x being the exact accumulator. TABLE gives floor_t (an integer type that floors on
// assignment), scale() = 2**frac_bits, offset = x_min * 2**frac_bits, size, and lookup(i).
template <class TABLE> long long table_index(const long long floor_x) { return floor_x - TABLE::offset; }

template <class TABLE> struct table_activation {
    template <class T> static typename TABLE::value_t apply(const T &x) {
        const typename TABLE::floor_t scaled = x * TABLE::scale();
        long long i = table_index<TABLE>(scaled.to_int64());
        i = i < 0 ? 0 : (i >= TABLE::size ? TABLE::size - 1 : i);
        return TABLE::lookup(i);
    }
    template <class T, class Y> static void store(const T &x, Y &y) { y = apply(x); }
};

// GELU as accelgen's Gelu.lookup_fixed: the table entry inside [x_min, x_max), x itself at or above x_max, 0 below
// x_min (the function's asymptotes).
template <class TABLE> struct gelu_activation {
    template <class T, class Y> static void store(const T &x, Y &y) {
        const typename TABLE::floor_t scaled = x * TABLE::scale();  // AP_TRN to an integer type: floor
        const long long i = table_index<TABLE>(scaled.to_int64());
        if (i < 0) {
            y = 0;
        } else if (i >= TABLE::size) {
            y = x;
        } else {
            y = TABLE::lookup(i);
        }
    }
};

// An exact shift of `x` by `sh` bits (left when positive). WIDE must hold every shifted value; the generator
// sizes it from the shift range, so no bit is lost and the final assignment does the only rounding.
template <class WIDE, class T> WIDE shift_exact(const T &x, int sh) {
    WIDE w = x;
    if (sh >= 0) {
        w <<= sh;
    } else {
        w >>= -sh;
    }
    return w;
}

// How a Dense or Conv output column's accumulator begins and what the activation rounds, by weight scaling.
// Per-tensor weights: the accumulator starts at the bias and is the value rounded.
struct tensor_scale {
    template <class ACC, class B> static ACC start(const B &b) { return ACC(b); }
    template <class ACC, class B> static const ACC &finish(const ACC &acc, const B &, const unsigned) { return acc; }
};

// Per-channel weights (accelgen's QuantContext.per_channel_plan): column j's weights were stored times 2**-k_j
// (k_j <= 0, from SHIFTS::shift(j)), so its exact product sum is shifted back by k_j in COLUMN (which has the
// fractional bits for it) before the bias is added, as the interpreter does.
template <class COLUMN, class SHIFTS> struct channel_scale {
    template <class ACC, class B> static ACC start(const B &) { return ACC(0); }
    template <class ACC, class B> static COLUMN finish(const ACC &acc, const B &b, const unsigned j) {
        COLUMN c = shift_exact<COLUMN>(acc, SHIFTS::shift(j));
        c += b;
        return c;
    }
};

} // namespace ag

#endif
