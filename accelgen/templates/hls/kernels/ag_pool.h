// accelgen HLS kernels: 2-D max and average pooling (NCHW, batch 1; a 1-D pool is an image of height 1). Max:
// padding never wins; the generator guarantees every window holds at least one input element.
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

// AveragePool as accelgen's fixed-point AveragePool: the exact sum of the window's taps inside the input (padding
// adds nothing; lim_h and lim_w stop the taps where the interpreter's window ends, short of in_h/in_w only for a
// dilated pool with negative end padding), first rounded to pre_t where the product would pass 53 bits, times
// q(1 / taps counted) for this output position (count_include_pad decides the count, in the generator; one
// constant when every position shares it). The product is exact; the assignment is the node's rounding.
template <class CONFIG, class X, class Y>
void avgpool2d(const X x[CONFIG::channels * CONFIG::in_h * CONFIG::in_w],
               Y y[CONFIG::channels * CONFIG::out_h * CONFIG::out_w],
               const typename CONFIG::scale_t scale[CONFIG::n_scales]) {
    for (int c = 0; c < CONFIG::channels; c++) {
        for (int oh = 0; oh < CONFIG::out_h; oh++) {
            for (int ow = 0; ow < CONFIG::out_w; ow++) {
#pragma HLS PIPELINE II = 1
                typename CONFIG::sum_t s = 0;
                for (int kh = 0; kh < CONFIG::k_h; kh++) {
                    for (int kw = 0; kw < CONFIG::k_w; kw++) {
                        const int ih = oh * CONFIG::stride_h - CONFIG::pad_top + kh * CONFIG::dilation_h;
                        const int iw = ow * CONFIG::stride_w - CONFIG::pad_left + kw * CONFIG::dilation_w;
                        if (ih >= 0 && ih < CONFIG::lim_h && iw >= 0 && iw < CONFIG::lim_w) {
                            s += x[(c * CONFIG::in_h + ih) * CONFIG::in_w + iw];
                        }
                    }
                }
                const typename CONFIG::pre_t p = s;
                const int k = CONFIG::n_scales == 1 ? 0 : oh * CONFIG::out_w + ow;
                y[(c * CONFIG::out_h + oh) * CONFIG::out_w + ow] = p * scale[k];
            }
        }
    }
}

} // namespace ag

#endif
