// accelgen HLS kernels: a QONNX activation quantizer (Quant, QuantToInteger, BipolarQuant) as thresholds, as FINN
// builds it. Its output level only grows with x, so it is the number of thresholds x has reached: the generator
// placed each threshold exactly on x's grid (where the rounding mode steps, ties included) and wrote the value of
// every level, already rounded to the output type, so one compare per threshold and one table read per value
// give the interpreter's bits. The thresholds have x's own type: no comparison mixes signedness.
#ifndef AG_QUANT_H_
#define AG_QUANT_H_

#include "ag_common.h"

namespace ag {

template <class CONFIG, class X, class Y>
void quantize_thresholds(const X x[CONFIG::n], Y y[CONFIG::n],
                         const typename CONFIG::threshold_t thresholds[CONFIG::n_thresholds],
                         const typename CONFIG::level_t levels[CONFIG::n_thresholds + 1]) {
    for (unsigned i = 0; i < CONFIG::n; i++) {
#pragma HLS UNROLL
        const typename CONFIG::threshold_t v = x[i];
        unsigned reached = 0;
        for (unsigned b = 0; b < CONFIG::n_thresholds; b++) {
#pragma HLS UNROLL
            reached += v >= thresholds[b] ? 1 : 0;
        }
        y[i] = levels[reached];
    }
}

} // namespace ag

#endif
