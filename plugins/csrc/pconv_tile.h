// The fused partial-convolution kernel body, written once for the GPU and for a CPU emulator.
//
// There is no GPU on the machines that develop and test this project, so everything the kernel
// does except the wmma:: calls themselves is written here as plain host+device C++: the
// implicit-GEMM index math, the software-pipelined tile loads, the FP32 SIMT multiply-accumulate,
// the FP16 warp tiling (WarpTileMma), the window mask sum and the epilogue. The block body
// (run_block) takes an *executor* that says how "each thread" and "barrier" are realised:
// pconv_kernels.cu passes one that runs the calling CUDA thread and __syncthreads();
// pconv_host_check.cpp passes one that runs every thread id in turn, phase by phase (the CUDA
// meaning of barrier-separated phases), so the CPU check exercises the code the GPU runs.
//
// GEMM view: rows m = output pixels (n, oh, ow) of the whole batch, columns = output channels,
// reduction k = (c, r, s) over in_channels x kernel_h x kernel_w (the weight's own memory order).
// One thread block computes a kBlockM x kBlockN tile of y, looping over k in kBlockK slices.
//
// The formula (pconv/formula.py, same order):
//   S        = sum_j w_j * boxsum(mask_j)          zero padding = hole, FP32
//   new_mask = clip(S, 0, 1)
//   ratio    = window_size / max(S, 1) * new_mask   window_size = sum_j w_j * kh * kw
//   y        = (raw * ratio + bias) * new_mask      raw = conv(x, w) without bias, FP32 accumulator
//   y        = y >= 0 ? y : alpha * y
#pragma once

#include <cuda_fp16.h>
#include <stdint.h>

#include <climits>

#include "pconv_kernels.cuh"

#if defined(__CUDACC__)
#define PCONV_HD __host__ __device__ __forceinline__
#else
#define PCONV_HD inline
#endif

