// accelgen HLS kernels: the io stream design's line-buffered 2-D convolution (NCHW, batch 1, any group). The input
// arrives as pixel frames (the in_c values of one pixel, raster order); each output row is computed as soon as the
// last input row its windows reach has arrived, and only the rows a window can still reach are kept (a ring of
// (k_h - 1) * dilation_h + 1 rows instead of the whole image). The arithmetic is ag::conv2d's: exact accumulator,
// padding contributes nothing, one rounding at the store, output channel m reading only its group's input channels,
// so the outputs are identical. A 1-D convolution (height 1) keeps a ring of one row: its whole input.
#ifndef AG_STREAM_CONV_H_
#define AG_STREAM_CONV_H_

#include "ag_common.h"
#include "ag_stream.h"

namespace ag {

template <class CONFIG> struct window_lines {
    static const int rows = (CONFIG::k_h - 1) * CONFIG::dilation_h + 1;
};

// The last input row output row `oh` reads, clipped to the image (rows past either edge are padding).
template <class CONFIG> int window_last_row(int oh) {
    const int last = oh * CONFIG::stride_h - CONFIG::pad_top + (CONFIG::k_h - 1) * CONFIG::dilation_h;
    return last < 0 ? 0 : (last >= CONFIG::in_h ? CONFIG::in_h - 1 : last);
}

template <class CONFIG, class X, class Y>
void conv2d_row(const X lines[window_lines<CONFIG>::rows][CONFIG::in_w][CONFIG::in_c], int oh,
                Y y[CONFIG::out_c * CONFIG::out_h * CONFIG::out_w],
                const typename CONFIG::weight_t w[CONFIG::out_c * CONFIG::group_in_c * CONFIG::k_h * CONFIG::k_w],
                const typename CONFIG::bias_t bias[CONFIG::out_c]) {
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
                            acc += lines[ih % window_lines<CONFIG>::rows][iw][first + c] *
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

// Input row ih of the image, one pixel frame (all channels) per clock, into its slot of the ring of rows.
template <class CONFIG, unsigned C, class X>
void read_image_row(hls::stream<frame<X, C> > &in, X lines[window_lines<CONFIG>::rows][CONFIG::in_w][C],
                    const int ih) {
    for (int iw = 0; iw < CONFIG::in_w; iw++) {
#pragma HLS PIPELINE II = 1
        const frame<X, C> pixel = in.read();
        for (unsigned c = 0; c < C; c++) {
#pragma HLS UNROLL
            lines[ih % window_lines<CONFIG>::rows][iw][c] = pixel[c];
        }
    }
}

// Whether output row oh can be computed once input row ih has arrived (oh < out_h).
template <class CONFIG> bool row_ready(const int oh, const int ih) {
    return oh < CONFIG::out_h && window_last_row<CONFIG>(oh) <= ih;
}

template <class CONFIG, class X, class Y>
void conv2d_line_buffer(hls::stream<frame<X, CONFIG::in_c> > &in, Y y[CONFIG::out_c * CONFIG::out_h * CONFIG::out_w],
                        const typename CONFIG::weight_t
                            w[CONFIG::out_c * CONFIG::group_in_c * CONFIG::k_h * CONFIG::k_w],
                        const typename CONFIG::bias_t bias[CONFIG::out_c]) {
    X lines[window_lines<CONFIG>::rows][CONFIG::in_w][CONFIG::in_c];
#pragma HLS ARRAY_PARTITION variable = lines complete dim = 3
    int oh = 0;
    for (int ih = 0; ih < CONFIG::in_h; ih++) {
        read_image_row<CONFIG, CONFIG::in_c>(in, lines, ih);
        // the output rows this input row completes: a static bound (all of them) and an early exit
        for (int r = 0; r < CONFIG::out_h; r++) {
            if (!row_ready<CONFIG>(oh, ih)) {
                break;
            }
            conv2d_row<CONFIG>(lines, oh, y, w, bias);
            oh++;
        }
    }
}

// A whole NCHW tensor of N values, C channels, written as N / C pixel frames in raster order.
template <unsigned N, unsigned C, class T> void write_pixels(const T y[N], hls::stream<frame<T, C> > &out) {
    for (unsigned p = 0; p < N / C; p++) {
#pragma HLS PIPELINE II = 1
        frame<T, C> v;
        for (unsigned c = 0; c < C; c++) {
#pragma HLS UNROLL
            v[c] = y[c * (N / C) + p];
        }
        out.write(v);
    }
}

} // namespace ag

#endif
