"""INT8-aware fine-tuning: the network learns to tolerate the 8-bit rounding of an INT8 export.

Why: post-training quantization of a trained model (``pconv export --precision int8``) rounds
every feature convolution's input, weights and raw output to 8 bits. On the stage-1 default model
(before this fine-tuning) that cost 0.18 dB PSNR and 0.019 SSIM on the held-out photos with ``enc1``
and ``dec1`` kept FP32, most of it from the raw outputs of the high-resolution layers: their values
are heavy-tailed (99.9 % inside ±2.5, outliers to ±50 on 512² crops with large holes), so one
per-tensor 8-bit scale is coarse for the bulk, and clipping the tail trades PSNR for SSIM without
closing the gap (measured). Keeping those layers FP32 recovers the quality but costs a quarter of
the paper net's time. Fine-tuning with the rounding simulated in the forward pass
(straight-through gradients) lets the weights adapt.

What is simulated, near the places :mod:`pconv.export.quantize` puts Q/DQ pairs: each feature
convolution's masked input (per part: a decoder's upsampled and skip parts separately), its
weight with BatchNorm folded in (per output channel, symmetric int8), its raw output per part, and
a decoder's sum of the two. Two approximations, on purpose simple: a decoder's upsampled part is
rounded as one 3×3 convolution of the upsampled input, while the export runs four 2×2 phase
convolutions on the low-resolution input (coarser per-channel weight scales, three more roundings:
each phase, the interleave); and activation ranges are a moving average of per-*batch* min/max
(training crops), where the export averages per-*sample* ranges of 512² calibration crops. The
export is measured for real in the benchmark, so these only limit how much the fine-tuning can
recover. BatchNorm is frozen, so folding is exact; the layers the export keeps FP32 by default (the
first and the last, :func:`pconv.contract.default_fp32_layers`) are left as they are. The checkpoint
stays an ordinary FP32 checkpoint: the INT8 export re-calibrates it. The ranges live outside the
module registry (not in the checkpoint), so under DDP each rank keeps its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv import formula
from pconv.contract import default_fp32_layers
from pconv.formula import activate
from pconv.training.layers import TORCH_OPS

if TYPE_CHECKING:
    from pconv.training.unet import PConvBlock, PConvUNet

#: Weight of the newest batch in the moving-average activation ranges (after the first 1/weight).
RANGE_MOMENTUM = 0.05


class ActivationRange(nn.Module):
    """uint8 asymmetric fake quantization with a moving-average [min, max] (always containing 0)."""

    lo: Tensor
    hi: Tensor
    seen: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        if self.lo.device != x.device:
            self.to(x.device)
        if self.training:
            with torch.no_grad():
                # The mean of the batch ranges seen so far, then a moving average: the first
                # batches count alike, as the export's calibration averages its samples.
                self.seen += 1
                weight = max(1.0 / float(self.seen), RANGE_MOMENTUM)
                self.lo.lerp_(x.detach().min().float(), weight)
                self.hi.lerp_(x.detach().max().float(), weight)
        lo, hi = float(self.lo.clamp(max=0.0)), float(self.hi.clamp(min=0.0))
        if hi - lo <= 0.0:
            return x
        scale = (hi - lo) / 255.0
        zero_point = round(-lo / scale)
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


def fake_quant_weight(weight: Tensor) -> Tensor:
    """Per-output-channel symmetric int8 rounding of ``weight`` (straight-through gradient)."""
    scale = (weight.detach().abs().amax(dim=(1, 2, 3)) / 127.0).clamp(min=1e-12).float()
    zero_point = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -128, 127)


class Int8AwareLayer(nn.Module):
    """The simulated INT8 forward of one :class:`pconv.training.unet.PConvBlock` (BatchNorm frozen)."""

    def __init__(self, parts: int) -> None:
        super().__init__()
        self.inputs = nn.ModuleList(ActivationRange() for _ in range(parts))
        self.raws = nn.ModuleList(ActivationRange() for _ in range(parts))
        self.total = ActivationRange() if parts > 1 else None

    def forward(
        self, block: PConvBlock, xs: Sequence[Tensor], masks: Sequence[Tensor]
    ) -> tuple[Tensor, Tensor]:
        self.train(block.training)  # not a registered submodule (the checkpoint stays plain)
        conv, bn, spec = block.conv, block.bn, block.spec
        weight = conv.weight
        bias = conv.bias if conv.bias is not None else weight.new_zeros(spec.out_channels)
        if bn is not None:  # frozen statistics: W·γ/σ and (b − μ)·γ/σ + β, as the export folds them
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            weight = weight * scale.view(-1, 1, 1, 1)
            bias = (bias - bn.running_mean) * scale + bn.bias
        with torch.no_grad():
            mask_sum = conv.box_sum(conv.channel_mask_sum(xs, masks))
            ratio, new_mask = formula.mask_ratio(mask_sum, float(conv.window_size), TORCH_OPS)
        raw: Tensor | None = None
        start = 0
        for x, m, quant_in, quant_raw in zip(xs, masks, self.inputs, self.raws):
            part_weight = weight[:, start : start + x.shape[1]]
            start += x.shape[1]
            masked = quant_in(x * m.detach().to(x.dtype))
            rounded = fake_quant_weight(part_weight)
            part = quant_raw(F.conv2d(masked, rounded, None, conv.stride, conv.padding, conv.dilation))
            raw = part if raw is None else raw + part
        assert raw is not None
        if self.total is not None:
            raw = self.total(raw)
        b = bias.view(1, -1, 1, 1)
        y = formula.renormalize(raw, ratio.to(raw.dtype), new_mask.to(raw.dtype), b, TORCH_OPS)
        return activate(y, spec.activation, spec.negative_slope, TORCH_OPS), new_mask


def enable_int8_aware(model: PConvUNet, keep_fp32: Sequence[str] | None = None) -> list[str]:
    """Simulate INT8 in every layer of ``model`` (a ``PConvUNet``) but ``keep_fp32`` (default: those
    the export keeps FP32, :func:`pconv.contract.default_fp32_layers`); freezes all BatchNorm.
    Returns the simulated layers' names."""
    specs = model.specs
    keep = set(keep_fp32 if keep_fp32 is not None else default_fp32_layers([s.name for s in specs]))
    model.freeze_bn(encoder_only=False)
    simulated = []
    for spec in specs:
        if spec.name in keep:
            continue
        # Set past nn.Module's registry: its range buffers must not enter the checkpoint.
        layer = Int8AwareLayer(parts=2 if spec.upsample_input else 1)
        object.__setattr__(model.layers[spec.name], "int8_aware", layer)
        simulated.append(spec.name)
    return simulated
