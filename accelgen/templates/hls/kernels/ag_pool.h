// accelgen HLS kernels: 2-D max pooling (NCHW, batch 1). Padding never wins; the generator guarantees every
// window holds at least one input element.
#ifndef AG_POOL_H_
#define AG_POOL_H_

#include "ag_common.h"

namespace ag {

template <class CONFIG, class X, class Y>
void maxpool2d(const X x[CONFIG::channels * CONFIG::in_h * CONFIG::in_w],
               Y y[CONFIG::channels * CONFIG::out_h * CONFIG::out_w]) {
    for (int c = 0; c < CONFIG::channels; c++) {
        for (int oh = 0; oh < CONFIG::out_h; oh++) {
            for (int ow = 0; ow < CONFIG::out_w; ow++) {
#pragma HLS PIPELINE II = 1
                X best = 0;
                bool seen = false;
                for (int kh = 0; kh < CONFIG::k_h; kh++) {
                    for (int kw = 0; kw < CONFIG::k_w; kw++) {
                        const int ih = oh * CONFIG::stride_h - CONFIG::pad_top + kh * CONFIG::dilation_h;
                        const int iw = ow * CONFIG::stride_w - CONFIG::pad_left + kw * CONFIG::dilation_w;
                        if (ih >= 0 && ih < CONFIG::in_h && iw >= 0 && iw < CONFIG::in_w) {
                            const X v = x[(c * CONFIG::in_h + ih) * CONFIG::in_w + iw];
                            if (!seen || v > best) {
                                best = v;
                            }
                            seen = true;
                        }
                    }
                }
                y[(c * CONFIG::out_h + oh) * CONFIG::out_w + ow] = best;
            }
        }
    }
}

} // namespace ag

#endif
