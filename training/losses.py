"""The paper's loss (Liu et al. 2018, Sec. 3.4)::

    L_total = L_valid + 6 L_hole + 0.05 L_perceptual + 120 (L_style_out + L_style_comp) + 0.1 L_tv

Normalisation, exactly as the paper writes it (and as NVIDIA's implementation computes it):

* ``L_hole = ||(1-M) * (I_out - I_gt)||_1 / N_Igt`` and ``L_valid = ||M * (I_out - I_gt)||_1 / N_Igt``
  with ``N_Igt = C*H*W``: the mean over *all* elements (not over the hole pixels only), averaged
  over the batch. A mask with few holes therefore gives a small ``L_hole``; that is the paper's
  choice and the 6x weight was tuned for it.
* ``L_perceptual = sum_p ||Psi_p(I_out) - Psi_p(I_gt)||_1 / N_p + ||Psi_p(I_comp) - Psi_p(I_gt)||_1 / N_p``
  over VGG-16 pool1, pool2, pool3, ``N_p = C_p*H_p*W_p`` (per-layer element mean).
* ``L_style_x = sum_p ||K_p (Psi_p(x)^T Psi_p(x) - Psi_p(I_gt)^T Psi_p(I_gt))||_1 / C_p^2`` with
  ``K_p = 1/(C_p*H_p*W_p)``: the element mean of the difference of normalised Gram matrices, for
  ``x = I_out`` and ``x = I_comp``.
* ``L_tv``: L1 of horizontal and vertical neighbour differences of ``I_comp``, counting only pairs
  whose two pixels both lie in P, the 1-pixel (3x3) dilation of the hole region, divided by
  ``N_Icomp = C*H*W``. (NVIDIA's public code drops the region P; we follow the paper.)
  A pixel is a hole if any mask channel is 0 there.

``I_comp = M * I_gt + (1 - M) * I_out``. Losses are computed in FP32 (outside autocast).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FeatureExtractor = Callable[[Tensor], list[Tensor]]

LOSS_TERMS = ("valid", "hole", "perceptual", "style_out", "style_comp", "tv")


@dataclass(frozen=True)
class LossWeights:
    """The paper's weights (found by a hyper-parameter search on 100 validation images)."""

    valid: float = 1.0
    hole: float = 6.0
    perceptual: float = 0.05
    style_out: float = 120.0
    style_comp: float = 120.0
    tv: float = 0.1


def l1_mean(a: Tensor, b: Tensor) -> Tensor:
    return torch.mean(torch.abs(a - b))


def gram_matrix(features: Tensor) -> Tensor:
    """``K_p * Psi^T Psi``: (N, C, C) Gram matrix normalised by ``1/(C*H*W)``."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def hole_region(mask: Tensor) -> Tensor:
    """(N, 1, H, W) float: 1 where any mask channel is a hole (mask 1 = valid)."""
    return (mask < 1).any(dim=1, keepdim=True).to(torch.float32)


def dilate_1px(region: Tensor) -> Tensor:
    """Dilation of a (N, 1, H, W) 0/1 map by one pixel (3x3 square), the paper's region P."""
    return F.max_pool2d(region, kernel_size=3, stride=1, padding=1)


def total_variation_in_region(comp: Tensor, region: Tensor) -> Tensor:
    """Paper L_tv: neighbour differences whose both pixels are in ``region``, / (C*H*W), batch mean."""
    n, c, h, w = comp.shape
    pair_h = region[..., :, 1:] * region[..., :, :-1]
    pair_v = region[..., 1:, :] * region[..., :-1, :]
    diff_h = torch.abs(comp[..., :, 1:] - comp[..., :, :-1]) * pair_h
    diff_v = torch.abs(comp[..., 1:, :] - comp[..., :-1, :]) * pair_v
    return (diff_h.sum() + diff_v.sum()) / (n * c * h * w)