namespace pconv {
namespace tile {

constexpr int kBlockM = 64;   // output pixels per block tile
constexpr int kBlockN = 64;   // output channels per block tile
constexpr int kBlockK = 32;   // reduction slice staged in shared memory
constexpr int kThreads = 128; // 4 warps
// FP32 SIMT: each thread owns a kThreadM x kThreadN accumulator; thread (tm, tn) owns rows
// tm + kRowThreads * i and columns tn + kColThreads * j (strided, so a warp reads distinct rows).
constexpr int kRowThreads = 16;
constexpr int kColThreads = kThreads / kRowThreads;  // 8
constexpr int kThreadM = kBlockM / kRowThreads;      // 4
constexpr int kThreadN = kBlockN / kColThreads;      // 8
// Accumulator tile is stored column-major (one row per output channel) so the epilogue writes
// consecutive output pixels of one channel from consecutive threads (coalesced NCHW stores).
constexpr int kLdC = kBlockM + 4;  // floats; multiple of 4 for wmma::store_matrix_sync

static_assert(kRowThreads * kThreadM == kBlockM, "row mapping must cover the tile");
static_assert(kColThreads * kThreadN == kBlockN, "column mapping must cover the tile");
static_assert(kThreads % 32 == 0, "whole warps");
static_assert(kThreads % kBlockK == 0, "each thread loads one k column of the slices");

//! Shared-memory row pitch of the A/B slices, in elements. FP16 needs a multiple of 8 (16 bytes)
//! for wmma::load_matrix_sync and keeps every 16-row fragment 32-byte aligned (16*40*2 = 1280);
//! FP32 uses kBlockK + 1 so the 16 rows a warp reads fall into 16 different banks.
template <typename T>
struct SmemPitch {
    static constexpr int value = kBlockK + 1;
};
template <>
struct SmemPitch<__half> {
    static constexpr int value = kBlockK + 8;
};

//! Everything the kernel derives from PConvParams once per launch.
struct Geometry {
    int32_t batch, in_channels, height, width;
    int32_t out_channels, out_height, out_width;
    int32_t kernel_h, kernel_w, stride_h, stride_w;
    int32_t pad_top, pad_left, dilation_h, dilation_w;
    int32_t mask_channels;
    float mask_channel_weights[PCONV_MAX_MASK_CHANNELS];
    float activation_alpha;
    int32_t kernel_area;  // kh * kw
    int32_t gemm_k;       // in_channels * kh * kw
    int64_t out_plane;    // out_height * out_width
    int64_t gemm_m;       // batch * out_plane
    float window_size;    // sum(mask_channel_weights) * kh * kw
};

inline Geometry make_geometry(const PConvParams& p) {
    Geometry g{};
    g.batch = p.batch;
    g.in_channels = p.in_channels;
    g.height = p.height;
    g.width = p.width;
    g.out_channels = p.out_channels;
    g.out_height = p.out_height;
    g.out_width = p.out_width;
    g.kernel_h = p.kernel_h;
    g.kernel_w = p.kernel_w;
    g.stride_h = p.stride_h;
    g.stride_w = p.stride_w;
    g.pad_top = p.pad_top;
    g.pad_left = p.pad_left;
    g.dilation_h = p.dilation_h;
    g.dilation_w = p.dilation_w;
    g.mask_channels = p.mask_channels;
    float weight_sum = 0.0f;
    for (int j = 0; j < PCONV_MAX_MASK_CHANNELS; ++j) {
        g.mask_channel_weights[j] = j < p.mask_channels ? p.mask_channel_weights[j] : 0.0f;
        weight_sum += g.mask_channel_weights[j];
    }
    g.activation_alpha = p.activation_alpha;
    g.kernel_area = p.kernel_h * p.kernel_w;
    g.gemm_k = p.in_channels * g.kernel_area;
    g.out_plane = static_cast<int64_t>(p.out_height) * p.out_width;
    g.gemm_m = static_cast<int64_t>(p.batch) * g.out_plane;
    g.window_size = weight_sum * static_cast<float>(g.kernel_area);
    return g;
}

//! Output extent of a convolution (the C API's pconv_output_extent).
inline int32_t output_extent(int32_t in, int32_t pad_a, int32_t pad_b, int32_t dilation, int32_t kernel,
                            int32_t stride) {
    if (stride <= 0) return -1;
    const int64_t span = static_cast<int64_t>(in) + pad_a + pad_b - static_cast<int64_t>(dilation) * (kernel - 1) - 1;
    if (span < 0) return 0;
    return static_cast<int32_t>(span / stride + 1);
}

//! The C API's pconv_validate_params: what the launchers accept.
inline int32_t validate_params(const PConvParams* p) {
    if (p == nullptr) return PCONV_ERR_INVALID_PARAMS;
    const bool positive = p->batch >= 0 && p->in_channels > 0 && p->height > 0 && p->width > 0 &&
                          p->out_channels > 0 && p->kernel_h > 0 && p->kernel_w > 0 && p->stride_h > 0 &&
                          p->stride_w > 0 && p->dilation_h > 0 && p->dilation_w > 0 && p->pad_top >= 0 &&
                          p->pad_left >= 0 && p->pad_bottom >= 0 && p->pad_right >= 0;
    if (!positive) return PCONV_ERR_INVALID_PARAMS;
    if (p->mask_channels < 1 || p->mask_channels > PCONV_MAX_MASK_CHANNELS) return PCONV_ERR_INVALID_PARAMS;
    if (p->out_height != output_extent(p->height, p->pad_top, p->pad_bottom, p->dilation_h, p->kernel_h,
                                             p->stride_h) ||
        p->out_width != output_extent(p->width, p->pad_left, p->pad_right, p->dilation_w, p->kernel_w,
                                            p->stride_w) ||
        p->out_height <= 0 || p->out_width <= 0)
        return PCONV_ERR_INVALID_PARAMS;
    // 32-bit index pieces: k = c*kh*kw + ..., and the grid's channel dimension.
    const int64_t gemm_k = static_cast<int64_t>(p->in_channels) * p->kernel_h * p->kernel_w;
    const int64_t channel_tiles = (p->out_channels + kBlockN - 1) / kBlockN;
    const int64_t out_plane = static_cast<int64_t>(p->out_height) * p->out_width;
    const int64_t pixel_tiles = (p->batch * out_plane + kBlockM - 1) / kBlockM;
    if (gemm_k + kBlockK > INT32_MAX || channel_tiles > 65535 || pixel_tiles > INT32_MAX ||
        out_plane > INT32_MAX)
        return PCONV_ERR_INVALID_PARAMS;
    return PCONV_OK;
}

//! One GEMM row = one output pixel: where its window starts in the input.
struct RowInfo {
    int64_t x_base;     // n * in_channels * height * width: the pixel's image in x
    int32_t valid;      // 0 for the padding rows of the last tile
    int32_t n;          // batch index
    int32_t out_pixel;  // oh * out_width + ow
    int32_t ih0;        // oh * stride_h - pad_top
    int32_t iw0;        // ow * stride_w - pad_left
};

PCONV_HD RowInfo decode_row(const Geometry& g, int64_t m) {
    RowInfo row{};
    row.valid = m < g.gemm_m ? 1 : 0;
    if (!row.valid) return row;
    row.n = static_cast<int32_t>(m / g.out_plane);
    row.out_pixel = static_cast<int32_t>(m - static_cast<int64_t>(row.n) * g.out_plane);
    const int32_t oh = row.out_pixel / g.out_width;
    const int32_t ow = row.out_pixel - oh * g.out_width;
    row.ih0 = oh * g.stride_h - g.pad_top;
    row.iw0 = ow * g.stride_w - g.pad_left;
    row.x_base = static_cast<int64_t>(row.n) * g.in_channels * g.height * g.width;
    return row;
}

PCONV_HD float to_float(float v) { return v; }
PCONV_HD float to_float(__half v) { return __half2float(v); }
template <typename T>
PCONV_HD T from_float(float v);
template <>
PCONV_HD float from_float<float>(float v) {
    return v;
}
template <>
PCONV_HD __half from_float<__half>(float v) {
    return __float2half_rn(v);
}
template <typename T>
PCONV_HD T zero_value() {
    return from_float<T>(0.0f);
}

//! Where reduction index k = (c, r, s) reads from, relative to an output pixel's window origin.
struct KDecode {
    int32_t valid;         // k < gemm_k
    int32_t dy;            // r * dilation_h
    int32_t dx;            // s * dilation_w
    int64_t channel_base;  // c * height * width
};

PCONV_HD KDecode decode_k(const Geometry& g, int32_t k) {
    KDecode d{};
    d.valid = k < g.gemm_k ? 1 : 0;
    if (!d.valid) return d;
    const int32_t c = k / g.kernel_area;
    const int32_t rs = k - c * g.kernel_area;
    const int32_t r = rs / g.kernel_w;
    const int32_t s = rs - r * g.kernel_w;
    d.dy = r * g.dilation_h;
    d.dx = s * g.dilation_w;
    d.channel_base = static_cast<int64_t>(c) * g.height * g.width;
    return d;
}

//! A[m][k]: the implicit im2col element (zero outside the image: zero padding).
template <typename T>
PCONV_HD T load_a(const Geometry& g, const T* x, const RowInfo& row, const KDecode& kd) {
    if (!row.valid || !kd.valid) return zero_value<T>();
    const int32_t ih = row.ih0 + kd.dy;
    const int32_t iw = row.iw0 + kd.dx;
    if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) return zero_value<T>();
    return x[row.x_base + kd.channel_base + static_cast<int64_t>(ih) * g.width + iw];
}

//! B[k][co] = w[co][k] (the weight is (C_out, C_in, kh, kw): k is its contiguous inner index).
template <typename T>
PCONV_HD T load_b(const Geometry& g, const T* w, int32_t co, int32_t k) {
    if (co >= g.out_channels || k >= g.gemm_k) return zero_value<T>();
    return w[static_cast<int64_t>(co) * g.gemm_k + k];
}

//! S = sum_j w_j * boxsum(mask_j) over the output pixel's (dilated) window, in FP32.
PCONV_HD float window_mask_sum(const Geometry& g, const float* mask, const RowInfo& row) {
    float total = 0.0f;
    // Constant trip count and indices: the weights stay in registers/parameter space.
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int32_t j = 0; j < PCONV_MAX_MASK_CHANNELS; ++j) {
        if (j >= g.mask_channels) break;
        const int64_t plane = static_cast<int64_t>(row.n) * g.mask_channels + j;
        const float* m = mask + plane * g.height * g.width;
        float box = 0.0f;
        for (int32_t r = 0; r < g.kernel_h; ++r) {
            const int32_t ih = row.ih0 + r * g.dilation_h;
            if (ih < 0 || ih >= g.height) continue;
            for (int32_t s = 0; s < g.kernel_w; ++s) {
                const int32_t iw = row.iw0 + s * g.dilation_w;
                if (iw < 0 || iw >= g.width) continue;
                box += m[static_cast<int64_t>(ih) * g.width + iw];
            }
        }
        total += g.mask_channel_weights[j] * box;
    }
    return total;
}

