// The narrow-output block body: layers with at most 8 output channels (the network's last layer,
// dec1: 3 outputs from 67 inputs at full resolution).
//
// Why: the GEMM tiles of pconv_tile.h are 64 output channels wide, so a 3-channel layer does 21x
// the work it needs, at the largest spatial size of the network. Here one thread owns one output
// pixel and all its (<= 8) channels in registers; the block's 128 threads share the weight, staged
// once in shared memory k-major so each reduction step reads one pixel of x (consecutive threads
// read consecutive pixels: coalesced) and one broadcast 16-byte vector of weights per 4 channels.
// FP32 FMA for both precisions (FP16 x and weights are widened), FP32 mask arithmetic, the same
// epilogue as the other kernels. Host+device code, run by the CPU emulator like the others.
#pragma once

#include "pconv_tile.h"

namespace pconv {
namespace narrow {

using tile::Geometry;
using tile::RowInfo;
using tile::Tensors;

constexpr int kThreads = 128;     // output pixels per block, one per thread
constexpr int kMaxOut = 8;        // output channels a thread keeps in registers
constexpr int kMaxK = 1024;       // reduction length whose weights fit the shared stage (32 KiB)

//! Whether the narrow kernel takes the layer (the launchers use it for these, the tiles otherwise).
inline bool supported(const PConvParams& p) {
    return tile::validate_params(&p) == PCONV_OK && p.out_channels <= kMaxOut &&
           static_cast<int64_t>(p.in_channels) * p.kernel_h * p.kernel_w <= kMaxK;
}

//! Output channels padded to a whole number of 4-float vectors.
inline int padded_out(const PConvParams& p) { return p.out_channels <= 4 ? 4 : 8; }

struct alignas(16) Vec4 {
    float v[4];
};

template <int OutPad>
struct SharedWeights {
    alignas(16) float w[kMaxK * OutPad];  // w[k * OutPad + co], zero for co >= C_out
};

//! Stage the weight k-major in shared memory as FP32 (thread `tid`'s share).
template <typename T, int OutPad>
PCONV_HD void phase_weights(int tid, const Geometry& g, const T* w, SharedWeights<OutPad>& sh) {
    for (int32_t i = tid; i < g.gemm_k * OutPad; i += kThreads) {
        const int32_t k = i / OutPad;
        const int32_t co = i - k * OutPad;
        sh.w[i] = co < g.out_channels ? tile::to_float(w[static_cast<int64_t>(co) * g.gemm_k + k]) : 0.0f;
    }
}

//! Thread `tid`: one output pixel, every output channel, the new mask.
template <typename T, int OutPad>
PCONV_HD void phase_pixel(int tid, const Geometry& g, const Tensors<T>& t, int64_t m0,
                          const SharedWeights<OutPad>& sh) {
    const RowInfo row = tile::decode_row(g, m0 + tid);
    if (!row.valid) return;
    const float mask_sum = tile::window_mask_sum(g, t.mask, row);
    float acc[OutPad];
    for (int co = 0; co < OutPad; ++co) acc[co] = 0.0f;
    const Vec4* wv = reinterpret_cast<const Vec4*>(sh.w);
    int32_t k = 0;
    for (int32_t c = 0; c < g.in_channels; ++c) {
        const T* plane = t.x + row.x_base + static_cast<int64_t>(c) * g.height * g.width;
        for (int32_t r = 0; r < g.kernel_h; ++r) {
            const int32_t ih = row.ih0 + r * g.dilation_h;
            const bool row_inside = ih >= 0 && ih < g.height;
            for (int32_t s = 0; s < g.kernel_w; ++s, ++k) {
                const int32_t iw = row.iw0 + s * g.dilation_w;
                if (!row_inside || iw < 0 || iw >= g.width) continue;  // zero padding
                const float v = tile::to_float(plane[static_cast<int64_t>(ih) * g.width + iw]);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
                for (int q = 0; q < OutPad / 4; ++q) {
                    const Vec4 w4 = wv[k * (OutPad / 4) + q];  // same address in every thread: broadcast
                    for (int e = 0; e < 4; ++e) acc[4 * q + e] += v * w4.v[e];
                }
            }
        }
    }
    for (int co = 0; co < OutPad; ++co) {
        if (co >= g.out_channels) break;
        const float bias = t.b != nullptr ? tile::to_float(t.b[co]) : 0.0f;
        const float y = tile::epilogue(acc[co], mask_sum, g.window_size, bias, g.activation_alpha);
        const int64_t plane = static_cast<int64_t>(row.n) * g.out_channels + co;
        t.y[plane * g.out_plane + row.out_pixel] = tile::from_float<T>(y);
    }
    t.new_mask[static_cast<int64_t>(row.n) * g.out_plane + row.out_pixel] = tile::new_mask_value(mask_sum);
}

//! The whole block. Executor: for_each_thread(f), barrier().
template <typename T, int OutPad, typename Exec>
PCONV_HD void run_block(Exec& ex, const Geometry& g, const Tensors<T>& t, int64_t block_m,
                        SharedWeights<OutPad>& sh) {
    ex.for_each_thread([&](int tid) { narrow::phase_weights<T, OutPad>(tid, g, t.w, sh); });
    ex.barrier();  // weights staged
    ex.for_each_thread([&](int tid) { narrow::phase_pixel<T, OutPad>(tid, g, t, block_m * kThreads, sh); });
}

inline int64_t grid_pixels(const Geometry& g) { return (g.gemm_m + kThreads - 1) / kThreads; }

}  // namespace narrow
}  // namespace pconv
