// accelgen HLS kernels: 2-D convolution (NCHW, batch 1), parallel form: a loop over output pixels, each computing
// every output channel. Padding positions contribute nothing (zero padding). Exact accumulator, one rounding at the
// output assignment, as Dense. A 1-D convolution arrives as an image of height 1 (the generator maps it).
// Grouped (and depthwise) convolution: output channel m belongs to group m / group_out_c and reads only that group's
// group_in_c input channels, with the weights as ONNX stores them ([out_c][group_in_c][k_h][k_w]), so no multiplier
// is spent on another group's channels; groups = 1 is the plain convolution. With strategy resource (group 1) the
// products of each pixel take turns over the reuse factor (conv2d_resource, below).
#ifndef AG_CONV2D_H_
#define AG_CONV2D_H_

#include "ag_common.h"
#include "ag_dense.h"

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
                typename CONFIG::accum_t acc = CONFIG::scale::template start<typename CONFIG::accum_t>(bias[m]);
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
                CONFIG::activation::store(CONFIG::scale::finish(acc, bias[m], m),
                                          y[(m * CONFIG::out_h + oh) * CONFIG::out_w + ow]);
            }
        }
    }
}

// Resource form (group 1): each output pixel's window, as one vector win[(c * k_h + kh) * k_w + kw] (zero where it
// reads padding), goes through the Dense resource kernel with the kernel weights as an n_in x out_c matrix, so the
// products of a pixel take turns on n_in * out_c / R multipliers over R cycles. The generator wrote the weights in
// that kernel's tile (or sparse lane) order; the exact accumulator makes the bits those of ag::conv2d.
template <class CONFIG, class X>
void conv2d_window(const X x[CONFIG::in_c * CONFIG::in_h * CONFIG::in_w], X win[CONFIG::n_in], const int oh,
                   const int ow) {
    for (int c = 0; c < CONFIG::in_c; c++) {
#pragma HLS UNROLL
        for (int kh = 0; kh < CONFIG::k_h; kh++) {
#pragma HLS UNROLL
            const int ih = oh * CONFIG::stride_h - CONFIG::pad_top + kh * CONFIG::dilation_h;
            for (int kw = 0; kw < CONFIG::k_w; kw++) {
#pragma HLS UNROLL
                const int iw = ow * CONFIG::stride_w - CONFIG::pad_left + kw * CONFIG::dilation_w;
                const bool inside = ih >= 0 && ih < CONFIG::in_h && iw >= 0 && iw < CONFIG::in_w;
                win[(c * CONFIG::k_h + kh) * CONFIG::k_w + kw] =
                    inside ? x[(c * CONFIG::in_h + ih) * CONFIG::in_w + iw] : X(0);
            }
        }
    }
}

template <class CONFIG, class Y>
void conv2d_store_pixel(const Y pixel[CONFIG::out_c], Y y[CONFIG::out_c * CONFIG::out_h * CONFIG::out_w],
                        const int oh, const int ow) {
    for (int m = 0; m < CONFIG::out_c; m++) {
#pragma HLS UNROLL
        y[(m * CONFIG::out_h + oh) * CONFIG::out_w + ow] = pixel[m];
    }
}

template <class CONFIG, class X, class Y>
void conv2d_resource(const X x[CONFIG::in_c * CONFIG::in_h * CONFIG::in_w],
                     Y y[CONFIG::out_c * CONFIG::out_h * CONFIG::out_w],
                     const typename CONFIG::weight_t w[CONFIG::n_in * CONFIG::n_out],
                     const typename CONFIG::bias_t bias[CONFIG::out_c]) {
    for (int oh = 0; oh < CONFIG::out_h; oh++) {
        for (int ow = 0; ow < CONFIG::out_w; ow++) {
            X win[CONFIG::n_in];
#pragma HLS ARRAY_PARTITION variable = win complete
            Y pixel[CONFIG::out_c];
#pragma HLS ARRAY_PARTITION variable = pixel complete
            conv2d_window<CONFIG>(x, win, oh, ow);
            dense_resource<CONFIG>(win, pixel, w, bias);
            conv2d_store_pixel<CONFIG>(pixel, y, oh, ow);
        }
    }
}

// The same with the sparse Dense resource kernel: only nonzero weights take turns (a pruned convolution).
template <class CONFIG, class X, class Y>
void conv2d_resource_sparse(const X x[CONFIG::in_c * CONFIG::in_h * CONFIG::in_w],
                            Y y[CONFIG::out_c * CONFIG::out_h * CONFIG::out_w],
                            const typename CONFIG::weight_t nz_w[CONFIG::n_nonzero],
                            const unsigned short nz_in[CONFIG::n_nonzero],
                            const unsigned short nz_out[CONFIG::n_nonzero],
                            const typename CONFIG::bias_t bias[CONFIG::out_c]) {
    for (int oh = 0; oh < CONFIG::out_h; oh++) {
        for (int ow = 0; ow < CONFIG::out_w; ow++) {
            X win[CONFIG::n_in];
#pragma HLS ARRAY_PARTITION variable = win complete
            Y pixel[CONFIG::out_c];
#pragma HLS ARRAY_PARTITION variable = pixel complete
            conv2d_window<CONFIG>(x, win, oh, ow);
            dense_resource_sparse<CONFIG>(win, pixel, nz_w, nz_in, nz_out, bias);
            conv2d_store_pixel<CONFIG>(pixel, y, oh, ow);
        }
    }
}

} // namespace ag

#endif
