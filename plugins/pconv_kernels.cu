// The fused partial-convolution kernels and their C launchers (see pconv_kernels.cuh).
//
// One kernel pass per layer: implicit-GEMM convolution of the already-masked input, the window
// mask sum of the single-channel masks, renormalisation, bias, output masking, activation and the
// new mask. The block body is pconv::tile::run_block (pconv_tile.h), shared with the CPU emulator
// in pconv_host_check.cpp; this file only supplies the two GPU executors:
//   * SimtExecutor  - FP32: per-thread 4x8 register tile, FP32 FMA (no TF32, so FP32 stays exact).
//   * WmmaExecutor  - FP16: 4 warps x (2x2) 16x16x16 WMMA fragments, FP16 inputs, FP32 accumulators.
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>


#include "pconv_kernels.cuh"
#include "pconv_tile.h"

namespace pconv {
namespace tile {
namespace {

//! A CUDA thread: runs only its own thread id; barrier() is __syncthreads().
template <typename T>
struct SimtExecutor {
    float acc[kThreadM][kThreadN];
    Staging<T> stage;

    __device__ __forceinline__ Staging<T>& staging(int /*tid*/) { return stage; }

    template <typename F>
    __device__ __forceinline__ void for_each_thread(F&& f) {
        f(static_cast<int>(threadIdx.x));
    }
    __device__ __forceinline__ void barrier() { __syncthreads(); }
    __device__ __forceinline__ void zero_acc() {
#pragma unroll
        for (int i = 0; i < kThreadM; ++i)
#pragma unroll
            for (int j = 0; j < kThreadN; ++j) acc[i][j] = 0.0f;
    }
    __device__ __forceinline__ void mma(const SharedTile<T>& sh) {
        phase_fma(static_cast<int>(threadIdx.x), sh, acc);
    }
    __device__ __forceinline__ void store_acc(SharedTile<T>& sh) {
        phase_store_fma(static_cast<int>(threadIdx.x), acc, sh);
    }
};

//! Tensor cores: warp w computes rows 32*(w%2).. and channels 32*(w/2).. of the 64x64 tile.
struct WmmaExecutor {
    static constexpr int kWarpTile = 32;
    static constexpr int kFrag = 16;
    static constexpr int kFragsPerWarp = kWarpTile / kFrag;  // 2 x 2 fragments per warp
    static_assert(kBlockM == 2 * kWarpTile && kBlockN == 2 * kWarpTile && kThreads == 4 * 32,
                  "4 warps in a 2x2 layout cover the block tile");
    static_assert(kBlockK % kFrag == 0, "k slice is whole fragments");

    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, kFrag, kFrag, kFrag, float> acc[kFragsPerWarp]
                                                                                     [kFragsPerWarp];
    Staging<__half> stage;

    __device__ __forceinline__ Staging<__half>& staging(int /*tid*/) { return stage; }

    __device__ __forceinline__ int warp_m() const { return (threadIdx.x / 32) % 2; }
    __device__ __forceinline__ int warp_n() const { return (threadIdx.x / 32) / 2; }

