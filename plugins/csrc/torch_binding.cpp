// PyTorch binding of the fused partial-convolution launchers (pconv_kernels.cuh), so a GPU session
// can test and benchmark exactly the kernels the TensorRT plugin runs, without TensorRT.
// Built by pconv.plugins.torch_harness.load_kernels() with torch.utils.cpp_extension.
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include <vector>

#include "pconv_kernels.cuh"

namespace {

//! The sizes of x (logical N, C, H, W) and weight (C_out, C_in, kh, kw); the rest zero.
PConvParams shape_params(const torch::Tensor& x, const torch::Tensor& weight) {
    PConvParams p{};
    p.batch = static_cast<int32_t>(x.size(0));
    p.in_channels = static_cast<int32_t>(x.size(1));
    p.height = static_cast<int32_t>(x.size(2));
    p.width = static_cast<int32_t>(x.size(3));
    p.out_channels = static_cast<int32_t>(weight.size(0));
    p.kernel_h = static_cast<int32_t>(weight.size(2));
    p.kernel_w = static_cast<int32_t>(weight.size(3));
    return p;
}

//! Checks shared by both layouts; returns the launch parameters of x (logical N, C, H, W) and weight.
PConvParams make_params(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& weight,
                        const torch::Tensor& bias, const std::vector<int64_t>& stride, const std::vector<int64_t>& pads,
                        const std::vector<int64_t>& dilation, const std::vector<double>& mask_channel_weights,
                        double activation_alpha) {
    TORCH_CHECK(x.is_cuda() && mask.is_cuda() && weight.is_cuda() && bias.is_cuda(), "all tensors must be on CUDA");
    TORCH_CHECK(x.dim() == 4 && mask.dim() == 4 && weight.dim() == 4 && bias.dim() == 1,
                "expects x (N,C,H,W), mask (N,K,H,W), weight (C_out,C_in,kh,kw), bias (C_out)");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat16, "x must be float32 or float16");
    TORCH_CHECK(weight.scalar_type() == x.scalar_type() && bias.scalar_type() == x.scalar_type(),
                "weight and bias must have x's dtype");
    TORCH_CHECK(mask.scalar_type() == torch::kFloat32, "mask must be float32");
    TORCH_CHECK(stride.size() == 2 && pads.size() == 4 && dilation.size() == 2, "stride (2), pads (4), dilation (2)");
    TORCH_CHECK(mask_channel_weights.size() >= 1 && mask_channel_weights.size() <= PCONV_MAX_MASK_CHANNELS,
                "1..4 mask channel weights");
    TORCH_CHECK(mask.size(1) == static_cast<int64_t>(mask_channel_weights.size()), "mask channels != weights");
    TORCH_CHECK(mask.size(0) == x.size(0) && mask.size(2) == x.size(2) && mask.size(3) == x.size(3),
                "mask must match x in N, H, W");
    TORCH_CHECK(weight.size(1) == x.size(1) && bias.size(0) == weight.size(0), "weight/bias shape mismatch");
    PConvParams p = shape_params(x, weight);
    p.stride_h = static_cast<int32_t>(stride[0]);
    p.stride_w = static_cast<int32_t>(stride[1]);
    p.pad_top = static_cast<int32_t>(pads[0]);
    p.pad_left = static_cast<int32_t>(pads[1]);
    p.pad_bottom = static_cast<int32_t>(pads[2]);
    p.pad_right = static_cast<int32_t>(pads[3]);
    p.dilation_h = static_cast<int32_t>(dilation[0]);
    p.dilation_w = static_cast<int32_t>(dilation[1]);
    p.mask_channels = static_cast<int32_t>(mask_channel_weights.size());
    for (int32_t j = 0; j < p.mask_channels; ++j) p.mask_channel_weights[j] = static_cast<float>(mask_channel_weights[j]);
    p.activation_alpha = static_cast<float>(activation_alpha);
    p.out_height = pconv_output_extent(p.height, p.pad_top, p.pad_bottom, p.dilation_h, p.kernel_h, p.stride_h);
    p.out_width = pconv_output_extent(p.width, p.pad_left, p.pad_right, p.dilation_w, p.kernel_w, p.stride_w);
    TORCH_CHECK(pconv_validate_params(&p) == PCONV_OK, pconv_status_string(PCONV_ERR_INVALID_PARAMS));
    return p;
}

const __half* half_ptr(const torch::Tensor& t) { return reinterpret_cast<const __half*>(t.data_ptr<at::Half>()); }
__half* half_ptr(torch::Tensor& t) { return reinterpret_cast<__half*>(t.data_ptr<at::Half>()); }

