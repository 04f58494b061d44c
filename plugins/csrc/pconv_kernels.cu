// The fused partial-convolution kernels and their C launchers (see pconv_kernels.cuh).
//
// One kernel pass per layer: implicit-GEMM convolution of the already-masked input, the window
// mask sum of the single-channel masks, renormalisation, bias, output masking, activation and the
// new mask. Layers with at most 8 output channels run the narrow kernel (pconv_tile_narrow.h,
// one thread per output pixel); channels-last FP16 runs pconv_tile_nhwc.h. The tiled NCHW block
// body is pconv::tile::run_block (pconv_tile.h), shared with the CPU emulator in
// pconv_host_check.cpp; this file only supplies the GPU executors:
//   * SimtExecutor  - FP32: per-thread 4x8 register tile, FP32 FMA (no TF32, so FP32 stays exact).
//   * WmmaExecutor  - FP16: 4 warps x (2x2) 16x16x16 WMMA fragments, FP16 inputs, FP32 accumulators
//                     (the warp tiling is WarpTileMma in pconv_tile.h; only the wmma:: calls are here).
#include <cuda_fp16.h>
#include <cuda_pipeline_primitives.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>

#include "pconv_kernels.cuh"
#include "pconv_tile.h"
#include "pconv_tile_narrow.h"
#include "pconv_tile_nhwc.h"

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

//! The WMMA calls of WarpTileMma (pconv_tile.h), on the tensor cores.
struct DeviceWmma {
    using FragmentA = nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, kFrag, kFrag, kFrag, __half,
                                             nvcuda::wmma::row_major>;
    using FragmentB = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, kFrag, kFrag, kFrag, __half,
                                             nvcuda::wmma::col_major>;
    using Accumulator = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, kFrag, kFrag, kFrag, float>;

    static __device__ __forceinline__ void fill_zero(Accumulator& c) { nvcuda::wmma::fill_fragment(c, 0.0f); }
    static __device__ __forceinline__ void load_a(FragmentA& a, const __half* p, int ldm) {
        nvcuda::wmma::load_matrix_sync(a, p, ldm);
    }
    static __device__ __forceinline__ void load_b(FragmentB& b, const __half* p, int ldm) {
        nvcuda::wmma::load_matrix_sync(b, p, ldm);
    }
    static __device__ __forceinline__ void mma(Accumulator& c, const FragmentA& a, const FragmentB& b) {
        nvcuda::wmma::mma_sync(c, a, b, c);
    }
    static __device__ __forceinline__ void store_col_major(float* p, const Accumulator& c, int ldm) {
        nvcuda::wmma::store_matrix_sync(p, c, ldm, nvcuda::wmma::mem_col_major);
    }
    static __device__ __forceinline__ void store_row_major(float* p, const Accumulator& c, int ldm) {
        nvcuda::wmma::store_matrix_sync(p, c, ldm, nvcuda::wmma::mem_row_major);
    }
};

//! Tensor cores: each warp runs WarpTileMma for its 32x32 share of the 64x64 block tile.
struct WmmaExecutor {
    WarpTileMma<DeviceWmma> tile;
    Staging<__half> stage;

    __device__ __forceinline__ Staging<__half>& staging(int /*tid*/) { return stage; }
    __device__ __forceinline__ int warp() const { return static_cast<int>(threadIdx.x / 32); }

    template <typename F>
    __device__ __forceinline__ void for_each_thread(F&& f) {
        f(static_cast<int>(threadIdx.x));
    }
    __device__ __forceinline__ void barrier() { __syncthreads(); }
    __device__ __forceinline__ void zero_acc() { tile.zero(); }
    __device__ __forceinline__ void mma(const SharedTile<__half>& sh) { tile.mma(sh, warp()); }
    __device__ __forceinline__ void store_acc(SharedTile<__half>& sh) { tile.store(sh, warp()); }
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

namespace nhwc {
namespace {

//! A CUDA thread of the channels-last kernel: cp.async through the CUDA pipeline primitives
//! (16-byte cp.async.cg; zero_fill copies no byte and zeroes the destination).
template <typename Cfg>
struct DeviceExecutor {
    ThreadState<Cfg> st;
    WarpTile<tile::DeviceWmma, Cfg> warp_tile;