PCONV_HD float clip01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

//! The new mask: clip(S, 0, 1).
PCONV_HD float new_mask_value(float mask_sum) { return clip01(mask_sum); }

//! Renormalise, add bias, zero the holes, activate: pconv.formula in its order, in FP32.
PCONV_HD float epilogue(float raw, float mask_sum, float window_size, float bias, float alpha) {
    const float new_mask = clip01(mask_sum);
    const float ratio = window_size / (mask_sum > 1.0f ? mask_sum : 1.0f) * new_mask;
    float y = raw * ratio;
    y = y + bias;
    y = y * new_mask;
    return y >= 0.0f ? y : alpha * y;
}

//! The block's shared memory. The accumulator tile `c` is only written after the k loop's last
//! barrier, when the A/B slices are dead, so it shares their storage (less shared memory per
//! block, more resident blocks). Every member offset stays 32-byte aligned for WMMA.
template <typename T>
struct alignas(128) SharedTile {
    static constexpr int kPitch = SmemPitch<T>::value;
    struct Slices {
        T a[kBlockM][kPitch];  // A slice: rows = output pixels, columns = k
        T b[kBlockN][kPitch];  // B slice stored transposed: rows = output channels, columns = k
    };
    union alignas(128) {
        Slices slices;
        float c[kBlockN][kLdC];  // accumulator tile, one row per output channel
    };
    RowInfo rows[kBlockM];
    float mask_sum[kBlockM];
};

