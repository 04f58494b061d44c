"""Hole masks for training and evaluation: file augmentation and a procedural generator.

Conventions (read this once, they never change):

* **Files and generators speak "hole = True / white".** :func:`load_mask_file` and
  :func:`generate_irregular_mask` return ``bool`` arrays of shape (H, W) where ``True`` marks a
  hole. Mask image files are white = hole by default (``white_is_hole=False`` flips that for
  datasets drawn the other way round).
* **The model speaks "1 = valid, 0 = hole"** (:data:`pconv.contract.MASK_CONVENTION`).
  :func:`to_valid_mask` is the one place that converts.

This module imports only numpy, PIL and the standard library at module level, so the runtime
and the evaluation tools can use it without torch (a test checks this in a subprocess).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pconv.contract import IMAGE_SUFFIXES
from pconv.imagefiles import (
    MASK_THRESHOLD,
    ImageReadError,
    dilate_square,
    drop_unreadable,
    is_hidden,
    read_mask_file,
)

#: Grey level (in [0, 1]) above which a mask-file pixel counts as white: the one threshold every
#: stage uses (mid-grey; NVIDIA's masks are antialiased, JPEG masks are noisy).
BINARIZE_THRESHOLD = MASK_THRESHOLD


def load_mask_file(
    path: str | Path, white_is_hole: bool = True, threshold: float = BINARIZE_THRESHOLD
) -> np.ndarray:
    """Read a mask image as a bool (H, W) array, ``True`` = hole.

    Read upright, scaled to [0, 1] by its bit depth (alpha applied) and binarised: ``value > threshold``
    is white (:func:`pconv.imagefiles.read_mask_file`). White pixels are holes unless ``white_is_hole``
    is False.
    """
    white = read_mask_file(path, threshold)
    return white if white_is_hole else ~white


def to_valid_mask(hole: np.ndarray) -> np.ndarray:
    """Convert a ``True = hole`` array to the model's float32 mask (1 = valid, 0 = hole)."""
    return (~np.asarray(hole, dtype=bool)).astype(np.float32)


def hole_ratio_of(hole: np.ndarray) -> float:
    """Fraction of pixels that are holes."""
    return float(np.asarray(hole, dtype=bool).mean())


def find_mask_files(root: str | Path) -> list[Path]:
    """All mask images below ``root`` (recursive, hidden files skipped, sorted for determinism)."""
    root = Path(root)
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p, root)
    )


# -- (a) augmentation of mask files (NVIDIA irregular-mask style) ----------------------------------


def dilate(hole: np.ndarray, size: int) -> np.ndarray:
    """Binary dilation of the holes with a ``size`` x ``size`` square (separable running max)."""
    return dilate_square(hole, size)


class MaskAugmenter:
    """Random augmentation of binary hole masks, as used with NVIDIA's irregular mask dataset.

    Per call: binarise (done by :func:`load_mask_file`), dilate the holes by a random odd square
    of side in ``dilation`` px, rotate by a random angle in ``[-max_rotation, max_rotation]``
    degrees, translate by up to ``max_translation`` of the mask size, then take a random crop.
    The crop keeps a random fraction in ``crop_scale`` of the side that just covers ``size`` and
    is resized (nearest neighbour) to ``size``, so it is random even when the mask file already
    has the training size (NVIDIA's 512² masks at ``size=512``); the hole statistics of the
    files carry over to any training size. Pixels that enter the frame through rotation or
    translation are valid (not holes).
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        dilation: tuple[int, int] = (9, 49),
        max_rotation: float = 180.0,
        max_translation: float = 0.25,
        crop_scale: tuple[float, float] = (0.8, 1.0),
    ) -> None:
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if not 1 <= dilation[0] <= dilation[1]:
            raise ValueError(f"dilation range must satisfy 1 <= lo <= hi, got {dilation}")
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {crop_scale}")
        self.dilation = dilation
        self.crop_scale = crop_scale
        self.max_rotation = max_rotation
        self.max_translation = max_translation

    def random_dilation(self, rng: np.random.Generator) -> int:
        """An odd square side in the dilation range (odd so the dilation stays centred)."""
        lo, hi = self.dilation
        odd = [k for k in range(lo, hi + 1) if k % 2 == 1] or [lo]
        return int(odd[int(rng.integers(len(odd)))])

    def __call__(self, hole: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment one bool (H, W) hole array; returns a bool array of ``self.size``."""
        hole = dilate(np.asarray(hole, dtype=bool), self.random_dilation(rng))
        im = Image.fromarray(hole.astype(np.uint8) * 255)
        angle = float(rng.uniform(-self.max_rotation, self.max_rotation))
        tx = round(float(rng.uniform(-self.max_translation, self.max_translation)) * im.width)
        ty = round(float(rng.uniform(-self.max_translation, self.max_translation)) * im.height)
        im = im.rotate(angle, resample=Image.Resampling.NEAREST, translate=(tx, ty), fillcolor=0)
        out_h, out_w = self.size
        # The largest window of the output's aspect ratio that fits, shrunk by a random factor.
        cover = min(im.height / out_h, im.width / out_w) * float(rng.uniform(*self.crop_scale))
        crop_h = min(im.height, max(1, round(out_h * cover)))
        crop_w = min(im.width, max(1, round(out_w * cover)))
        top = int(rng.integers(im.height - crop_h + 1))
        left = int(rng.integers(im.width - crop_w + 1))
        crop = im.crop((left, top, left + crop_w, top + crop_h))
        if crop.size != (out_w, out_h):
            crop = crop.resize((out_w, out_h), resample=Image.Resampling.NEAREST)
        return np.asarray(crop) > 127


