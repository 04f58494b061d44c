"""LPIPS (Zhang et al., CVPR 2018; AlexNet, v0.1) in numpy, from a local weights file only.

LPIPS needs pretrained weights (torchvision's ImageNet AlexNet plus the LPIPS linear layers) and pconv
never downloads anything, so the metric is computed only when the user points at a local file:
``pconv eval --lpips-weights FILE`` or the environment variable :data:`LPIPS_ENV`. Without one the
LPIPS column is left out and the report says why.

The file is a ``.npz`` with the torchvision and lpips parameter names (:data:`WEIGHT_SHAPES`).
:func:`convert_weights` (``pconv lpips-weights``) builds it from the two checkpoints a user already
has: torchvision's ``alexnet-*.pth`` and the ``alex.pth`` shipped inside the ``lpips`` package.

The forward pass follows LPIPS v0.1: inputs on [0, 1] mapped to [-1, 1], the LPIPS scaling layer,
AlexNet features after ReLU 1-5, unit-normalised over channels, squared differences weighted by the
non-negative linear layers, averaged spatially and summed over layers. Lower = more similar.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pconv.errors import PconvError

LPIPS_ENV = "PCONV_LPIPS_WEIGHTS"

#: (out, in, kernel, stride, padding) of AlexNet's convolutions, by torchvision ``features`` index.
ALEXNET_CONVS = {0: (64, 3, 11, 4, 2), 3: (192, 64, 5, 1, 2), 6: (384, 192, 3, 1, 1), 8: (256, 384, 3, 1, 1)}
ALEXNET_CONVS[10] = (256, 256, 3, 1, 1)
#: Convolutions followed by a 3x3 stride-2 max-pool before the next one (after relu1 and relu2).
POOL_AFTER = (0, 3)
LAYER_CHANNELS = (64, 192, 384, 256, 256)
SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
EPS = 1e-10

WEIGHT_SHAPES: dict[str, tuple[int, ...]] = {}
for _i, (_o, _c, _k, _s, _p) in ALEXNET_CONVS.items():
    WEIGHT_SHAPES[f"features.{_i}.weight"] = (_o, _c, _k, _k)
    WEIGHT_SHAPES[f"features.{_i}.bias"] = (_o,)
for _j, _ch in enumerate(LAYER_CHANNELS):
    WEIGHT_SHAPES[f"lin{_j}.model.1.weight"] = (1, _ch, 1, 1)


def weights_path(option: str | Path | None) -> Path | None:
    """The weights file from ``option`` or :data:`LPIPS_ENV`; None when neither is set."""
    chosen = option if option else os.environ.get(LPIPS_ENV)
    return Path(chosen) if chosen else None


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """Read and check an LPIPS ``.npz`` weights file."""
    if not path.is_file():
        raise PconvError(f"LPIPS weights {path}: file not found (make one with `pconv lpips-weights`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = {k: np.asarray(data[k], np.float32) for k in data.files}
    except (OSError, ValueError) as exc:
        raise PconvError(f"LPIPS weights {path}: not a readable .npz file ({exc})") from exc
    for name, shape in WEIGHT_SHAPES.items():
        if name not in weights:
            raise PconvError(f"LPIPS weights {path}: missing {name}; rebuild it with `pconv lpips-weights`")
        if weights[name].shape != shape:
            raise PconvError(
                f"LPIPS weights {path}: {name} has shape {weights[name].shape}, expected {shape}"
            )
    return weights


def _conv_relu(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """ReLU(conv2d) of a CHW array, as one matrix product over sliding windows."""
    out_channels, c, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    _, oh, ow, _, _ = win.shape
    cols = win.transpose(1, 2, 0, 3, 4).reshape(oh * ow, c * k * k)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return np.maximum(out, 0).T.reshape(out_channels, oh, ow)


def _max_pool(x: np.ndarray, k: int = 3, stride: int = 2) -> np.ndarray:
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    return np.asarray(win.max(axis=(3, 4)))


class LPIPS:
    """LPIPS distance with AlexNet features; ``lpips(a, b)`` on H x W x 3 images (uint8 or [0, 1])."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.w = weights

    @classmethod
    def from_file(cls, path: Path) -> LPIPS:
        return cls(load_weights(path))

    def features(self, image: np.ndarray) -> list[np.ndarray]:
        """Channel-normalised AlexNet features (relu1..relu5) of one image."""
        arr = np.asarray(image)
        x = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"LPIPS takes H x W x 3 images, got {x.shape}")
        h = ((2.0 * x - 1.0 - SHIFT) / SCALE).transpose(2, 0, 1)
        feats = []
        for i, (_, _, _, stride, pad) in ALEXNET_CONVS.items():
            h = _conv_relu(h, self.w[f"features.{i}.weight"], self.w[f"features.{i}.bias"], stride, pad)
            feats.append(h / (np.sqrt((h * h).sum(axis=0, keepdims=True)) + EPS))
            if i in POOL_AFTER:
                h = _max_pool(h)
        return feats

    def distance(self, feats_a: list[np.ndarray], feats_b: list[np.ndarray]) -> float:
        """LPIPS from precomputed :meth:`features` (lets one target serve several results)."""
        total = 0.0
        for j, (fa, fb) in enumerate(zip(feats_a, feats_b)):
            lin = self.w[f"lin{j}.model.1.weight"].reshape(-1, 1, 1)
            total += float(((fa - fb) ** 2 * lin).sum(axis=0).mean())
        return total

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        return self.distance(self.features(a), self.features(b))


def convert_weights(alexnet_checkpoint: Path, lpips_checkpoint: Path, out: Path) -> Path:
    """Write the ``.npz`` from torchvision's AlexNet ``.pth`` and lpips' ``weights/v0.1/alex.pth``.

    Needs torch to read the two checkpoints (the evaluation itself does not).
    """
    from pconv.errors import require

    torch = require("torch", "train", "PyTorch (to read the .pth checkpoints)")
    merged: dict[str, np.ndarray] = {}
    for path in (alexnet_checkpoint, lpips_checkpoint):
        if not path.is_file():
            raise PconvError(f"{path}: file not found")
        state = torch.load(path, map_location="cpu", weights_only=True)  # type: ignore[attr-defined]
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        for name, value in state.items():
            if name in WEIGHT_SHAPES:
                merged[name] = value.detach().cpu().numpy().astype(np.float32)
    missing = [n for n in WEIGHT_SHAPES if n not in merged]
    if missing:
        raise PconvError(
            f"the checkpoints lack {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}: pass "
            "torchvision's AlexNet checkpoint (alexnet-owt-*.pth) and lpips' weights/v0.1/alex.pth"
        )
    for name, shape in WEIGHT_SHAPES.items():
        if merged[name].shape != shape:
            raise PconvError(f"{name} has shape {merged[name].shape}, expected {shape}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        np.savez(f, **merged)  # type: ignore[arg-type]
    return out
