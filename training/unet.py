"""``PConvUNet``: the paper's partial-convolution U-Net, built from :meth:`ModelConfig.layer_specs`.

Its forward pass is :func:`pconv.network.unet_forward` (the one traversal the exporter and the
kernel harness share) over this module's blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv.config import LayerSpec, ModelConfig
from pconv.formula import activate
from pconv.network import unet_forward
from pconv.training.layers import TORCH_OPS, PartialConv2d

if TYPE_CHECKING:
    from pconv.training.int8_aware import Int8AwareLayer


class PConvBlock(nn.Module):
    """Partial convolution, then BatchNorm and activation as the layer's spec says."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.spec = spec
        self.conv = PartialConv2d(
            spec.in_channels,
            spec.out_channels,
            spec.kernel,
            spec.stride,
            spec.padding,
            spec.dilation,
            bias=spec.bias,
        )
        self.bn = nn.BatchNorm2d(spec.out_channels) if spec.batch_norm else None

    #: Set by :func:`pconv.training.int8_aware.enable_int8_aware`: this layer simulates INT8.
    int8_aware: Int8AwareLayer | None = None

    def forward(self, xs: Sequence[Tensor], masks: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        if self.int8_aware is not None:
            return self.int8_aware(self, xs, masks)
        y, new_mask = self.conv.forward_parts(xs, masks)
        if self.bn is not None:
            y = self.bn(y)
        return activate(y, self.spec.activation, self.spec.negative_slope, TORCH_OPS), new_mask


class PConvUNet(nn.Module):
    """Partial-convolution U-Net (Liu et al. 2018). ``depth=8`` is the 512x512 paper model.

    ``forward(image, mask) -> output``: image (N, 3, H, W) in [0, 1]; mask (N, 1, H, W) or
    (N, 3, H, W), 1 = valid, 0 = hole; output (N, 3, H, W) in the same [0, 1] scale (the ImageNet
    normalisation happens inside, so every exported graph keeps this contract). Use
    :func:`composite` for the final image.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, depth: int = 8, width: float = 1.0, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else ModelConfig(depth=depth, width=width)
        self.specs = self.config.layer_specs()
        self.layers = nn.ModuleDict({s.name: PConvBlock(s) for s in self.specs})
        self.register_buffer("mean", torch.tensor(self.config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.config.std).view(1, 3, 1, 1), persistent=False)
        self._bn_frozen: str | None = None  # None, "encoder" or "all"

    @property
    def depth(self) -> int:
        return self.config.depth

    def check_inputs(self, image: Tensor, mask: Tensor) -> None:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (N, 3, H, W); got {tuple(image.shape)}")
        if (
            mask.dim() != 4
            or mask.shape[1] not in (1, 3)
            or mask.shape[0] != image.shape[0]
            or (mask.shape[-2:] != image.shape[-2:])
        ):
            raise ValueError(
                f"mask must be (N, 1, H, W) or (N, 3, H, W) matching image {tuple(image.shape)}; "
                f"got {tuple(mask.shape)}"
            )
        self.config.check_size(int(image.shape[-2]), int(image.shape[-1]))

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        self.check_inputs(image, mask)
        return unet_forward(self.specs, image, mask, _TorchNetwork(self))

    # -- fine-tuning ---------------------------------------------------------------------------
    def freeze_encoder_bn(self, frozen: bool = True) -> None:
        """Paper's fine-tuning stage: encoder BatchNorm in eval mode with no gradient."""
        if frozen:
            self.freeze_bn(encoder_only=True)
        else:
            for block in self._frozen_bn_blocks():  # all of them after freeze_bn(encoder_only=False)
                if block.bn is not None:
                    block.bn.requires_grad_(True)
            self._bn_frozen = None
            self.train(self.training)

    def freeze_bn(self, encoder_only: bool) -> None:
        """BatchNorm in eval mode with no gradient: the encoder's (paper fine-tuning) or all of it
        (INT8-aware fine-tuning, where the export's folding must be exact)."""
        self._bn_frozen = "encoder" if encoder_only and self._bn_frozen != "all" else "all"
        for block in self._frozen_bn_blocks():
            if block.bn is not None:
                block.bn.requires_grad_(False)
        self.train(self.training)

    def _frozen_bn_blocks(self) -> list[PConvBlock]:
        if self._bn_frozen is None:
            return []
        if self._bn_frozen == "all":
            return list(self.layers.values())  # type: ignore[arg-type]
        return self.encoder_blocks()

    def encoder_blocks(self) -> list[PConvBlock]:
        return [self.layers[s.name] for s in self.specs if not s.upsample_input]  # type: ignore[misc]

    def train(self, mode: bool = True) -> PConvUNet:
        super().train(mode)
        for block in self._frozen_bn_blocks():
            if block.bn is not None:
                block.bn.eval()
        return self


class _TorchNetwork:
    """:class:`pconv.network.NetworkOps` over a :class:`PConvUNet`'s blocks (autograd, any dtype).

    Features stay unmasked between layers: each :class:`PartialConv2d` masks its own input.
    """

    def __init__(self, model: PConvUNet) -> None:
        self.model = model

    def normalize(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        return (image - self.model.mean.to(image.dtype)) / self.model.std.to(image.dtype), mask.to(
            image.dtype
        )

    def upsample2x(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")

    def layer(
        self, spec: LayerSpec, features: Sequence[Tensor], masks: Sequence[Tensor]
    ) -> tuple[Tensor, Tensor]:
        block: PConvBlock = self.model.layers[spec.name]  # type: ignore[assignment]
        return block(features, masks)

    def denormalize(self, y: Tensor) -> Tensor:
        return y * self.model.std.to(y.dtype) + self.model.mean.to(y.dtype)


def composite(image: Tensor, mask: Tensor, output: Tensor) -> Tensor:
    """``M * image + (1 - M) * output``: keep valid pixels, take the network's output in holes."""
    mask = mask.to(output.dtype)
    return mask * image + (1.0 - mask) * output
