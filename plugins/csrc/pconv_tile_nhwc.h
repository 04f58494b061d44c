// The channels-last FP16 block body: the fast path of the fused partial convolution.
//
// Why a second kernel: in NCHW the implicit-GEMM reduction index k = (c, r, s) walks memory with
// strides, so pconv_tile.h loads A one 2-byte element at a time with index math per element, and
// the load instructions, not the tensor cores, bound it. In NHWC with k = (r, s, c) ordered c-fastest,
// eight consecutive k are eight consecutive channels of one input pixel: one 16-byte asynchronous
// copy (cp.async, zero-filled outside the image) per eight k, decoded once per slice. So this kernel
// takes x and y channels-last, the weight reordered to (C_out, kh, kw, C_in) (reorder_index), and
// needs C_in and C_out to be multiples of 8. Masks stay (N, K, H, W) FP32 as everywhere else.
//
// Block tile kBlockM (128 output pixels) x BlockN (64 or 128 output channels), 8 warps in a 2 x 4
// layout, kStages-deep cp.async pipeline over kBlockK = 32 slices of k, WMMA m16n16k16 with FP32
// accumulators, epilogue through shared memory with 16-byte stores of 8 channels.
//
// Like pconv_tile.h, everything here is host+device C++ and runs in the CPU emulator
// (pconv_host_check.cpp) through an executor: the GPU's executor issues real cp.async / wmma
// instructions, the emulator's models their documented semantics, including that a cp.async
// destination is undefined until the thread's wait on its commit group (it fills it with NaN at
// issue time and copies at the wait), so a read before the right wait shows up as a wrong result.
#pragma once

#include "pconv_tile.h"

namespace pconv {
namespace nhwc {

using tile::Geometry;
using tile::RowInfo;
using tile::Tensors;

constexpr int kBlockM = 128;                // output pixels per block tile
constexpr int kBlockK = 32;                 // k per pipeline slice
constexpr int kStages = 3;                  // slices in flight (cp.async groups)
constexpr int kWarpsM = 2;                  // warp layout over the block tile
constexpr int kWarpsN = 4;
constexpr int kThreads = 32 * kWarpsM * kWarpsN;  // 256
constexpr int kChunk = 8;                   // halves per 16-byte copy
constexpr int kChunksK = kBlockK / kChunk;  // copies per tile row per slice
constexpr int kPitch = kBlockK + 8;         // shared row pitch in halves: 80 bytes, 16-byte multiple
constexpr int kFrag = 16;                   // WMMA m16n16k16

static_assert(kThreads % kChunksK == 0, "a thread keeps the same k chunk for all its rows");
static_assert((kPitch * 2) % 16 == 0 && (kFrag * kPitch * 2) % 32 == 0, "cp.async and WMMA alignment");

//! The compile-time shape of one kernel instance (BlockN = output channels per block).
template <int BlockN>
struct Config {
    static constexpr int kBlockN = BlockN;
    static constexpr int kWarpM = kBlockM / kWarpsM;
    static constexpr int kWarpN = BlockN / kWarpsN;
    static constexpr int kFragsM = kWarpM / kFrag;
    static constexpr int kFragsN = kWarpN / kFrag;
    static constexpr int kLdC = BlockN + 4;  // floats per accumulator row (16-byte multiple)
    static constexpr int kRowStep = kThreads / kChunksK;  // tile rows between one thread's copies
    static constexpr int kCopiesA = kBlockM / kRowStep;
    static constexpr int kCopiesB = BlockN / kRowStep;
    static constexpr int kGroups = BlockN / kChunk;  // 8-channel output groups per pixel row
    // Dynamic shared memory (bytes): the pipeline's stages, reused as the accumulator tile after
    // the last slice, then the rows' decoded pixels and window mask sums.
    static constexpr size_t kStageA = size_t(kBlockM) * kPitch * 2;
    static constexpr size_t kStageBytes = size_t(kBlockM + BlockN) * kPitch * 2;
    static constexpr size_t kPipeBytes = kStages * kStageBytes;
    static constexpr size_t kAccBytes = size_t(kBlockM) * kLdC * 4;
    static constexpr size_t kMainBytes = kPipeBytes > kAccBytes ? kPipeBytes : kAccBytes;
    static constexpr size_t kRowsOffset = (kMainBytes + 127) / 128 * 128;
    static constexpr size_t kMaskOffset = kRowsOffset + kBlockM * sizeof(RowInfo);
    static constexpr size_t kSmemBytes = kMaskOffset + kBlockM * sizeof(float);