def augment_mask_file(
    path: str | Path,
    size: int | tuple[int, int],
    rng: np.random.Generator,
    white_is_hole: bool = True,
    augmenter: MaskAugmenter | None = None,
    threshold: float = BINARIZE_THRESHOLD,
) -> np.ndarray:
    """Load a mask file (binarised at ``threshold``) and augment it: bool ``size`` array, True = hole."""
    return (augmenter or MaskAugmenter(size))(load_mask_file(path, white_is_hole, threshold), rng)


class FileMaskSource:
    """Random augmented masks from a folder of mask images (``True`` = hole)."""

    def __init__(
        self,
        root: str | Path,
        size: int | tuple[int, int],
        white_is_hole: bool = True,
        augmenter: MaskAugmenter | None = None,
        threshold: float = BINARIZE_THRESHOLD,
    ) -> None:
        self.threshold = threshold
        self.files = find_mask_files(root)
        if not self.files:
            raise FileNotFoundError(
                f"no mask images ({', '.join(IMAGE_SUFFIXES)}) found under {root}; "
                "point --masks at a folder of mask files or use --masks procedural"
            )
        self.files = drop_unreadable(self.files, "--masks")  # headers only: fast, reported once
        self.white_is_hole = white_is_hole
        self.augmenter = augmenter or MaskAugmenter(size)
        self._broken: set[Path] = set()  # files that failed to decode (warned about once)

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        which = int(rng.integers(len(self.files)))
        for offset in range(len(self.files)):  # a file that breaks while decoding: the next one instead
            path = self.files[(which + offset) % len(self.files)]
            if path in self._broken:
                continue
            try:
                return augment_mask_file(
                    path, self.augmenter.size, rng, self.white_is_hole, self.augmenter, self.threshold
                )
            except ImageReadError as exc:
                self._broken.add(path)
                warnings.warn(f"--masks: skipping {path} from now on: {exc}", stacklevel=2)
        raise ImageReadError("--masks: no readable mask file left (every file failed to decode)")


# -- (b) procedural irregular masks ------------------------------------------------------------


def _draw_stroke(draw: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, scale: float) -> None:
    """A free-form brush stroke: a polyline of random segments with round joints and caps."""
    s = min(h, w) * scale
    width = max(1, round(rng.uniform(0.02, 0.09) * s))
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    angle = rng.uniform(0, 2 * math.pi)
    points = [(x, y)]
    for _ in range(int(rng.integers(1, 7))):
        angle += rng.uniform(-math.pi / 2, math.pi / 2)
        length = rng.uniform(0.05, 0.35) * s
        x = float(np.clip(x + length * math.cos(angle), 0, w - 1))
        y = float(np.clip(y + length * math.sin(angle), 0, h - 1))
        points.append((x, y))
    draw.line(points, fill=255, width=width, joint="curve")
    r = width / 2
    for px, py in (points[0], points[-1]):
        draw.ellipse((px - r, py - r, px + r, py + r), fill=255)


def _draw_ellipse(draw: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, scale: float) -> None:
    s = min(h, w) * scale
    rx, ry = rng.uniform(0.03, 0.15, size=2) * s + 0.5
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)