//! The data pointers of one launch.
template <typename T>
struct Tensors {
    const T* x;
    const float* mask;
    const T* w;
    const T* b;  // may be null
    T* y;
    float* new_mask;
};

// ---- phases: each is what thread `tid` does between two barriers --------------------------

//! Decode a block's `BlockM` output pixels from m0 on and their window mask sums into `rows` and
//! `mask_sum` (thread `tid` of `Threads`). Shared by the NCHW and the channels-last tiles.
template <int BlockM, int Threads>
PCONV_HD void decode_rows(int tid, const Geometry& g, const float* mask, int64_t m0, RowInfo* rows,
                          float* mask_sum) {
    for (int i = tid; i < BlockM; i += Threads) {
        const RowInfo row = decode_row(g, m0 + i);
        rows[i] = row;
        mask_sum[i] = row.valid ? window_mask_sum(g, mask, row) : 0.0f;
    }
}

//! The new mask of the block's valid pixels (thread `tid` of `Threads`); one channel tile does it.
template <int BlockM, int Threads>
PCONV_HD void write_new_masks(int tid, const Geometry& g, float* new_mask, const RowInfo* rows,
                              const float* mask_sum) {
    for (int i = tid; i < BlockM; i += Threads) {
        const RowInfo& row = rows[i];
        if (!row.valid) continue;
        new_mask[static_cast<int64_t>(row.n) * g.out_plane + row.out_pixel] = new_mask_value(mask_sum[i]);
    }
}

//! Decode the tile's output pixels and their window mask sums (once per block).
template <typename T>
PCONV_HD void phase_rows(int tid, const Geometry& g, const float* mask, int64_t m0, SharedTile<T>& sh) {
    decode_rows<kBlockM, kThreads>(tid, g, mask, m0, sh.rows, sh.mask_sum);
}

//! Thread-to-element mapping of the slice loads: thread `tid` owns column kk = tid % kBlockK of
//! both slices and rows tid / kBlockK + kRowStep * ii, so its reduction index (c, r, s) is
//! decoded once per slice; consecutive threads walk k, which is contiguous in the weight and runs
//! along iw in x.
constexpr int kRowStep = kThreads / kBlockK;
constexpr int kStagedA = kBlockM / kRowStep;
constexpr int kStagedB = kBlockN / kRowStep;
static_assert(kBlockM % kRowStep == 0 && kBlockN % kRowStep == 0, "slice rows split evenly over threads");

//! One thread's share of the next slice, held in registers while the current slice is multiplied.
template <typename T>
struct Staging {
    T a[kStagedA];
    T b[kStagedB];
};

//! Read thread `tid`'s share of A[m0:m0+BM, k0:k0+BK] and B[k0:k0+BK, n0:n0+BN] from global memory
//! (zero outside the image, past C_out and past gemm_k).
template <typename T>
PCONV_HD void phase_fetch(int tid, const Geometry& g, const Tensors<T>& t, int32_t n0, int32_t k0,
                          const SharedTile<T>& sh, Staging<T>& st) {
    const int32_t k = k0 + tid % kBlockK;
    const int row0 = tid / kBlockK;
    const KDecode kd = decode_k(g, k);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int ii = 0; ii < kStagedA; ++ii) st.a[ii] = load_a(g, t.x, sh.rows[row0 + kRowStep * ii], kd);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int jj = 0; jj < kStagedB; ++jj) st.b[jj] = load_b(g, t.w, n0 + row0 + kRowStep * jj, k);
}

