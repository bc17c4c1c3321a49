// accelgen HLS kernels: standalone GELU as accelgen's fixed-point Gelu (accelgen/ir/ops/activations.py): the
// table entry of x inside the table's range [x_min, x_max); x itself at or above x_max and 0 below x_min (the
// function's asymptotes). TABLE is the struct of ag::table_activation (floor_t, scale(), offset, size, lookup).
#ifndef AG_GELU_H_
#define AG_GELU_H_

#include "ag_common.h"

namespace ag {

template <class TABLE, unsigned N, class X, class Y> void gelu(const X x[N], Y y[N]) {
    for (unsigned k = 0; k < N; k++) {
#pragma HLS UNROLL
        gelu_activation<TABLE>::store(x[k], y[k]);
    }
}

} // namespace ag

#endif
