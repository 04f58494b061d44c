"""Stage 1, PyTorch: the partial-convolution layer, the paper's U-Net, losses, masks, data, training.

Attributes load lazily so that torch-free modules of this stage (:mod:`pconv.training.masks`) can be
imported by the runtime and the evaluation tools without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CheckpointError": "pconv.training.checkpoint",
    "load_checkpoint": "pconv.training.checkpoint",
    "save_checkpoint": "pconv.training.checkpoint",
    "PartialConv2d": "pconv.training.layers",
    "PConvUNet": "pconv.training.unet",
    "composite": "pconv.training.unet",
    "LayerSpec": "pconv.config",
    "ModelConfig": "pconv.config",
}

__all__ = [
    "CheckpointError",
    "LayerSpec",
    "ModelConfig",
    "PConvUNet",
    "PartialConv2d",
    "composite",
    "load_checkpoint",
    "save_checkpoint",
]

if TYPE_CHECKING:
    from pconv.config import LayerSpec, ModelConfig
    from pconv.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from pconv.training.layers import PartialConv2d
    from pconv.training.unet import PConvUNet, composite


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pconv.training' has no attribute {name!r}")
