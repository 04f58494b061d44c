// Plain C launcher API of the fused partial-convolution kernels.
//
// This header is what the TensorRT glue (pconv_plugin.cpp) and the PyTorch harness binding
// include: no TensorRT, no CUTLASS, no device code, so a host compiler (g++) can read it. The
// kernels themselves are in pconv_kernels.cu; their index math, mask sum, epilogue and tile loop
// live in pconv_tile.h as host+device functions so a CPU program can check them without a GPU.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//! Most single-channel masks one layer can take (pconv.plugin_fields.MAX_MASK_CHANNELS).
#define PCONV_MAX_MASK_CHANNELS 4

//! One partial-convolution layer call. Tensors are dense NCHW:
//!   x        (batch, in_channels, height, width)            features, already multiplied by their masks
//!   mask     (batch, mask_channels, height, width)  FP32    one single-channel mask per channel group
//!   w        (out_channels, in_channels, kernel_h, kernel_w)
//!   b        (out_channels) or NULL
//!   y        (batch, out_channels, out_height, out_width)
//!   new_mask (batch, 1, out_height, out_width)      FP32
typedef struct PConvParams {
    int32_t batch;
    int32_t in_channels;
    int32_t height;
    int32_t width;
    int32_t out_channels;
    int32_t out_height;  //!< must equal pconv_output_extent(height, pad_top, pad_bottom, ...)
    int32_t out_width;   //!< must equal pconv_output_extent(width, pad_left, pad_right, ...)
    int32_t kernel_h;
    int32_t kernel_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t pad_bottom;
    int32_t pad_right;
    int32_t dilation_h;
    int32_t dilation_w;
    int32_t mask_channels;  //!< 1..PCONV_MAX_MASK_CHANNELS
    //! Feature channels each mask channel stands for; window size = sum * kernel_h * kernel_w.
    float mask_channel_weights[PCONV_MAX_MASK_CHANNELS];
    //! y >= 0 ? y : activation_alpha * y  (relu: 0, none: 1, leaky_relu: its slope)
    float activation_alpha;
} PConvParams;

enum PConvStatus {
    PCONV_OK = 0,
    PCONV_ERR_INVALID_PARAMS = 1,  //!< a size is non-positive, inconsistent or too large
    PCONV_ERR_LAUNCH = 2,          //!< cudaGetLastError() after the launch was not cudaSuccess
    PCONV_ERR_UNSUPPORTED = 3,     //!< channels-last kernel: C_in or C_out not a multiple of 8
    PCONV_ERR_MISALIGNED = 4,      //!< channels-last kernel: x, w or y not 16-byte aligned
};

//! Output extent of a convolution: (in + pad_a + pad_b - dilation*(kernel-1) - 1) / stride + 1.
int32_t pconv_output_extent(int32_t in, int32_t pad_a, int32_t pad_b, int32_t dilation, int32_t kernel,
                            int32_t stride);

//! PCONV_OK when the launchers accept these parameters, else PCONV_ERR_INVALID_PARAMS.
int32_t pconv_validate_params(const PConvParams* params);

//! Human-readable text of a status code (static string).
const char* pconv_status_string(int32_t status);

//! FP32 features/weights/bias, FP32 accumulation (no TF32), FP32 mask arithmetic.
int32_t pconv_partial_conv2d_fp32(const PConvParams* params, const float* x, const float* mask,
                                  const float* w, const float* b, float* y, float* new_mask,
                                  cudaStream_t stream);

//! FP16 features/weights/bias on tensor cores (WMMA 16x16x16), FP32 accumulation and mask arithmetic.
int32_t pconv_partial_conv2d_fp16(const PConvParams* params, const __half* x, const float* mask,
                                  const __half* w, const __half* b, __half* y, float* new_mask,
                                  cudaStream_t stream);

// ---- channels-last FP16 (the fast path; pconv_tile_nhwc.h) ------------------------------------
// x (batch, height, width, in_channels) and y (batch, out_height, out_width, out_channels) are
// NHWC (PyTorch channels_last, TensorRT kHWC8 when the channels are multiples of 8); the weight is
// reordered once per call to (out_channels, kernel_h, kernel_w, in_channels); masks, bias and
// new_mask as above. x, the reordered weight and y must be 16-byte aligned.

//! 1 when the channels-last kernel takes these parameters (valid, C_in and C_out multiples of 8).
int32_t pconv_nhwc_supported(const PConvParams* params);

//! Elements of the reordered weight: out_channels * kernel_h * kernel_w * in_channels.
int64_t pconv_nhwc_weight_elements(const PConvParams* params);

//! w (C_out, C_in, kh, kw) -> w_khwc (C_out, kh, kw, C_in), on `stream`.
int32_t pconv_reorder_weight_fp16(const PConvParams* params, const __half* w, __half* w_khwc,
                                  cudaStream_t stream);

//! The fused layer on channels-last FP16 tensors: tensor cores (WMMA) fed by a cp.async pipeline.
int32_t pconv_partial_conv2d_fp16_nhwc(const PConvParams* params, const __half* x_nhwc, const float* mask,
                                       const __half* w_khwc, const __half* b, __half* y_nhwc,
                                       float* new_mask, cudaStream_t stream);

#ifdef __cplusplus
}  // extern "C"
#endif
