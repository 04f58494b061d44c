"""``PartialConv2d``: the partial convolution of Liu et al. (2018), fast single-channel mask form.

The window mask sum S is linear in the mask, so ``S = boxsum(sum_c M_c)``: one single-channel box
convolution, whatever the number of input channels (NVIDIA's reference runs a full
C_out x C_in ones-convolution instead). The arithmetic after the convolution is
:mod:`pconv.formula`, shared with the ONNX export.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv import formula


class TorchOps:
    """:class:`pconv.formula.Ops` on torch tensors."""

    def clip(self, x: Tensor, lo: float, hi: float) -> Tensor:
        return x.clamp(lo, hi)

    def maximum(self, x: Tensor, lo: float) -> Tensor:
        return x.clamp(min=lo)

    def div(self, a: Tensor | float, b: Tensor) -> Tensor:
        return a / b

    def mul(self, a: Tensor, b: Tensor) -> Tensor:
        return a * b

    def add(self, a: Tensor, b: Tensor) -> Tensor:
        return a + b

    def cast_like(self, x: Tensor, like: Tensor) -> Tensor:
        return x.to(like.dtype)

    def relu(self, x: Tensor) -> Tensor:
        return F.relu(x)

    def leaky_relu(self, x: Tensor, slope: float) -> Tensor:
        return F.leaky_relu(x, slope)


TORCH_OPS = TorchOps()


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


class PartialConv2d(nn.Module):
    """Partial convolution: ``forward(x, mask) -> (y, new_mask)``; mask 1 = valid, 0 = hole.

    ``mask`` is (N, C_in, H, W) with per-channel values in [0, 1], or (N, 1, H, W) meaning all
    channels are equal. ``new_mask`` is (N, 1, H', W'). Zero padding of the mask makes everything
    outside the image a hole (partial-convolution padding). No gradient flows into the mask path;
    the mask arithmetic runs in FP32 whatever the feature dtype, so FP16 is exact and NaN-free.
    """

    box_kernel: Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("box_kernel", torch.ones(1, 1, *self.kernel_size), persistent=False)
        nn.init.kaiming_normal_(self.weight, a=0.0, mode="fan_in", nonlinearity="relu")

    @property
    def window_size(self) -> int:
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"bias={self.bias is not None}"
        )

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        return self.forward_parts([x], [mask])

    def forward_parts(self, xs: Sequence[Tensor], masks: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Partial convolution over channel-concatenated parts, each with its own mask.

        The U-Net decoder concatenates upsampled features with a skip connection; each part's
        mask is single-channel (or per-channel), so the window sum never needs the full
        concatenated mask: ``S = boxsum(sum_parts channel_sum(mask_part))``.
        """
        if len(xs) != len(masks) or not xs:
            raise ValueError("forward_parts needs one mask per feature part")
        channels = sum(x.shape[1] for x in xs)
        if channels != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {channels}")
        masked = []
        for x, m in zip(xs, masks):
            if m.dim() != 4 or m.shape[1] not in (1, x.shape[1]) or m.shape[-2:] != x.shape[-2:]:
                raise ValueError(
                    f"mask must be (N, 1, H, W) or (N, {x.shape[1]}, H, W) matching features "
                    f"{tuple(x.shape)}; got {tuple(m.shape)}"
                )
            masked.append(x * m.detach().to(x.dtype))  # masks are data: no gradient into them
        x_masked = masked[0] if len(masked) == 1 else torch.cat(masked, dim=1)
        with torch.no_grad():
            mask_in = self.channel_mask_sum(xs, masks)
            mask_sum = self.box_sum(mask_in)
            ratio, new_mask = formula.mask_ratio(mask_sum, float(self.window_size), TORCH_OPS)
        raw = F.conv2d(x_masked, self.weight, None, self.stride, self.padding, self.dilation)
        bias = None if self.bias is None else self.bias.view(1, -1, 1, 1)
        y = formula.renormalize(raw, ratio.to(raw.dtype), new_mask.to(raw.dtype), bias, TORCH_OPS)
        return y, new_mask

    def box_sum(self, mask_in: Tensor) -> Tensor:
        """Window sum of the FP32 channel-summed mask, kept FP32 after ``.half()`` and under autocast.

        Mask sums reach C_in*k*k (thousands): bf16 holds integers exactly only up to 256, so
        under AMP the sum would round. The autocast guard is only entered while autocast is on,
        so traced/exported graphs never see it.
        """
        kernel = self.box_kernel.to(mask_in.dtype)
        args = (self.stride, self.padding, self.dilation)
        if torch.is_autocast_enabled(mask_in.device.type):
            with torch.autocast(mask_in.device.type, enabled=False):
                return F.conv2d(mask_in, kernel, None, *args)
        return F.conv2d(mask_in, kernel, None, *args)

    @staticmethod
    def channel_mask_sum(xs: Sequence[Tensor], masks: Sequence[Tensor]) -> Tensor:
        """Single-channel FP32 map of ``sum_c M_c`` (a 1-channel mask stands for all its part's channels)."""
        total: Tensor | None = None
        for x, m in zip(xs, masks):
            m32 = m.detach().float()
            part = m32 * x.shape[1] if m32.shape[1] == 1 else m32.sum(dim=1, keepdim=True)
            total = part if total is None else total + part
        assert total is not None
        return total