//! One fused layer. channels_last=false: the NCHW launchers (FP32 or FP16). channels_last=true: the
//! channels-last FP16 path as the plugin runs it for kHWC8 tensors (the weight reordered by the C
//! launcher into a scratch tensor, the plugin's workspace, then the kernel); y is channels_last.
std::vector<torch::Tensor> partial_conv2d(torch::Tensor x, torch::Tensor mask, torch::Tensor weight,
                                          torch::Tensor bias, std::vector<int64_t> stride,
                                          std::vector<int64_t> pads, std::vector<int64_t> dilation,
                                          std::vector<double> mask_channel_weights, double activation_alpha,
                                          bool channels_last) {
    const PConvParams p =
        make_params(x, mask, weight, bias, stride, pads, dilation, mask_channel_weights, activation_alpha);
    if (channels_last) {
        TORCH_CHECK(x.scalar_type() == torch::kFloat16, "the channels-last kernel is FP16");
        TORCH_CHECK(pconv_nhwc_supported(&p) == 1, pconv_status_string(PCONV_ERR_UNSUPPORTED));
    }
    const auto layout = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    const c10::cuda::CUDAGuard guard(x.device());
    x = x.contiguous(layout);
    mask = mask.contiguous();
    weight = weight.contiguous();
    bias = bias.contiguous();
    auto y = torch::empty({p.batch, p.out_channels, p.out_height, p.out_width}, x.options().memory_format(layout));
    auto new_mask = torch::empty({p.batch, 1, p.out_height, p.out_width}, mask.options());
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    int32_t status;
    if (channels_last) {
        auto w_khwc = torch::empty({pconv_nhwc_weight_elements(&p)}, weight.options());
        status = pconv_reorder_weight_fp16(&p, half_ptr(weight), half_ptr(w_khwc), stream);
        if (status == PCONV_OK)
            status = pconv_partial_conv2d_fp16_nhwc(&p, half_ptr(x), mask.data_ptr<float>(), half_ptr(w_khwc),
                                                    half_ptr(bias), half_ptr(y), new_mask.data_ptr<float>(), stream);
    } else if (x.scalar_type() == torch::kFloat32) {
        status = pconv_partial_conv2d_fp32(&p, x.data_ptr<float>(), mask.data_ptr<float>(), weight.data_ptr<float>(),
                                           bias.data_ptr<float>(), y.data_ptr<float>(), new_mask.data_ptr<float>(),
                                           stream);
    } else {
        status = pconv_partial_conv2d_fp16(&p, half_ptr(x), mask.data_ptr<float>(), half_ptr(weight), half_ptr(bias),
                                           half_ptr(y), new_mask.data_ptr<float>(), stream);
    }
    TORCH_CHECK(status == PCONV_OK, pconv_status_string(status));
    return {y, new_mask};
}

//! The reorder launcher alone (tests compare it with weight.permute(0, 2, 3, 1)).
torch::Tensor reorder_weight(torch::Tensor x, torch::Tensor weight) {
    TORCH_CHECK(x.is_cuda() && weight.is_cuda() && weight.scalar_type() == torch::kFloat16, "CUDA FP16 tensors");
    TORCH_CHECK(x.dim() == 4 && weight.dim() == 4 && weight.size(1) == x.size(1), "x (N,C,H,W), weight (C_out,C,kh,kw)");
    PConvParams p = shape_params(x, weight);
    p.stride_h = p.stride_w = p.dilation_h = p.dilation_w = 1;
    p.mask_channels = 1;
    p.mask_channel_weights[0] = static_cast<float>(p.in_channels);
    p.out_height = pconv_output_extent(p.height, 0, 0, 1, p.kernel_h, 1);
    p.out_width = pconv_output_extent(p.width, 0, 0, 1, p.kernel_w, 1);
    const c10::cuda::CUDAGuard guard(x.device());
    weight = weight.contiguous();
    auto out = torch::empty({p.out_channels, p.kernel_h, p.kernel_w, p.in_channels}, weight.options());
    const int32_t status =
        pconv_reorder_weight_fp16(&p, half_ptr(weight), half_ptr(out), c10::cuda::getCurrentCUDAStream());
    TORCH_CHECK(status == PCONV_OK, pconv_status_string(status));
    return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "pconv fused partial-convolution kernels (the TensorRT plugin's CUDA launchers)";
    m.def("partial_conv2d", &partial_conv2d, "fused partial convolution -> (y, new_mask)", py::arg("x"),
          py::arg("mask"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("pads"),
          py::arg("dilation"), py::arg("mask_channel_weights"), py::arg("activation_alpha"),
          py::arg("channels_last") = false);
    m.def("reorder_weight", &reorder_weight, "weight (C_out,C_in,kh,kw) -> (C_out,kh,kw,C_in) by the C launcher",
          py::arg("x"), py::arg("weight"));
}
