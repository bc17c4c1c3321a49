// accelgen HLS kernels: 2-D convolution (NCHW, batch 1, group 1), parallel form: a loop over output pixels, each
// computing every output channel. Padding positions contribute nothing (zero padding). Exact accumulator, one
// rounding at the output assignment, as Dense.
#ifndef AG_CONV2D_H_
#define AG_CONV2D_H_

#include "ag_common.h"

namespace ag {

template <class CONFIG, class X, class Y>
void conv2d(const X x[CONFIG::in_c * CONFIG::in_h * CONFIG::in_w],
            Y y[CONFIG::out_c * CONFIG::out_h * CONFIG::out_w],
            const typename CONFIG::weight_t w[CONFIG::out_c * CONFIG::in_c * CONFIG::k_h * CONFIG::k_w],
            const typename CONFIG::bias_t bias[CONFIG::out_c]) {
    for (int oh = 0; oh < CONFIG::out_h; oh++) {
        for (int ow = 0; ow < CONFIG::out_w; ow++) {
#pragma HLS PIPELINE II = 1
            for (int m = 0; m < CONFIG::out_c; m++) {
                typename CONFIG::accum_t acc = bias[m];
                for (int c = 0; c < CONFIG::in_c; c++) {
                    for (int kh = 0; kh < CONFIG::k_h; kh++) {
                        const int ih = oh * CONFIG::stride_h - CONFIG::pad_top + kh * CONFIG::dilation_h;
                        for (int kw = 0; kw < CONFIG::k_w; kw++) {
                            const int iw = ow * CONFIG::stride_w - CONFIG::pad_left + kw * CONFIG::dilation_w;
                            if (ih >= 0 && ih < CONFIG::in_h && iw >= 0 && iw < CONFIG::in_w) {
                                acc += x[(c * CONFIG::in_h + ih) * CONFIG::in_w + iw] *
                                       w[((m * CONFIG::in_c + c) * CONFIG::k_h + kh) * CONFIG::k_w + kw];
                            }
                        }
                    }
                }
                CONFIG::activation::store(acc, y[(m * CONFIG::out_h + oh) * CONFIG::out_w + ow]);
            }
        }
    }
}

} // namespace ag

#endif