//! Write thread `tid`'s fetched share into the shared slices.
template <typename T>
PCONV_HD void phase_store_slice(int tid, const Staging<T>& st, SharedTile<T>& sh) {
    const int kk = tid % kBlockK;
    const int row0 = tid / kBlockK;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int ii = 0; ii < kStagedA; ++ii) sh.slices.a[row0 + kRowStep * ii][kk] = st.a[ii];
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int jj = 0; jj < kStagedB; ++jj) sh.slices.b[row0 + kRowStep * jj][kk] = st.b[jj];
}

//! FP32 SIMT multiply-accumulate of the staged slice into thread `tid`'s registers.
template <typename T>
PCONV_HD void phase_fma(int tid, const SharedTile<T>& sh, float (&acc)[kThreadM][kThreadN]) {
    const int tm = tid % kRowThreads;
    const int tn = tid / kRowThreads;
#if defined(__CUDA_ARCH__)
#pragma unroll 4
#endif
    for (int kk = 0; kk < kBlockK; ++kk) {
        float a_col[kThreadM];
        float b_row[kThreadN];
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
        for (int i = 0; i < kThreadM; ++i) a_col[i] = to_float(sh.slices.a[tm + kRowThreads * i][kk]);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
        for (int j = 0; j < kThreadN; ++j) b_row[j] = to_float(sh.slices.b[tn + kColThreads * j][kk]);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
        for (int i = 0; i < kThreadM; ++i) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
            for (int j = 0; j < kThreadN; ++j) acc[i][j] += a_col[i] * b_row[j];
        }
    }
}

//! Thread `tid` writes its FP32 SIMT accumulators into the shared accumulator tile.
template <typename T>
PCONV_HD void phase_store_fma(int tid, const float (&acc)[kThreadM][kThreadN], SharedTile<T>& sh) {
    const int tm = tid % kRowThreads;
    const int tn = tid / kRowThreads;
    for (int i = 0; i < kThreadM; ++i)
        for (int j = 0; j < kThreadN; ++j) sh.c[tn + kColThreads * j][tm + kRowThreads * i] = acc[i][j];
}

//! Epilogue: y for every (pixel, channel) of the tile; the new mask once (first channel tile).
template <typename T>
PCONV_HD void phase_epilogue(int tid, const Geometry& g, const Tensors<T>& t, int32_t n0, bool write_mask,
                             const SharedTile<T>& sh) {
    for (int idx = tid; idx < kBlockM * kBlockN; idx += kThreads) {
        const int j = idx / kBlockM;  // consecutive threads walk pixels of one channel: coalesced
        const int i = idx - j * kBlockM;
        const int32_t co = n0 + j;
        const RowInfo& row = sh.rows[i];
        if (!row.valid || co >= g.out_channels) continue;
        const float bias = t.b != nullptr ? to_float(t.b[co]) : 0.0f;
        const float y = epilogue(sh.c[j][i], sh.mask_sum[i], g.window_size, bias, g.activation_alpha);
        const int64_t plane = static_cast<int64_t>(row.n) * g.out_channels + co;
        t.y[plane * g.out_plane + row.out_pixel] = from_float<T>(y);
    }
    if (write_mask) write_new_masks<kBlockM, kThreads>(tid, g, t.new_mask, sh.rows, sh.mask_sum);
}

// ---- FP16 tensor-core tiling -----------------------------------------------------------------
constexpr int kWarpTile = 32;                     // each warp owns a 32x32 share of the block tile
constexpr int kFrag = 16;                         // WMMA m16n16k16
constexpr int kFragsPerWarp = kWarpTile / kFrag;  // 2 x 2 fragments per warp
static_assert(kBlockM == 2 * kWarpTile && kBlockN == 2 * kWarpTile && kThreads == 4 * 32,
              "4 warps in a 2x2 layout cover the block tile");
static_assert(kBlockK % kFrag == 0, "k slice is whole fragments");