class InpaintingLoss(nn.Module):
    """``forward(image, mask, output) -> {term: value, ..., "total": weighted sum}``.

    ``image`` is the ground truth (N, 3, H, W) in [0, 1], ``mask`` (N, 1|3, H, W) with
    1 = valid, ``output`` the network's raw output. ``features`` maps an image to the list of
    pool1..pool3 activations (normally :class:`pconv.training.vgg.VGG16Features`); with
    ``features=None`` the perceptual and style terms are reported as 0 and left out of the total.
    """

    def __init__(self, features: FeatureExtractor | None = None, weights: LossWeights | None = None) -> None:
        super().__init__()
        self.features = features
        self.weights = weights or LossWeights()

    @property
    def uses_vgg(self) -> bool:
        return self.features is not None

    def forward(self, image: Tensor, mask: Tensor, output: Tensor) -> dict[str, Tensor]:
        with torch.autocast(device_type=output.device.type, enabled=False):
            return self._terms(image.float(), mask.float(), output.float())

    def _terms(self, gt: Tensor, mask: Tensor, out: Tensor) -> dict[str, Tensor]:
        mask = mask.expand_as(out)
        comp = mask * gt + (1.0 - mask) * out
        terms = {
            "valid": torch.mean(torch.abs(mask * (out - gt))),
            "hole": torch.mean(torch.abs((1.0 - mask) * (out - gt))),
            "tv": total_variation_in_region(comp, dilate_1px(hole_region(mask))),
        }
        zero = out.new_zeros(())
        if self.features is None:
            terms.update(perceptual=zero, style_out=zero, style_comp=zero)
        else:
            f_out = self.features(out)
            f_comp = self.features(comp)
            with torch.no_grad():
                f_gt = self.features(gt)
            perceptual, style_out, style_comp = zero, zero, zero
            for p_out, p_comp, p_gt in zip(f_out, f_comp, f_gt):
                perceptual = perceptual + l1_mean(p_out, p_gt) + l1_mean(p_comp, p_gt)
                g_gt = gram_matrix(p_gt)
                style_out = style_out + l1_mean(gram_matrix(p_out), g_gt)
                style_comp = style_comp + l1_mean(gram_matrix(p_comp), g_gt)
            terms.update(perceptual=perceptual, style_out=style_out, style_comp=style_comp)
        w = self.weights
        total = (
            w.valid * terms["valid"]
            + w.hole * terms["hole"]
            + w.tv * terms["tv"]
            + (
                w.perceptual * terms["perceptual"]
                + w.style_out * terms["style_out"]
                + w.style_comp * terms["style_comp"]
                if self.features is not None
                else zero
            )
        )
        return {name: terms[name] for name in LOSS_TERMS} | {"total": total}


_warned_no_vgg = False


def build_loss(
    vgg_weights: str | Path | None = None, random_init_vgg: bool = False, tv_weight: float = LossWeights.tv
) -> InpaintingLoss:
    """The training loss: with VGG terms when weights are given (or random features explicitly).

    Without ``vgg_weights`` (and without ``random_init_vgg``) the perceptual and style terms are
    off and a warning says so, once per process. ``tv_weight`` replaces the paper's 0.1.
    """
    global _warned_no_vgg
    weights = LossWeights(tv=tv_weight)
    if vgg_weights is None and not random_init_vgg:
        if not _warned_no_vgg:
            warnings.warn(
                "no --vgg-weights given: training WITHOUT the perceptual and style losses "
                f"(L_total = L_valid + 6 L_hole + {tv_weight:g} L_tv). Pass a torchvision vgg16 state dict "
                "with --vgg-weights FILE for the paper's full loss, or --random-init-vgg to use "
                "randomly initialised VGG features.",
                stacklevel=2,
            )
            _warned_no_vgg = True
        return InpaintingLoss(None, weights)
    from pconv.training.vgg import VGG16Features

    features = VGG16Features(vgg_weights, random_init=random_init_vgg and vgg_weights is None)
    return InpaintingLoss(features, weights)
