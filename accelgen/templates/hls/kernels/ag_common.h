// accelgen HLS kernels: shared helpers. Header-only; every size is a compile-time constant.
#ifndef AG_COMMON_H_
#define AG_COMMON_H_

#include "ap_fixed.h"
#include "ap_int.h"

namespace ag {

// Fused activations: apply() takes the exact accumulator; the caller's assignment rounds to the output type.
struct no_activation {
    template <class T> static T apply(const T &x) { return x; }
};

struct relu_activation {
    template <class T> static T apply(const T &x) { return x < 0 ? T(0) : x; }
};

// Table activations (sigmoid, tanh...), as accelgen's LookupTable: the entry at floor(x * 2**frac_bits) - offset,
// clamped to [0, size - 1], x being the exact accumulator. TABLE gives floor_t (an integer type that floors on
// assignment), scale() = 2**frac_bits, offset = x_min * 2**frac_bits, size, and lookup(i).
template <class TABLE> struct table_activation {
    template <class T> static typename TABLE::value_t apply(const T &x) {
        const typename TABLE::floor_t scaled = x * TABLE::scale();
        long long i = scaled.to_int64() - TABLE::offset;
        i = i < 0 ? 0 : (i >= TABLE::size ? TABLE::size - 1 : i);
        return TABLE::lookup(i);
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
