// accelgen HLS kernels: 2-D convolution (NCHW, batch 1), parallel form: a loop over output pixels, each computing
// every output channel. Padding positions contribute nothing (zero padding). Exact accumulator, one rounding at the
// output assignment, as Dense. A 1-D convolution arrives as an image of height 1 (the generator maps it).
// Grouped (and depthwise) convolution: output channel m belongs to group m / group_out_c and reads only that group's
// group_in_c input channels, with the weights as ONNX stores them ([out_c][group_in_c][k_h][k_w]), so no multiplier
// is spent on another group's channels; groups = 1 is the plain convolution.
#ifndef AG_CONV2D_H_
#define AG_CONV2D_H_

#include "ag_common.h"

namespace ag {

template <class CONFIG, class X, class Y>
void conv2d(const X x[CONFIG::in_c * CONFIG::in_h * CONFIG::in_w],
            Y y[CONFIG::out_c * CONFIG::out_h * CONFIG::out_w],
            const typename CONFIG::weight_t w[CONFIG::out_c * CONFIG::group_in_c * CONFIG::k_h * CONFIG::k_w],
            const typename CONFIG::bias_t bias[CONFIG::out_c]) {
    for (int oh = 0; oh < CONFIG::out_h; oh++) {
        for (int ow = 0; ow < CONFIG::out_w; ow++) {
#pragma HLS PIPELINE II = 1
            for (int m = 0; m < CONFIG::out_c; m++) {
                const int first = m / CONFIG::group_out_c * CONFIG::group_in_c;  // the group's first input channel
                typename CONFIG::accum_t acc = bias[m];
                for (int c = 0; c < CONFIG::group_in_c; c++) {
                    for (int kh = 0; kh < CONFIG::k_h; kh++) {
                        const int ih = oh * CONFIG::stride_h - CONFIG::pad_top + kh * CONFIG::dilation_h;
                        for (int kw = 0; kw < CONFIG::k_w; kw++) {
                            const int iw = ow * CONFIG::stride_w - CONFIG::pad_left + kw * CONFIG::dilation_w;
                            if (ih >= 0 && ih < CONFIG::in_h && iw >= 0 && iw < CONFIG::in_w) {
                                acc += x[((first + c) * CONFIG::in_h + ih) * CONFIG::in_w + iw] *
                                       w[((m * CONFIG::group_in_c + c) * CONFIG::k_h + kh) * CONFIG::k_w + kw];
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
