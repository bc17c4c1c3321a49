// accelgen HLS kernels: the io stream design's frames and whole-tensor moves between hls::stream FIFOs and the
// local arrays the layer kernels work on. A frame is F consecutive values of a row-major tensor (its last
// dimension); one frame moves per clock.
#ifndef AG_STREAM_H_
#define AG_STREAM_H_

#include "ag_common.h"
#include "hls_stream.h"

namespace ag {

template <class T, unsigned F> struct frame {
    T data[F];
    T &operator[](unsigned i) { return data[i]; }
    const T &operator[](unsigned i) const { return data[i]; }
};

// x[0 .. N) from N / F frames of `in`.
template <unsigned N, unsigned F, class T> void read_frames(hls::stream<frame<T, F> > &in, T x[N]) {
    for (unsigned f = 0; f < N / F; f++) {
#pragma HLS PIPELINE II = 1
        const frame<T, F> v = in.read();
        for (unsigned i = 0; i < F; i++) {
#pragma HLS UNROLL
            x[f * F + i] = v[i];
        }
    }
}

// y[0 .. N) to `out` as N / F frames.
template <unsigned N, unsigned F, class T> void write_frames(const T y[N], hls::stream<frame<T, F> > &out) {
    for (unsigned f = 0; f < N / F; f++) {
#pragma HLS PIPELINE II = 1
        frame<T, F> v;
        for (unsigned i = 0; i < F; i++) {
#pragma HLS UNROLL
            v[i] = y[f * F + i];
        }
        out.write(v);
    }
}

} // namespace ag

#endif
