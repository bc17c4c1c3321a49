// accelgen HLS kernels: Dense y = act(x W + b) over `tokens` rows of n_in values.
// The accumulator type is exact for the layer (the quantizer sizes it), so both strategies and any summation
// order give the same bits; the only rounding is the assignment to the output type.
#ifndef AG_DENSE_H_
#define AG_DENSE_H_

#include "ag_common.h"

namespace ag {

// Latency: fully unrolled. Weights come as a list of the nonzero ones (zeros were dropped by the generator, so
// they cost no multiplier): weight nz_w[k] multiplies input nz_in[k] into output nz_out[k].
template <class CONFIG, class X, class Y>
void dense_latency(const X x[CONFIG::tokens * CONFIG::n_in], Y y[CONFIG::tokens * CONFIG::n_out],
                   const typename CONFIG::weight_t nz_w[CONFIG::n_nonzero], const unsigned short nz_in[CONFIG::n_nonzero],
                   const unsigned short nz_out[CONFIG::n_nonzero], const typename CONFIG::bias_t bias[CONFIG::n_out]) {
    for (unsigned t = 0; t < CONFIG::tokens; t++) {
#pragma HLS PIPELINE II = 1
        typename CONFIG::accum_t acc[CONFIG::n_out];
#pragma HLS ARRAY_PARTITION variable = acc complete
        for (unsigned j = 0; j < CONFIG::n_out; j++) {
#pragma HLS UNROLL
            acc[j] = CONFIG::scale::template start<typename CONFIG::accum_t>(bias[j]);
        }
        for (unsigned k = 0; k < CONFIG::n_nonzero; k++) {
#pragma HLS UNROLL
            acc[nz_out[k]] += x[t * CONFIG::n_in + nz_in[k]] * nz_w[k];
        }
        for (unsigned j = 0; j < CONFIG::n_out; j++) {
#pragma HLS UNROLL
            CONFIG::activation::store(CONFIG::scale::finish(acc[j], bias[j], j), y[t * CONFIG::n_out + j]);
        }
    }
}

// Resource: the n_in * n_out products are time-multiplexed over reuse_factor cycles (II=1) on block_factor =
// tile_in * tile_out multipliers. Cycle r computes one tile of the weight matrix, inputs u * tile_in + a times
// outputs e * tile_out + o (u = r / out_tiles, e = r % out_tiles); the generator chose tile_out = gcd(block_factor,
// n_out) so the tiles cover the matrix exactly, and stored w tile by tile: w[r * block_factor + a * tile_out + o].
// Multiplier (a, o) thus always reads the tile's a-th input (one x value shared by tile_out multipliers, picked among
// n_in / tile_in) and always feeds accumulator column o (acc[e][o], one of out_tiles); every accumulator is fed by
// the same tile_in multipliers. No product-to-accumulator crossbar, whatever the reuse factor.
template <class CONFIG, class X, class Y>
void dense_resource(const X x[CONFIG::tokens * CONFIG::n_in], Y y[CONFIG::tokens * CONFIG::n_out],
                    const typename CONFIG::weight_t w[CONFIG::n_in * CONFIG::n_out],
                    const typename CONFIG::bias_t bias[CONFIG::n_out]) {
    const unsigned lanes = CONFIG::block_factor;  // cycle r reads one word of every bank; pragma arguments are names
#pragma HLS ARRAY_RESHAPE variable = w cyclic factor = lanes
    const unsigned out_tiles = CONFIG::n_out / CONFIG::tile_out;
    for (unsigned t = 0; t < CONFIG::tokens; t++) {
        typename CONFIG::accum_t acc[CONFIG::n_out / CONFIG::tile_out][CONFIG::tile_out];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 0
        for (unsigned j = 0; j < CONFIG::n_out; j++) {
#pragma HLS UNROLL
            acc[j / CONFIG::tile_out][j % CONFIG::tile_out] =
                CONFIG::scale::template start<typename CONFIG::accum_t>(bias[j]);
        }
        for (unsigned r = 0; r < CONFIG::reuse_factor; r++) {
#pragma HLS PIPELINE II = 1
            const unsigned u = r / out_tiles, e = r % out_tiles;
            for (unsigned o = 0; o < CONFIG::tile_out; o++) {
#pragma HLS UNROLL
                typename CONFIG::accum_t sum = acc[e][o];
                for (unsigned a = 0; a < CONFIG::tile_in; a++) {
#pragma HLS UNROLL
                    sum += x[t * CONFIG::n_in + u * CONFIG::tile_in + a] *
                           w[r * lanes + a * CONFIG::tile_out + o];
                }
                acc[e][o] = sum;
            }
        }
        for (unsigned j = 0; j < CONFIG::n_out; j++) {
#pragma HLS UNROLL
            const typename CONFIG::accum_t &sum = acc[j / CONFIG::tile_out][j % CONFIG::tile_out];
            CONFIG::activation::store(CONFIG::scale::finish(sum, bias[j], j), y[t * CONFIG::n_out + j]);
        }
    }
}

// Resource, sparse weights: only the nonzero weights take turns. Entry k = b * reuse_factor + r is multiplier b's
// product in cycle r (the generator sorted entries by output and padded the last lane with zero weights), so
// block_factor = ceil(nonzero / reuse_factor) multipliers exist.
template <class CONFIG, class X, class Y>
void dense_resource_sparse(const X x[CONFIG::tokens * CONFIG::n_in], Y y[CONFIG::tokens * CONFIG::n_out],
                           const typename CONFIG::weight_t nz_w[CONFIG::n_nonzero],
                           const unsigned short nz_in[CONFIG::n_nonzero], const unsigned short nz_out[CONFIG::n_nonzero],
                           const typename CONFIG::bias_t bias[CONFIG::n_out]) {
    for (unsigned t = 0; t < CONFIG::tokens; t++) {
        typename CONFIG::accum_t acc[CONFIG::n_out];
#pragma HLS ARRAY_PARTITION variable = acc complete
        for (unsigned j = 0; j < CONFIG::n_out; j++) {
#pragma HLS UNROLL
            acc[j] = CONFIG::scale::template start<typename CONFIG::accum_t>(bias[j]);
        }
        for (unsigned r = 0; r < CONFIG::reuse_factor; r++) {
#pragma HLS PIPELINE II = 1
            for (unsigned b = 0; b < CONFIG::block_factor; b++) {
#pragma HLS UNROLL
                const unsigned k = b * CONFIG::reuse_factor + r;
                acc[nz_out[k]] += x[t * CONFIG::n_in + nz_in[k]] * nz_w[k];
            }
        }
        for (unsigned j = 0; j < CONFIG::n_out; j++) {
#pragma HLS UNROLL
            CONFIG::activation::store(CONFIG::scale::finish(acc[j], bias[j], j), y[t * CONFIG::n_out + j]);
        }
    }
}

} // namespace ag

#endif
