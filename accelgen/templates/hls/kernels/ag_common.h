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

} // namespace ag

#endif
