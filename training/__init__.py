"""Stage 1, PyTorch: the partial-convolution layer, the paper's U-Net, losses, masks, data, training."""

from pconv.config import LayerSpec, ModelConfig
from pconv.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pconv.training.layers import PartialConv2d
from pconv.training.unet import PConvUNet, composite

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