def _draw_box(draw: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, scale: float) -> None:
    s = min(h, w) * scale
    bw, bh = rng.uniform(0.04, 0.25, size=2) * s + 1
    x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
    draw.rectangle((x0, y0, x0 + bw, y0 + bh), fill=255)


_SHAPES = (_draw_stroke, _draw_stroke, _draw_ellipse, _draw_box)  # strokes twice as likely


def generate_irregular_mask(
    height: int,
    width: int,
    rng: np.random.Generator,
    hole_ratio: tuple[float, float] = (0.1, 0.5),
    margin: int = 0,
    max_attempts: int = 2000,
) -> np.ndarray:
    """Procedural irregular mask: bool (height, width) array, ``True`` = hole.

    A target ratio is drawn uniformly from ``hole_ratio``; shapes (brush strokes with random
    width, direction changes and lengths; ellipses; boxes) are added one at a time until the hole
    ratio reaches it. A shape that would push the
    ratio above ``hole_ratio[1]`` is discarded and the shape scale shrinks, so the ratio lands in
    ``[lo, hi]`` (shapes shrink down to single pixels, so any range wider than one pixel works).
    With ``margin > 0`` holes stay at least ``margin`` px away from every border (the "border
    constraint" masks of the evaluation); the ratio is still relative to the whole image.

    The result depends only on the arguments and ``rng``'s state (deterministic under a seed).
    If the range cannot be reached in ``max_attempts`` shapes (e.g. ``lo`` larger than the area
    inside the margin, or a range narrower than one pixel), a ``ValueError`` says so; nothing is
    silently returned outside the range.
    """
    lo, hi = float(hole_ratio[0]), float(hole_ratio[1])
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"hole_ratio must satisfy 0 <= lo <= hi <= 1, got {hole_ratio}")
    if height <= 0 or width <= 0:
        raise ValueError(f"mask size must be positive, got {height}x{width}")
    if margin < 0 or (2 * margin >= min(height, width) and lo > 0):
        raise ValueError(f"margin {margin} leaves no room for holes in a {height}x{width} mask")
    inner = np.zeros((height, width), dtype=bool)
    inner[margin : height - margin, margin : width - margin] = True
    total = height * width
    if inner.sum() < lo * total:
        raise ValueError(
            f"hole ratio {lo:.3f} is impossible with margin {margin} in {height}x{width} "
            f"(at most {inner.sum() / total:.3f} of the image lies inside the margin)"
        )
    target = float(rng.uniform(lo, hi))
    hole = np.zeros((height, width), dtype=bool)
    scale = 1.0
    for _ in range(max_attempts):
        if hole.sum() >= target * total:
            return hole
        canvas = Image.new("L", (width, height), 0)
        shape = _SHAPES[int(rng.integers(len(_SHAPES)))]
        shape(ImageDraw.Draw(canvas), rng, height, width, scale)
        candidate = hole | ((np.asarray(canvas) > 0) & inner)
        if candidate.sum() > hi * total:
            scale = max(scale * 0.7, 1.0 / min(height, width))
            continue
        hole = candidate
    if hole.sum() >= lo * total:
        return hole
    raise ValueError(
        f"could not reach a hole ratio in [{lo}, {hi}] for a {height}x{width} mask in {max_attempts} "
        f"shapes (reached {hole.sum() / total:.3f}); widen the range or reduce the margin"
    )


class ProceduralMaskSource:
    """Random procedural masks of a fixed size (``True`` = hole)."""

    def __init__(
        self, size: int | tuple[int, int], hole_ratio: tuple[float, float] = (0.1, 0.5), margin: int = 0
    ) -> None:
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.hole_ratio = hole_ratio
        self.margin = margin

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        return generate_irregular_mask(*self.size, rng, hole_ratio=self.hole_ratio, margin=self.margin)


def save_mask_file(hole: np.ndarray, path: str | Path, white_is_hole: bool = True) -> Path:
    """Write a bool hole array as a black/white PNG (white = hole unless ``white_is_hole`` is False)."""
    white = np.asarray(hole, dtype=bool) if white_is_hole else ~np.asarray(hole, dtype=bool)
    Image.fromarray(white.astype(np.uint8) * 255).save(path)
    return Path(path)


__all__: Sequence[str] = (
    "BINARIZE_THRESHOLD",
    "FileMaskSource",
    "MaskAugmenter",
    "ProceduralMaskSource",
    "augment_mask_file",
    "dilate",
    "find_mask_files",
    "generate_irregular_mask",
    "hole_ratio_of",
    "load_mask_file",
    "save_mask_file",
    "to_valid_mask",
)
