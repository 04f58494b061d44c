"""VGG-16 features up to pool3, for the perceptual and style losses.

The layers are defined here (no torchvision dependency) with the same indices as torchvision's
``vgg16().features``, so a torchvision-format state dict (``features.0.weight`` ...) loads as is.
Weights only ever come from a local file (``--vgg-weights``): ``.pth``/``.pt`` read with
``torch.load(weights_only=True)`` (no arbitrary unpickling) or ``.safetensors``. Nothing is
downloaded. A full ``vgg16`` state dict is accepted; only its ``features`` part up to pool3 is used.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from pconv.errors import PconvError

#: ImageNet statistics torchvision's pretrained models expect, on [0, 1] RGB input.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: torchvision's vgg16 "D" configuration up to pool3 ("M" = 2x2 max pool).
_VGG16_UP_TO_POOL3 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M")
#: Indices in ``features`` of pool1, pool2, pool3 (torchvision numbering).
POOL_INDICES = (4, 9, 16)
#: Indices of the conv layers whose weights must be present in the state dict.
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14)


def _build_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 3
    for item in _VGG16_UP_TO_POOL3:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(item, int)
            layers.append(nn.Conv2d(c_in, item, kernel_size=3, padding=1))
            layers.append(nn.ReLU(inplace=False))
            c_in = item
    return nn.Sequential(*layers)


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file, never unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise PconvError(
            f"--vgg-weights {path}: file not found. Save torchvision's VGG-16 weights once with "
            "`torch.save(torchvision.models.vgg16(weights='IMAGENET1K_V1').state_dict(), 'vgg16.pth')` "
            "on a machine that has them, then pass that file"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PconvError(f"--vgg-weights {path}: cannot read a state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise PconvError(f"--vgg-weights {path}: expected a state dict, found {type(state).__name__}")
    return state


def features_state_dict(state: dict[str, Tensor], source: str = "state dict") -> dict[str, Tensor]:
    """Extract the conv weights up to pool3 from a torchvision vgg16 (or vgg16.features) state dict."""
    out: dict[str, Tensor] = {}
    for i in CONV_INDICES:
        for kind in ("weight", "bias"):
            for key in (f"features.{i}.{kind}", f"{i}.{kind}"):
                if key in state:
                    out[f"{i}.{kind}"] = state[key]
                    break
            else:
                raise PconvError(
                    f"{source}: missing 'features.{i}.{kind}'; expected a torchvision vgg16 state dict "
                    "(keys 'features.0.weight', ...)"
                )
    return out


class VGG16Features(nn.Module):
    """Frozen VGG-16 ``features[:17]``: ``forward(image in [0, 1]) -> [pool1, pool2, pool3]``.

    ImageNet mean/std normalisation happens inside, matching how torchvision's weights were
    trained. Parameters never require gradients and the module stays in eval mode.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, weights: str | Path | None = None, random_init: bool = False) -> None:
        super().__init__()
        if weights is None and not random_init:
            raise ValueError("VGG16Features needs a weights file, or random_init=True (explicit opt-in)")
        self.features = _build_features()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.weights_path = None if weights is None else Path(weights)
        if weights is not None:
            state = features_state_dict(read_state_dict(weights), source=f"--vgg-weights {weights}")
            try:
                self.features.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise PconvError(f"--vgg-weights {weights}: shapes do not match VGG-16 ({exc})") from exc
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16Features:
        """Always eval: the loss network is fixed."""
        return super().train(False)

    def forward(self, image: Tensor) -> list[Tensor]:
        h = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        pools = []
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in POOL_INDICES:
                pools.append(h)
        return pools
