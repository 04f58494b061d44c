"""The plugin's CUDA kernels as a PyTorch extension, for GPU tests and benchmarks without TensorRT.

:func:`load_kernels` compiles ``pconv_kernels.cu`` plus the small binding ``torch_binding.cpp``
with :func:`torch.utils.cpp_extension.load`, so what is tested is exactly what the TensorRT plugin
launches. :func:`fused_partial_conv` runs one layer; :func:`fused_unet_forward` runs a whole
:class:`~pconv.training.unet.PConvUNet` with one fused call per layer, wired as the plugin-form ONNX
graph is (BatchNorm folded into weight and bias, features kept masked between layers).

torch is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pconv.config import LayerSpec, ModelConfig
from pconv.formula import effective_slope
from pconv.network import unet_forward
from pconv.plugins import plugin_source_dir, user_cache_dir

if TYPE_CHECKING:
    from torch import Tensor

    from pconv.training.unet import PConvUNet

#: ``partial_conv(x, mask, weight, bias, spec) -> (y, new_mask)``: one fused layer.
PartialConvFn = Callable[["Tensor", "Tensor", "Tensor", "Tensor", LayerSpec], tuple["Tensor", "Tensor"]]

_EXTENSION: ModuleType | None = None


def load_kernels(verbose: bool = False, build_dir: Path | None = None) -> ModuleType:
    """Compile (once, cached on disk by torch) and import the kernels' PyTorch extension.

    Compiles for the visible GPU's architecture unless ``TORCH_CUDA_ARCH_LIST`` is set.
    """
    global _EXTENSION
    if _EXTENSION is not None:
        return _EXTENSION
    import torch
    from torch.utils.cpp_extension import load

    if not torch.cuda.is_available():
        from pconv.errors import PconvError

        raise PconvError("the fused-kernel harness needs a CUDA GPU and a CUDA build of PyTorch")
    if "TORCH_CUDA_ARCH_LIST" not in os.environ:
        major, minor = torch.cuda.get_device_capability()
        os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"
    src = plugin_source_dir()
    out = build_dir or user_cache_dir() / "torch-ext"
    out.mkdir(parents=True, exist_ok=True)
    _EXTENSION = load(
        name="pconv_fused_kernels",
        sources=[str(src / "torch_binding.cpp"), str(src / "pconv_kernels.cu")],
        extra_include_paths=[str(src)],
        extra_cflags=["-O3"],  # torch's own -std (its headers need C++20)
        extra_cuda_cflags=["-O3", "-std=c++17"],
        build_directory=str(out),
        verbose=verbose,
    )
    return _EXTENSION


def channels_last_supported(spec: LayerSpec) -> bool:
    """Whether the channels-last FP16 kernel takes this layer (both channel counts multiples of 8)."""
    return spec.in_channels % 8 == 0 and spec.out_channels % 8 == 0


def fused_partial_conv(
    x: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor,
    spec: LayerSpec,
    *,
    activate: bool = True,
    channels_last: bool = False,
) -> tuple[Tensor, Tensor]:
    """One fused layer: ``x`` (N, C_in, H, W) already masked, ``mask`` (N, K, H, W) FP32.

    ``activate=False`` leaves out the activation (to compare with the activation-free reference).
    ``channels_last=True`` runs the channels-last FP16 kernel (as the plugin does for kHWC8
    tensors: weight reorder, then the kernel) and returns ``y`` in channels_last memory format;
    it needs FP16 and :func:`channels_last_supported`. Returns ``(y, new_mask)``; ``y`` has
    ``x``'s dtype, ``new_mask`` is (N, 1, H', W') FP32.
    """
    ext = load_kernels()
    p = spec.padding
    alpha = effective_slope(spec.activation, spec.negative_slope) if activate else 1.0
    if channels_last and not channels_last_supported(spec):
        raise ValueError(f"{spec.name}: the channels-last kernel needs channel counts divisible by 8")
    y, new_mask = ext.partial_conv2d(
        x,
        mask,
        weight,
        bias,
        [spec.stride, spec.stride],
        [p, p, p, p],
        [spec.dilation, spec.dilation],
        [float(w) for w in spec.mask_channel_weights],
        float(alpha),
        channels_last,
    )
    return y, new_mask


def layer_input_sizes(config: ModelConfig, size: int) -> list[tuple[LayerSpec, int]]:
    """Every layer with the spatial size of its input for a ``size`` x ``size`` image.

    Encoder level i reads ``size / 2^(i-1)``; decoder level i reads the upsampled features
    concatenated with the level-(i-1) skip, also ``size / 2^(i-1)``.
    """
    config.check_size(size, size)
    out = []
    for spec in config.layer_specs():
        level = int(spec.name[3:])
        out.append((spec, size >> (level - 1)))
    return out


def folded_parameters(model: PConvUNet, dtype: Any, device: Any) -> list[tuple[LayerSpec, Tensor, Tensor]]:
    """Per layer: the BatchNorm-folded weight and bias (the exporter's fold), as device tensors."""
    import torch

    from pconv.training.fold import fold_layers

    return [
        (
            layer.spec,
            torch.from_numpy(layer.weight).to(device=device, dtype=dtype),
            torch.from_numpy(layer.bias).to(device=device, dtype=dtype),
        )
        for layer in fold_layers(model)
    ]


def fused_unet_forward(
    model: PConvUNet,
    image: Tensor,
    mask: Tensor,
    *,
    dtype: Any = None,
    partial_conv: PartialConvFn | None = None,
    folded: list[tuple[LayerSpec, Tensor, Tensor]] | None = None,
    channels_last: bool = False,
) -> Tensor:
    """``model(image, mask)`` with one fused partial convolution per layer; returns FP32 output.

    ``image`` (N, 3, H, W) in [0, 1], ``mask`` (N, 1, H, W) with 1 = valid. ``partial_conv``
    defaults to :func:`fused_partial_conv` (tests pass a CPU emulation of the same kernel);
    ``folded`` caches :func:`folded_parameters` across calls (benchmarks). ``channels_last``
    (FP16 only) runs every layer the channels-last kernel takes on it, the rest (enc1, dec1) on
    the NCHW kernel, as a TensorRT engine with kHWC8 plugin formats would.
    """
    import torch

    model.check_inputs(image, mask)
    if mask.shape[1] != 1:
        raise ValueError("fused_unet_forward takes a single-channel mask (N, 1, H, W)")
    dtype = dtype or image.dtype
    conv: PartialConvFn = partial_conv or fused_partial_conv
    if channels_last and partial_conv is None:
        if dtype != torch.float16:
            raise ValueError("channels_last runs the FP16 kernel: pass dtype=torch.float16")

        def conv(x: Tensor, m: Tensor, w: Tensor, b: Tensor, spec: LayerSpec) -> tuple[Tensor, Tensor]:
            return fused_partial_conv(x, m, w, b, spec, channels_last=channels_last_supported(spec))

    layers = folded if folded is not None else folded_parameters(model, dtype, image.device)
    net = _FusedNetwork(model.config, {spec.name: (w, b) for spec, w, b in layers}, conv, dtype, image.device)
    return unet_forward([spec for spec, _, _ in layers], image, mask, net)


class _FusedNetwork:
    """:class:`pconv.network.NetworkOps` wired as the plugin-form ONNX graph is.

    Normalisation and masks in FP32, features in ``dtype`` and kept masked between layers (the
    kernel expects masked input), decoder parts concatenated before the one fused call per layer.
    """

    def __init__(
        self,
        config: ModelConfig,
        params: dict[str, tuple[Tensor, Tensor]],
        conv: PartialConvFn,
        dtype: Any,
        device: Any,
    ) -> None:
        import torch

        self.params, self.conv, self.dtype = params, conv, dtype
        self.mean = torch.tensor(config.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(config.std, device=device).view(1, 3, 1, 1)

    def normalize(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        mask32 = mask.float()
        return (((image.float() - self.mean) / self.std) * mask32).to(self.dtype), mask32

    def upsample2x(self, x: Tensor) -> Tensor:
        import torch.nn.functional as F

        return F.interpolate(x, scale_factor=2.0, mode="nearest")

    def layer(
        self, spec: LayerSpec, features: Sequence[Tensor], masks: Sequence[Tensor]
    ) -> tuple[Tensor, Tensor]:
        import torch

        x = features[0] if len(features) == 1 else torch.cat(list(features), dim=1)
        m = masks[0] if len(masks) == 1 else torch.cat(list(masks), dim=1)
        weight, bias = self.params[spec.name]
        return self.conv(x, m, weight, bias, spec)

    def denormalize(self, y: Tensor) -> Tensor:
        return y.float() * self.std + self.mean


def unfused_partial_conv(
    x: Tensor, mask: Tensor, weight: Tensor, bias: Tensor, spec: LayerSpec, *, activate: bool = True
) -> tuple[Tensor, Tensor]:
    """The unfused cuDNN formulation of the same layer (the explicit ONNX form's math in PyTorch).

    Mask sum = a (1, K, kh, kw) convolution of the K single-channel masks with their weights;
    then ratio, the feature convolution, bias, masking and activation as separate PyTorch ops.
    """
    import torch
    import torch.nn.functional as F

    from pconv import formula
    from pconv.training.layers import TORCH_OPS

    k = spec.kernel
    box = torch.tensor(spec.mask_channel_weights, dtype=torch.float32, device=mask.device)
    box = box.view(1, -1, 1, 1).expand(1, -1, k, k).contiguous()
    mask_sum = F.conv2d(mask, box, None, spec.stride, spec.padding, spec.dilation)
    ratio, new_mask = formula.mask_ratio(mask_sum, float(spec.window_size), TORCH_OPS)
    raw = F.conv2d(x, weight, None, spec.stride, spec.padding, spec.dilation)
    y = formula.renormalize(
        raw, ratio.to(raw.dtype), new_mask.to(raw.dtype), bias.view(1, -1, 1, 1), TORCH_OPS
    )
    if activate:
        y = formula.activate(y, spec.activation, spec.negative_slope, TORCH_OPS)
    return y, new_mask