    __device__ __forceinline__ ThreadState<Cfg>& state(int /*tid*/) { return st; }
    template <typename F>
    __device__ __forceinline__ void for_each_thread(F&& f) {
        f(static_cast<int>(threadIdx.x));
    }
    __device__ __forceinline__ void barrier() { __syncthreads(); }
    __device__ __forceinline__ void copy16(int /*tid*/, __half* dst, const __half* src, bool zero_fill) {
        __pipeline_memcpy_async(dst, src, 16, zero_fill ? 16 : 0);
    }
    __device__ __forceinline__ void commit(int /*tid*/) { __pipeline_commit(); }
    __device__ __forceinline__ void wait_prior(int /*tid*/) { __pipeline_wait_prior(kStages - 2); }
    __device__ __forceinline__ void wait_all(int /*tid*/) { __pipeline_wait_prior(0); }
    __device__ __forceinline__ int warp() const { return static_cast<int>(threadIdx.x / 32); }
    __device__ __forceinline__ void zero_acc() { warp_tile.zero(); }
    __device__ __forceinline__ void mma(const __half* a, const __half* b) { warp_tile.mma(a, b, warp()); }
    __device__ __forceinline__ void store_acc(float* c) { warp_tile.store(c, warp()); }
};

// 2 blocks per SM: caps registers at 128 per thread (the accumulators are 64 of them at BlockN 128).
template <typename Cfg>
__global__ void __launch_bounds__(kThreads, 2) partial_conv2d_nhwc_kernel(Geometry g, Tensors<__half> t) {
    extern __shared__ __align__(128) unsigned char smem[];
    DeviceExecutor<Cfg> ex;
    const Smem<Cfg> sm{smem};
    nhwc::run_block<Cfg>(ex, g, t, static_cast<int64_t>(blockIdx.x), static_cast<int32_t>(blockIdx.y), sm);
}

__global__ void reorder_weight_kernel(Geometry g, const __half* w, __half* w_khwc, int64_t count) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        w_khwc[i] = w[nhwc::reorder_index(g, i)];
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

//! Over 48 KiB of dynamic shared memory needs an opt-in, which belongs to the current CUDA context
//! (so no process-wide cache: a device reset or a second context on the device starts without it).
//! Reading the kernel's attributes first keeps the common case to one query; both calls are legal
//! inside a CUDA graph capture (neither is a stream operation). A failure's sticky-free error is
//! cleared so that the next, unrelated launch check does not report it.
template <typename Cfg>
bool allow_dynamic_smem() {
    cudaFuncAttributes attributes{};
    if (cudaFuncGetAttributes(&attributes, partial_conv2d_nhwc_kernel<Cfg>) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    if (static_cast<size_t>(attributes.maxDynamicSharedSizeBytes) >= Cfg::kSmemBytes) return true;
    if (cudaFuncSetAttribute(partial_conv2d_nhwc_kernel<Cfg>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(Cfg::kSmemBytes)) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return true;
}

//! Shared memory one block may have on the current device with the opt-in (0 if unknown):
//! 163 KiB on sm_80, 227 KiB on sm_90, 99 KiB on sm_86/89, 64 KiB on sm_75.
size_t block_smem_optin() {
    int device = 0, optin = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return static_cast<size_t>(optin);
}

template <typename Cfg>
int32_t launch(const Geometry& g, const Tensors<__half>& t, cudaStream_t stream) {
    if (!allow_dynamic_smem<Cfg>()) return PCONV_ERR_LAUNCH;
    const dim3 grid(static_cast<unsigned>(grid_pixels(g)), static_cast<unsigned>(grid_channels<Cfg>(g)), 1);
    partial_conv2d_nhwc_kernel<Cfg><<<grid, kThreads, Cfg::kSmemBytes, stream>>>(g, t);
    return cudaGetLastError() == cudaSuccess ? PCONV_OK : PCONV_ERR_LAUNCH;
}

}  // namespace
}  // namespace nhwc

namespace narrow {
namespace {

//! A CUDA thread: runs its own thread id; barrier() is __syncthreads().
struct ThreadExecutor {
    template <typename F>
    __device__ __forceinline__ void for_each_thread(F&& f) {
        f(static_cast<int>(threadIdx.x));
    }
    __device__ __forceinline__ void barrier() { __syncthreads(); }
};

template <typename T, int OutPad>
__global__ void __launch_bounds__(kThreads) partial_conv2d_narrow_kernel(Geometry g, Tensors<T> t) {
    __shared__ SharedWeights<OutPad> sh;
    ThreadExecutor ex;
    narrow::run_block<T, OutPad>(ex, g, t, static_cast<int64_t>(blockIdx.x), sh);
}

template <typename T>
int32_t launch(const PConvParams& p, const Tensors<T>& t, cudaStream_t stream) {
    const Geometry g = pconv::tile::make_geometry(p);
    if (g.gemm_m == 0) return PCONV_OK;
    const dim3 grid(static_cast<unsigned>(grid_pixels(g)), 1, 1);
    if (padded_out(p) == 4)
        partial_conv2d_narrow_kernel<T, 4><<<grid, kThreads, 0, stream>>>(g, t);
    else
        partial_conv2d_narrow_kernel<T, 8><<<grid, kThreads, 0, stream>>>(g, t);
    return cudaGetLastError() == cudaSuccess ? PCONV_OK : PCONV_ERR_LAUNCH;
}

}  // namespace
}  // namespace narrow
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
        case PCONV_ERR_UNSUPPORTED:
            return "the channels-last kernel needs in and out channels that are multiples of 8";
        case PCONV_ERR_MISALIGNED:
            return "the channels-last kernel needs 16-byte aligned x, weight and y";
        default:
            return "unknown pconv status";
    }
}

int32_t pconv_partial_conv2d_fp32(const PConvParams* params, const float* x, const float* mask, const float* w,
                                  const float* b, float* y, float* new_mask, cudaStream_t stream) {
    using namespace pconv::tile;
    const Tensors<float> t{x, mask, w, b, y, new_mask};
    if (params != nullptr && pconv::narrow::supported(*params)) return pconv::narrow::launch(*params, t, stream);
    return launch<float, SimtExecutor<float>>(params, t, stream);
}

int32_t pconv_partial_conv2d_fp16(const PConvParams* params, const __half* x, const float* mask,
                                  const __half* w, const __half* b, __half* y, float* new_mask,
                                  cudaStream_t stream) {
    using namespace pconv::tile;
    const Tensors<__half> t{x, mask, w, b, y, new_mask};
    if (params != nullptr && pconv::narrow::supported(*params)) return pconv::narrow::launch(*params, t, stream);
    return launch<__half, WmmaExecutor>(params, t, stream);
}

int32_t pconv_nhwc_supported(const PConvParams* params) {
    return params != nullptr && pconv::nhwc::supported(*params) ? 1 : 0;
}

int64_t pconv_nhwc_weight_elements(const PConvParams* params) {
    if (params == nullptr || pconv_validate_params(params) != PCONV_OK) return 0;
    return static_cast<int64_t>(params->out_channels) * params->in_channels * params->kernel_h * params->kernel_w;
}

int32_t pconv_reorder_weight_fp16(const PConvParams* params, const __half* w, __half* w_khwc, cudaStream_t stream) {
    const int32_t status = pconv_validate_params(params);
    if (status != PCONV_OK) return status;
    const pconv::tile::Geometry g = pconv::tile::make_geometry(*params);
    const int64_t count = pconv_nhwc_weight_elements(params);
    const int64_t blocks = (count + 255) / 256;
    pconv::nhwc::reorder_weight_kernel<<<static_cast<unsigned>(blocks < 4096 ? blocks : 4096), 256, 0, stream>>>(
        g, w, w_khwc, count);
    return cudaGetLastError() == cudaSuccess ? PCONV_OK : PCONV_ERR_LAUNCH;
}

int32_t pconv_partial_conv2d_fp16_nhwc(const PConvParams* params, const __half* x_nhwc, const float* mask,
                                       const __half* w_khwc, const __half* b, __half* y_nhwc, float* new_mask,
                                       cudaStream_t stream) {
    using namespace pconv::nhwc;
    const int32_t status = pconv_validate_params(params);
    if (status != PCONV_OK) return status;
    if (!supported(*params)) return PCONV_ERR_UNSUPPORTED;
    if (!aligned16(x_nhwc) || !aligned16(w_khwc) || !aligned16(y_nhwc)) return PCONV_ERR_MISALIGNED;
    const pconv::tile::Geometry g = pconv::tile::make_geometry(*params);
    if (g.gemm_m == 0) return PCONV_OK;
    const Tensors<__half> t{x_nhwc, mask, w_khwc, b, y_nhwc, new_mask};
    // 128-channel tiles where the layer is that wide and the device's shared memory holds them.
    const size_t optin = block_smem_optin();
    if (block_n_for(*params) == 128 && optin >= Config<128>::kSmemBytes) return launch<Config<128>>(g, t, stream);
    if (optin < Config<64>::kSmemBytes) return PCONV_ERR_UNSUPPORTED;
    return launch<Config<64>>(g, t, stream);
}

}  // extern "C"
