// accelgen HLS kernels: the io stream design's line-buffered max and average pooling, as ag_stream_conv.h's
// convolution: the input arrives as pixel frames (all channels of one pixel, raster order), each output row is
// computed as soon as the last input row its windows reach has arrived, and only the rows a window can still reach
// are kept. The arithmetic is ag::maxpool2d's and ag::avgpool2d's (ag_pool.h), so the outputs are identical.
#ifndef AG_STREAM_POOL_H_
#define AG_STREAM_POOL_H_

#include "ag_pool.h"
#include "ag_stream_conv.h"

namespace ag {

template <class CONFIG, class X, class Y>
void maxpool2d_row(const X lines[window_lines<CONFIG>::rows][CONFIG::in_w][CONFIG::channels], const int oh,
                   Y y[CONFIG::channels * CONFIG::out_h * CONFIG::out_w]) {
    for (int ow = 0; ow < CONFIG::out_w; ow++) {
#pragma HLS PIPELINE II = 1
        for (int c = 0; c < CONFIG::channels; c++) {
            X best = 0;
            bool seen = false;
            for (int kh = 0; kh < CONFIG::k_h; kh++) {
                for (int kw = 0; kw < CONFIG::k_w; kw++) {
                    const int ih = oh * CONFIG::stride_h - CONFIG::pad_top + kh * CONFIG::dilation_h;
                    const int iw = ow * CONFIG::stride_w - CONFIG::pad_left + kw * CONFIG::dilation_w;
                    if (ih >= 0 && ih < CONFIG::in_h && iw >= 0 && iw < CONFIG::in_w) {
                        const X v = lines[ih % window_lines<CONFIG>::rows][iw][c];
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

template <class CONFIG, class X, class Y>
void avgpool2d_row(const X lines[window_lines<CONFIG>::rows][CONFIG::in_w][CONFIG::channels], const int oh,
                   Y y[CONFIG::channels * CONFIG::out_h * CONFIG::out_w],
                   const typename CONFIG::scale_t scale[CONFIG::n_scales]) {
    for (int ow = 0; ow < CONFIG::out_w; ow++) {
#pragma HLS PIPELINE II = 1
        for (int c = 0; c < CONFIG::channels; c++) {
            typename CONFIG::sum_t s = 0;
            for (int kh = 0; kh < CONFIG::k_h; kh++) {
                for (int kw = 0; kw < CONFIG::k_w; kw++) {
                    const int ih = oh * CONFIG::stride_h - CONFIG::pad_top + kh * CONFIG::dilation_h;
                    const int iw = ow * CONFIG::stride_w - CONFIG::pad_left + kw * CONFIG::dilation_w;
                    if (ih >= 0 && ih < CONFIG::lim_h && iw >= 0 && iw < CONFIG::lim_w) {
                        s += lines[ih % window_lines<CONFIG>::rows][iw][c];
                    }
                }
            }
            const typename CONFIG::pre_t p = s;
            const int k = CONFIG::n_scales == 1 ? 0 : oh * CONFIG::out_w + ow;
            y[(c * CONFIG::out_h + oh) * CONFIG::out_w + ow] = p * scale[k];
        }
    }
}

template <class CONFIG, class X, class Y>
void maxpool2d_line_buffer(hls::stream<frame<X, CONFIG::channels> > &in,
                           Y y[CONFIG::channels * CONFIG::out_h * CONFIG::out_w]) {
    X lines[window_lines<CONFIG>::rows][CONFIG::in_w][CONFIG::channels];
#pragma HLS ARRAY_PARTITION variable = lines complete dim = 3
    int oh = 0;
    for (int ih = 0; ih < CONFIG::in_h; ih++) {
        read_image_row<CONFIG, CONFIG::channels>(in, lines, ih);
        for (int r = 0; r < CONFIG::out_h; r++) {  // the output rows this input row completes
            if (!row_ready<CONFIG>(oh, ih)) {
                break;
            }
            maxpool2d_row<CONFIG>(lines, oh, y);
            oh++;
        }
    }
}

template <class CONFIG, class X, class Y>
void avgpool2d_line_buffer(hls::stream<frame<X, CONFIG::channels> > &in,
                           Y y[CONFIG::channels * CONFIG::out_h * CONFIG::out_w],
                           const typename CONFIG::scale_t scale[CONFIG::n_scales]) {
    X lines[window_lines<CONFIG>::rows][CONFIG::in_w][CONFIG::channels];
#pragma HLS ARRAY_PARTITION variable = lines complete dim = 3
    int oh = 0;
    for (int ih = 0; ih < CONFIG::in_h; ih++) {
        read_image_row<CONFIG, CONFIG::channels>(in, lines, ih);
        for (int r = 0; r < CONFIG::out_h; r++) {  // the output rows this input row completes
            if (!row_ready<CONFIG>(oh, ih)) {
                break;
            }
            avgpool2d_row<CONFIG>(lines, oh, y, scale);
            oh++;
        }
    }
}

} // namespace ag

#endif
