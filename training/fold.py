"""BatchNorm folded into each layer's convolution, in float64: what every deployed form runs.

The ONNX exporter writes these weights; the fused-kernel harness (:mod:`pconv.plugins.torch_harness`)
runs them on the GPU. Folding lives with the model, not with one consumer of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pconv.config import LayerSpec

if TYPE_CHECKING:
    from pconv.training.unet import PConvUNet


@dataclass(frozen=True)
class FoldedLayer:
    """One layer's convolution weight and bias with BatchNorm folded in (float64 master copy)."""

    spec: LayerSpec
    weight: np.ndarray  # (C_out, C_in, k, k)
    bias: np.ndarray  # (C_out,)


def fold_layers(model: PConvUNet) -> list[FoldedLayer]:
    """``W' = W·γ/σ``, ``b' = (b − μ)·γ/σ + β`` with ``σ = sqrt(var + eps)`` (eval statistics)."""
    import torch

    folded = []
    with torch.no_grad():
        for spec in model.specs:
            block = model.layers[spec.name]
            conv = block.conv  # type: ignore[union-attr]
            weight = conv.weight.detach().double().cpu().numpy()
            bias = (
                conv.bias.detach().double().cpu().numpy()
                if conv.bias is not None
                else np.zeros(spec.out_channels, dtype=np.float64)
            )
            bn = block.bn  # type: ignore[union-attr]
            if bn is not None:
                gamma = bn.weight.detach().double().cpu().numpy() if bn.weight is not None else 1.0
                beta = bn.bias.detach().double().cpu().numpy() if bn.bias is not None else 0.0
                mean = bn.running_mean.detach().double().cpu().numpy()
                var = bn.running_var.detach().double().cpu().numpy()
                scale = gamma / np.sqrt(var + bn.eps)
                weight = weight * scale.reshape(-1, 1, 1, 1)
                bias = (bias - mean) * scale + beta
            folded.append(FoldedLayer(spec, weight, np.asarray(bias, dtype=np.float64)))
    return folded