    static_assert(kWarpM % kFrag == 0 && kWarpN % kFrag == 0, "warp tile is whole fragments");
    static_assert(kBlockM % kRowStep == 0 && BlockN % kRowStep == 0, "copies split evenly over threads");
    static_assert(kStageBytes % 128 == 0 && kStageA % 128 == 0, "stages keep WMMA/cp.async alignment");
    static_assert((kFrag * kLdC * 4) % 32 == 0 && kLdC % 4 == 0, "accumulator rows keep WMMA and Float4 alignment");
};

//! Typed views of the block's dynamic shared memory (base aligned to 128 bytes).
template <typename Cfg>
struct Smem {
    unsigned char* base;
    PCONV_HD __half* a(int stage) const { return reinterpret_cast<__half*>(base + stage * Cfg::kStageBytes); }
    PCONV_HD __half* b(int stage) const { return a(stage) + kBlockM * kPitch; }
    PCONV_HD float* acc() const { return reinterpret_cast<float*>(base); }
    PCONV_HD RowInfo* rows() const { return reinterpret_cast<RowInfo*>(base + Cfg::kRowsOffset); }
    PCONV_HD float* mask_sum() const { return reinterpret_cast<float*>(base + Cfg::kMaskOffset); }
};

//! The launcher's precondition beyond tile::validate_params: 16-byte channel chunks.
inline bool supported(const PConvParams& p) {
    return tile::validate_params(&p) == PCONV_OK && p.in_channels % kChunk == 0 && p.out_channels % kChunk == 0;
}

//! Output channels per block: 128 when the layer has that many, else 64 (less padding waste). The
//! launcher also falls back to 64 where the device cannot give a block Config<128>'s shared memory.
inline int block_n_for(const PConvParams& p) { return p.out_channels >= 128 ? 128 : 64; }

//! Weight reorder (C_out, C_in, kh, kw) -> (C_out, kh, kw, C_in): source index of destination `i`.
PCONV_HD int64_t reorder_index(const Geometry& g, int64_t i) {
    const int64_t co = i / g.gemm_k;
    int32_t rest = static_cast<int32_t>(i - co * g.gemm_k);  // (r * kw + s) * C_in + c
    const int32_t c = rest % g.in_channels;
    const int32_t rs = rest / g.in_channels;
    return co * g.gemm_k + static_cast<int64_t>(c) * g.kernel_area + rs;
}

//! What a thread keeps in registers about the tile rows it copies A for.
struct CopyRow {
    int64_t pixel_base;  // element offset of (n, 0, 0, 0) in NHWC x
    int32_t ih0, iw0;
    int32_t valid;
};

template <typename Cfg>
struct ThreadState {
    CopyRow rows[Cfg::kCopiesA];
};

//! Thread `tid`'s A rows: tile rows tid / kChunksK + kRowStep * i.
template <typename Cfg>
PCONV_HD void decode_copy_rows(int tid, const Geometry& g, int64_t m0, ThreadState<Cfg>& st) {
    for (int i = 0; i < Cfg::kCopiesA; ++i) {
        const RowInfo row = tile::decode_row(g, m0 + tid / kChunksK + Cfg::kRowStep * i);
        st.rows[i].pixel_base = row.x_base;  // n * C * H * W: the same in NHWC
        st.rows[i].ih0 = row.ih0;
        st.rows[i].iw0 = row.iw0;
        st.rows[i].valid = row.valid;
    }
}

//! Issue thread `tid`'s 16-byte copies of slice `k0` into `stage`; zero-filled outside the image,
//! past gemm_k and past C_out. Its chunk is k0 + 8 * (tid % kChunksK) for every row it copies.
template <typename Cfg, typename Ex>
PCONV_HD void issue_slice(Ex& ex, int tid, const Geometry& g, const Tensors<__half>& t, int32_t n0, int32_t k0,
                          const Smem<Cfg>& sm, int stage, const ThreadState<Cfg>& st) {
    const int kc = tid % kChunksK;
    const int row0 = tid / kChunksK;
    const int32_t k = k0 + kc * kChunk;
    const bool k_valid = k < g.gemm_k;
    // k = (r * kw + s) * C_in + c with C_in % 8 == 0: the chunk's 8 channels share (r, s).
    const int32_t rs = k_valid ? k / g.in_channels : 0;
    const int32_t c = k_valid ? k - rs * g.in_channels : 0;
    const int32_t r = rs / g.kernel_w;
    const int32_t dy = r * g.dilation_h;
    const int32_t dx = (rs - r * g.kernel_w) * g.dilation_w;
    __half* a = sm.a(stage);
    for (int i = 0; i < Cfg::kCopiesA; ++i) {
        const CopyRow& row = st.rows[i];
        const int32_t ih = row.ih0 + dy;
        const int32_t iw = row.iw0 + dx;
        const bool inside = k_valid && row.valid && ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
        const __half* src =
            inside ? t.x + row.pixel_base + (static_cast<int64_t>(ih) * g.width + iw) * g.in_channels + c : t.x;
        ex.copy16(tid, a + (row0 + Cfg::kRowStep * i) * kPitch + kc * kChunk, src, !inside);
    }
    __half* b = sm.b(stage);
    for (int j = 0; j < Cfg::kCopiesB; ++j) {
        const int32_t co = n0 + row0 + Cfg::kRowStep * j;
        const bool inside = k_valid && co < g.out_channels;
        const __half* src = inside ? t.w + static_cast<int64_t>(co) * g.gemm_k + k : t.w;
        ex.copy16(tid, b + (row0 + Cfg::kRowStep * j) * kPitch + kc * kChunk, src, !inside);
    }
}

//! One warp's share of the block tile: rows kWarpM * (warp % kWarpsM).., channels kWarpN * (warp / kWarpsM)..
//! `Api` is the same WMMA interface as tile::WarpTileMma's (device: nvcuda::wmma; emulator: a model).
template <typename Api, typename Cfg>
struct WarpTile {
    typename Api::Accumulator acc[Cfg::kFragsM][Cfg::kFragsN];

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
    PCONV_HD void zero() {
        for (int i = 0; i < Cfg::kFragsM; ++i)
            for (int j = 0; j < Cfg::kFragsN; ++j) Api::fill_zero(acc[i][j]);
    }