//! One warp's share of the FP16 block tile: rows 32*(warp%2).., channels 32*(warp/2)..
//!
//! `Api` supplies the fragment types and the five WMMA calls: on the GPU nvcuda::wmma
//! (DeviceWmma in pconv_kernels.cu); in pconv_host_check.cpp a CPU model of their documented
//! semantics. The pointers, leading dimensions and layouts below are therefore the ones the CPU
//! check exercises:
//!   A slice (m, k) row-major, pitch kPitch          -> matrix_a row_major
//!   B slice stored as (n, k) rows = (k, n) col-major -> matrix_b col_major
//!   c is (channel, pixel) = (pixel, channel) col-major, pitch kLdC -> mem_col_major
template <typename Api>
struct WarpTileMma {
    typename Api::Accumulator acc[kFragsPerWarp][kFragsPerWarp];

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
    PCONV_HD void zero() {
        for (int i = 0; i < kFragsPerWarp; ++i)
            for (int j = 0; j < kFragsPerWarp; ++j) Api::fill_zero(acc[i][j]);
    }

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
    PCONV_HD void mma(const SharedTile<__half>& sh, int warp) {
        constexpr int kPitch = SharedTile<__half>::kPitch;
        const int row0 = (warp % 2) * kWarpTile;
        const int col0 = (warp / 2) * kWarpTile;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
        for (int kk = 0; kk < kBlockK; kk += kFrag) {
            typename Api::FragmentA a[kFragsPerWarp];
            typename Api::FragmentB b[kFragsPerWarp];
            for (int i = 0; i < kFragsPerWarp; ++i) Api::load_a(a[i], &sh.slices.a[row0 + i * kFrag][kk], kPitch);
            for (int j = 0; j < kFragsPerWarp; ++j) Api::load_b(b[j], &sh.slices.b[col0 + j * kFrag][kk], kPitch);
            for (int i = 0; i < kFragsPerWarp; ++i)
                for (int j = 0; j < kFragsPerWarp; ++j) Api::mma(acc[i][j], a[i], b[j]);
        }
    }

#ifdef __CUDACC__
#pragma nv_exec_check_disable
#endif
    PCONV_HD void store(SharedTile<__half>& sh, int warp) {
        const int row0 = (warp % 2) * kWarpTile;
        const int col0 = (warp / 2) * kWarpTile;
        for (int i = 0; i < kFragsPerWarp; ++i)
            for (int j = 0; j < kFragsPerWarp; ++j)
                Api::store_col_major(&sh.c[col0 + j * kFrag][row0 + i * kFrag], acc[i][j], kLdC);
    }
};

//! The whole block: the GPU kernel and the CPU emulator both run exactly this.
//!
//! Executor interface: for_each_thread(f) runs f(tid) for the thread(s) it stands for; barrier()
//! separates phases; staging(tid) is that thread's register staging; zero_acc(), mma(sh),
//! store_acc(sh) own the accumulators (SIMT registers, WMMA fragments, or the emulator's arrays).
//!
//! Software pipeline: the global loads of slice s+1 are issued before slice s is multiplied, so
//! their latency overlaps the math; they land in shared memory after the next barrier.
template <typename T, typename Exec>
PCONV_HD void run_block(Exec& ex, const Geometry& g, const Tensors<T>& t, int64_t block_m, int32_t block_n,
                        SharedTile<T>& sh) {
    const int64_t m0 = block_m * kBlockM;
    const int32_t n0 = block_n * kBlockN;
    ex.for_each_thread([&](int tid) { phase_rows(tid, g, t.mask, m0, sh); });
    ex.barrier();  // rows[] is read by every thread's loads
    ex.zero_acc();
    ex.for_each_thread([&](int tid) { phase_fetch(tid, g, t, n0, 0, sh, ex.staging(tid)); });
    for (int32_t k0 = 0; k0 < g.gemm_k; k0 += kBlockK) {
        ex.for_each_thread([&](int tid) { phase_store_slice(tid, ex.staging(tid), sh); });
        ex.barrier();  // slice staged
        const int32_t next = k0 + kBlockK;
        if (next < g.gemm_k) {  // block-uniform condition
            ex.for_each_thread([&](int tid) { phase_fetch(tid, g, t, n0, next, sh, ex.staging(tid)); });
        }
        ex.mma(sh);
        ex.barrier();  // slice consumed before the next store overwrites it (or c aliases it)
    }
    ex.store_acc(sh);
    ex.barrier();  // accumulator tile complete
    const bool write_mask = block_n == 0;
    ex.for_each_thread([&](int tid) { phase_epilogue(tid, g, t, n0, write_mask, sh); });
}

//! Grid size of a launch: (pixel tiles, channel tiles).
inline int64_t grid_m(const Geometry& g) { return (g.gemm_m + kBlockM - 1) / kBlockM; }
inline int32_t grid_n(const Geometry& g) { return (g.out_channels + kBlockN - 1) / kBlockN; }

}  // namespace tile
}  // namespace pconv
