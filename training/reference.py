"""An independent, deliberately naive implementation of the NVIDIA reference formulation.

Used by tests (the fast layer and the exported graphs are checked against it) and as path (a) of
``benchmarks/cpu_inference.py``. It follows NVIDIA's ``PartialConv2d`` in multi-channel mode: the
mask is expanded to every input channel and its window sum comes from a full C_out x C_in
ones-convolution. The only change is the FP16-safe ratio (``1/(S+1e-8)`` -> ``1/max(S,1)``), which
is identical for binary masks; it is written out here rather than taken from :mod:`pconv.formula`
so that the two implementations stay independent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pconv.training.unet import PConvUNet


def reference_partial_conv(
    x: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
) -> tuple[Tensor, Tensor]:
    """NVIDIA-style partial convolution with a full multi-channel mask (N, C_in, H, W)."""
    c_out, c_in, kh, kw = weight.shape
    if mask.shape[1] == 1:
        mask = mask.expand(-1, c_in, -1, -1)
    ones = torch.ones(c_out, c_in, kh, kw, dtype=torch.float32, device=x.device)
    with torch.no_grad():
        update = F.conv2d(mask.float(), ones, None, stride, padding, dilation)
        ratio = (c_in * kh * kw) / update.clamp(min=1.0)
        update = update.clamp(0.0, 1.0)
        ratio = ratio * update
    raw = F.conv2d(x * mask.to(x.dtype), weight, None, stride, padding, dilation)
    out = raw * ratio.to(raw.dtype)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    out = out * update.to(out.dtype)
    return out, update[:, :1]


def reference_forward(model: PConvUNet, image: Tensor, mask: Tensor) -> Tensor:
    """Run ``model``'s parameters through the reference formulation (full multi-channel masks)."""
    model.check_inputs(image, mask)
    mean = torch.tensor(model.config.mean, dtype=image.dtype).view(1, 3, 1, 1)
    std = torch.tensor(model.config.std, dtype=image.dtype).view(1, 3, 1, 1)
    x = (image - mean) / std
    full_mask = mask.expand(-1, 3, -1, -1).to(image.dtype) if mask.shape[1] == 1 else mask
    saved: dict[str, tuple[Tensor, Tensor]] = {"input": (x, full_mask)}
    h, h_mask = x, full_mask
    for spec in model.specs:
        block = model.layers[spec.name]
        if spec.upsample_input:
            assert spec.skip is not None
            skip, skip_mask = saved[spec.skip]
            h = torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), skip], dim=1)
            h_mask = torch.cat([F.interpolate(h_mask, scale_factor=2.0, mode="nearest"), skip_mask], dim=1)
        conv = block.conv  # type: ignore[union-attr]
        h, new_mask = reference_partial_conv(
            h, h_mask, conv.weight, conv.bias, spec.stride, spec.padding, spec.dilation
        )
        h_mask = new_mask.expand(-1, spec.out_channels, -1, -1)
        if block.bn is not None:  # type: ignore[union-attr]
            h = block.bn(h)  # type: ignore[operator]
        if spec.activation == "relu":
            h = F.relu(h)
        elif spec.activation == "leaky_relu":
            h = F.leaky_relu(h, spec.negative_slope)
        if not spec.upsample_input:
            saved[spec.name] = (h, h_mask)
    return h * std + mean