    //! acc += A (pixels x k, row-major) * B (channels x k rows = k x channels col-major) of one stage.
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
    PCONV_HD void mma(const __half* a, const __half* b, int warp) {
        const int row0 = (warp % kWarpsM) * Cfg::kWarpM;
        const int col0 = (warp / kWarpsM) * Cfg::kWarpN;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
        for (int kk = 0; kk < kBlockK; kk += kFrag) {
            typename Api::FragmentB fb[Cfg::kFragsN];
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
            for (int j = 0; j < Cfg::kFragsN; ++j) Api::load_b(fb[j], b + (col0 + j * kFrag) * kPitch + kk, kPitch);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
            for (int i = 0; i < Cfg::kFragsM; ++i) {  // one A fragment live at a time: fewer registers
                typename Api::FragmentA fa;
                Api::load_a(fa, a + (row0 + i * kFrag) * kPitch + kk, kPitch);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
                for (int j = 0; j < Cfg::kFragsN; ++j) Api::mma(acc[i][j], fa, fb[j]);
            }
        }
    }

    //! Accumulators to the shared (pixel, channel) row-major tile, pitch kLdC.
#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
    PCONV_HD void store(float* c, int warp) {
        const int row0 = (warp % kWarpsM) * Cfg::kWarpM;
        const int col0 = (warp / kWarpsM) * Cfg::kWarpN;
        for (int i = 0; i < Cfg::kFragsM; ++i)
            for (int j = 0; j < Cfg::kFragsN; ++j)
                Api::store_row_major(c + (row0 + i * kFrag) * Cfg::kLdC + col0 + j * kFrag, acc[i][j], Cfg::kLdC);
    }
};

//! Eight consecutive halves: one 16-byte load or store.
struct alignas(16) Half8 {
    __half v[kChunk];
};

//! Four consecutive floats: one 16-byte shared-memory read.
struct alignas(16) Float4 {
    float v[4];
};
static_assert(kChunk == 8, "the epilogue reads a group's accumulators as two Float4");

//! Epilogue: 8 channels of one pixel per step, 16-byte stores to NHWC y; the new mask once.
template <typename Cfg>
PCONV_HD void phase_epilogue(int tid, const Geometry& g, const Tensors<__half>& t, int32_t n0, bool write_mask,
                             const Smem<Cfg>& sm) {
    const float* acc = sm.acc();
    const RowInfo* rows = sm.rows();
    const float* mask_sum = sm.mask_sum();
    for (int idx = tid; idx < kBlockM * Cfg::kGroups; idx += kThreads) {
        const int i = idx / Cfg::kGroups;  // consecutive threads: consecutive channel groups of a pixel
        const int group = idx - i * Cfg::kGroups;
        const int32_t co = n0 + group * kChunk;
        const RowInfo& row = rows[i];
        if (!row.valid || co >= g.out_channels) continue;  // C_out % 8 == 0: a group is all in or all out
        // Two 16-byte reads of the 8 accumulators (scalar reads would be 4-way bank conflicts).
        const Float4* raw = reinterpret_cast<const Float4*>(acc + i * Cfg::kLdC + group * kChunk);
        const Float4 halves[2] = {raw[0], raw[1]};
        Half8 out;
        for (int e = 0; e < kChunk; ++e) {
            const float b = t.b != nullptr ? tile::to_float(t.b[co + e]) : 0.0f;  // b needs no alignment
            const float y = tile::epilogue(halves[e / 4].v[e % 4], mask_sum[i], g.window_size, b, g.activation_alpha);
            out.v[e] = tile::from_float<__half>(y);
        }
        const int64_t pixel = static_cast<int64_t>(row.n) * g.out_plane + row.out_pixel;
        *reinterpret_cast<Half8*>(t.y + pixel * g.out_channels + co) = out;
    }
    if (write_mask) tile::write_new_masks<kBlockM, kThreads>(tid, g, t.new_mask, rows, mask_sum);
}

//! The whole block, for the GPU kernel and the CPU emulator alike.
//!
//! Executor interface: for_each_thread(f), barrier(), state(tid) (the thread's ThreadState),
//! copy16(tid, dst, src, zero_fill), commit(tid), wait_prior(tid) (all but the newest
//! kStages - 2 groups done), wait_all(tid), zero_acc(), mma(a, b) (every warp), store_acc(c).
//!
//! Pipeline (one cp.async group per slice, committed even when empty so the counting stays
//! uniform): slices 0 .. kStages-2 are issued up front; iteration s waits for slice s, barriers
//! (its data visible to every warp, and every warp done with slice s-1's stage), issues slice
//! s + kStages - 1 into that freed stage, then multiplies slice s.
template <typename Cfg, typename Ex>
PCONV_HD void run_block(Ex& ex, const Geometry& g, const Tensors<__half>& t, int64_t block_m, int32_t block_n,
                        const Smem<Cfg>& sm) {
    const int64_t m0 = block_m * kBlockM;
    const int32_t n0 = block_n * Cfg::kBlockN;
    const int32_t slices = (g.gemm_k + kBlockK - 1) / kBlockK;
    ex.for_each_thread([&](int tid) {
        nhwc::decode_copy_rows(tid, g, m0, ex.state(tid));
        for (int s = 0; s < kStages - 1; ++s) {
            if (s < slices) nhwc::issue_slice(ex, tid, g, t, n0, s * kBlockK, sm, s, ex.state(tid));
            ex.commit(tid);
        }
        // Rows' pixels and window mask sums (read only after later barriers): overlaps the first copies.
        tile::decode_rows<kBlockM, kThreads>(tid, g, t.mask, m0, sm.rows(), sm.mask_sum());
    });
    ex.zero_acc();
    for (int32_t s = 0; s < slices; ++s) {
        ex.for_each_thread([&](int tid) { ex.wait_prior(tid); });
        ex.barrier();
        const int32_t next = s + kStages - 1;
        ex.for_each_thread([&](int tid) {
            if (next < slices) nhwc::issue_slice(ex, tid, g, t, n0, next * kBlockK, sm, next % kStages, ex.state(tid));
            ex.commit(tid);
        });
        ex.mma(sm.a(s % kStages), sm.b(s % kStages));
    }
    ex.for_each_thread([&](int tid) { ex.wait_all(tid); });
    ex.barrier();  // every warp done with the stages before the accumulator tile overwrites them
    ex.store_acc(sm.acc());
    ex.barrier();  // accumulator tile, rows and mask sums complete
    ex.for_each_thread([&](int tid) { nhwc::phase_epilogue(tid, g, t, n0, block_n == 0, sm); });
}

inline int64_t grid_pixels(const Geometry& g) { return (g.gemm_m + kBlockM - 1) / kBlockM; }
template <typename Cfg>
int32_t grid_channels(const Geometry& g) {
    return (g.out_channels + Cfg::kBlockN - 1) / Cfg::kBlockN;
}

}  // namespace nhwc
}  // namespace pconv