    template <typename F>
    __device__ __forceinline__ void for_each_thread(F&& f) {
        f(static_cast<int>(threadIdx.x));
    }
    __device__ __forceinline__ void barrier() { __syncthreads(); }
    __device__ __forceinline__ void zero_acc() {
#pragma unroll
        for (int i = 0; i < kFragsPerWarp; ++i)
#pragma unroll
            for (int j = 0; j < kFragsPerWarp; ++j) nvcuda::wmma::fill_fragment(acc[i][j], 0.0f);
    }
    __device__ __forceinline__ void mma(const SharedTile<__half>& sh) {
        using namespace nvcuda;
        constexpr int kPitch = SharedTile<__half>::kPitch;
        const int row0 = warp_m() * kWarpTile;
        const int col0 = warp_n() * kWarpTile;
#pragma unroll
        for (int kk = 0; kk < kBlockK; kk += kFrag) {
            // A is row-major (m, k) with pitch kPitch; B is stored as (n, k) rows, i.e. the
            // (k, n) matrix in column-major order with the same pitch.
            wmma::fragment<wmma::matrix_a, kFrag, kFrag, kFrag, __half, wmma::row_major> a[kFragsPerWarp];
            wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFrag, __half, wmma::col_major> b[kFragsPerWarp];
#pragma unroll
            for (int i = 0; i < kFragsPerWarp; ++i)
                wmma::load_matrix_sync(a[i], &sh.slices.a[row0 + i * kFrag][kk], kPitch);
#pragma unroll
            for (int j = 0; j < kFragsPerWarp; ++j)
                wmma::load_matrix_sync(b[j], &sh.slices.b[col0 + j * kFrag][kk], kPitch);
#pragma unroll
            for (int i = 0; i < kFragsPerWarp; ++i)
#pragma unroll
                for (int j = 0; j < kFragsPerWarp; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
        }
    }
    __device__ __forceinline__ void store_acc(SharedTile<__half>& sh) {
        using namespace nvcuda;
        const int row0 = warp_m() * kWarpTile;
        const int col0 = warp_n() * kWarpTile;
        // c is (channel, pixel): the (pixel, channel) accumulator in column-major order.
#pragma unroll
        for (int i = 0; i < kFragsPerWarp; ++i)
#pragma unroll
            for (int j = 0; j < kFragsPerWarp; ++j)
                wmma::store_matrix_sync(&sh.c[col0 + j * kFrag][row0 + i * kFrag], acc[i][j], kLdC,
                                        wmma::mem_col_major);
    }
};

template <typename T, typename Exec>
__global__ void __launch_bounds__(kThreads) partial_conv2d_kernel(Geometry g, Tensors<T> t) {
    __shared__ SharedTile<T> sh;
    Exec ex;
    run_block(ex, g, t, static_cast<int64_t>(blockIdx.x), static_cast<int32_t>(blockIdx.y), sh);
}

template <typename T, typename Exec>
int32_t launch(const PConvParams* params, const Tensors<T>& t, cudaStream_t stream) {
    const int32_t status = pconv_validate_params(params);
    if (status != PCONV_OK) return status;
    const Geometry g = make_geometry(*params);
    if (g.gemm_m == 0) return PCONV_OK;
    const dim3 grid(static_cast<unsigned>(grid_m(g)), static_cast<unsigned>(grid_n(g)), 1);
    partial_conv2d_kernel<T, Exec><<<grid, kThreads, 0, stream>>>(g, t);
    return cudaGetLastError() == cudaSuccess ? PCONV_OK : PCONV_ERR_LAUNCH;
}

}  // namespace
}  // namespace tile
}  // namespace pconv

extern "C" {

int32_t pconv_output_extent(int32_t in, int32_t pad_a, int32_t pad_b, int32_t dilation, int32_t kernel,
                            int32_t stride) {
    return pconv::tile::output_extent(in, pad_a, pad_b, dilation, kernel, stride);
}

int32_t pconv_validate_params(const PConvParams* p) { return pconv::tile::validate_params(p); }

const char* pconv_status_string(int32_t status) {
    switch (status) {
        case PCONV_OK:
            return "ok";
        case PCONV_ERR_INVALID_PARAMS:
            return "invalid partial-convolution parameters (sizes, padding or mask channels)";
        case PCONV_ERR_LAUNCH:
            return "CUDA kernel launch failed";
        default:
            return "unknown pconv status";
    }
}

int32_t pconv_partial_conv2d_fp32(const PConvParams* params, const float* x, const float* mask, const float* w,
                                  const float* b, float* y, float* new_mask, cudaStream_t stream) {
    using namespace pconv::tile;
    const Tensors<float> t{x, mask, w, b, y, new_mask};
    return launch<float, SimtExecutor<float>>(params, t, stream);
}

int32_t pconv_partial_conv2d_fp16(const PConvParams* params, const __half* x, const float* mask,
                                  const __half* w, const __half* b, __half* y, float* new_mask,
                                  cudaStream_t stream) {
    using namespace pconv::tile;
    const Tensors<__half> t{x, mask, w, b, y, new_mask};
    return launch<__half, WmmaExecutor>(params, t, stream);
}

}  // extern "C"
