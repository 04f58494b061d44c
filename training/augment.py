"""Photometric and geometric augmentation of training crops (numpy only, deterministic per ``rng``).

Why: trained on a handful of photos, the network learns their palette instead of learning to take
colour and texture from the context around a hole (measured: a green meadow filled grey-brown; the
same photo with its channels permuted was filled correctly). Randomising colour per sample makes the
palette useless as a prior, so the only way to lower the loss is to read the context. Grey photos
and textures get a random two-colour tint, so they add structure without a fixed colour.

Every function takes the sample's own ``numpy`` generator: a sample stays a pure function of
(seed, index), so resumed runs see exactly the same data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pconv.training.options import AUGMENT_LEVELS

AugmentLevel = Literal["none", "geometric", "full"]

_GREY_AXIS = np.full(3, 1.0 / math.sqrt(3.0))
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def hue_rotation_matrix(angle: float) -> np.ndarray:
    """3x3 rotation of RGB space about the grey axis by ``angle`` radians (keeps grey grey)."""
    k = _GREY_AXIS
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    rot = math.cos(angle) * np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * np.outer(k, k)
    return rot.astype(np.float32)


def luma(image: np.ndarray) -> np.ndarray:
    """(H, W) float luma of an (H, W, 3) float image."""
    return image @ _LUMA


def tint_grey(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Map a (H, W) grey image in [0, 1] onto a random dark->light colour ramp: (H, W, 3) float32."""
    dark = rng.uniform(0.0, 0.35, size=3).astype(np.float32)
    light = rng.uniform(0.65, 1.0, size=3).astype(np.float32)
    g = grey.astype(np.float32)[..., None]
    return (1.0 - g) * dark + g * light


@dataclass(frozen=True)
class ColourJitter:
    """Random channel permutation, hue rotation, saturation, brightness and contrast.

    Ranges are wide on purpose (any hue, saturation x0.4-1.6): the aim is that no colour is more
    likely than another a priori, not that the augmented photos look natural.
    """

    permute: float = 0.5  # probability of a random channel permutation
    hue: float = math.pi  # hue rotation drawn from [-hue, hue] radians
    saturation: tuple[float, float] = (0.4, 1.6)
    brightness: tuple[float, float] = (0.7, 1.3)
    contrast: tuple[float, float] = (0.7, 1.3)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Jitter a (H, W, 3) float image in [0, 1]; returns float32 in [0, 1]."""
        out = image.astype(np.float32)
        if rng.random() < self.permute:
            out = out[..., rng.permutation(3)]
        out = out @ hue_rotation_matrix(float(rng.uniform(-self.hue, self.hue))).T
        grey = luma(out)[..., None]
        out = grey + float(rng.uniform(*self.saturation)) * (out - grey)
        out = out * float(rng.uniform(*self.brightness))
        mean = float(out.mean())
        out = mean + float(rng.uniform(*self.contrast)) * (out - mean)
        return np.clip(out, 0.0, 1.0)


def random_dihedral(array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 flips/90° turns of an (H, W, ...) array (square crops keep their shape)."""
    out = np.rot90(array, int(rng.integers(4)), axes=(0, 1))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def augment_crop(
    crop: np.ndarray, grey: bool, level: AugmentLevel, rng: np.random.Generator, jitter: ColourJitter
) -> np.ndarray:
    """Augment one (S, S, 3) uint8 crop (``grey``: its source is a grey photo) -> (S, S, 3) uint8."""
    if level == "none":
        return crop
    out = random_dihedral(crop, rng)
    if level == "full":
        image = out.astype(np.float32) / 255.0
        if grey:
            image = tint_grey(image[..., 0], rng)
        out = np.rint(jitter(image, rng) * 255.0).astype(np.uint8)
    return out


def check_level(level: str) -> AugmentLevel:
    """Validate an ``--augment`` value (one line naming the choices)."""
    if level not in AUGMENT_LEVELS:
        raise ValueError(f"--augment must be one of {', '.join(AUGMENT_LEVELS)}; got {level!r}")
    return level  # type: ignore[return-value]
