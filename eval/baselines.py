"""Classical inpainting baselines, so a model's numbers have a floor to be compared against.

Every baseline takes an RGB ``uint8`` image and an ``H x W`` hole mask (nonzero = hole) and returns the
composite: valid pixels unchanged, hole pixels filled. OpenCV is imported lazily (``pconv[eval]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pconv.errors import require
from pconv.eval.options import BASELINE_NAMES, DEFAULT_RADIUS  # stated with the options of `pconv eval`

Baseline = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _check(image: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {img.shape} {img.dtype}")
    h = np.asarray(hole).astype(bool)
    if h.shape != img.shape[:2]:
        raise ValueError(f"hole mask must be H x W = {img.shape[:2]}, got {h.shape}")
    return img, h


def _cv2() -> Any:
    return require("cv2", "eval", "OpenCV (opencv-python-headless)")


def telea(image: np.ndarray, hole: np.ndarray, radius: int = DEFAULT_RADIUS) -> np.ndarray:
    """Telea's fast-marching inpainting (``cv2.INPAINT_TELEA``)."""
    cv2 = _cv2()
    img, h = _check(image, hole)
    out = cv2.inpaint(np.ascontiguousarray(img), h.astype(np.uint8) * 255, radius, cv2.INPAINT_TELEA)
    return np.where(h[..., None], out, img)


def navier_stokes(image: np.ndarray, hole: np.ndarray, radius: int = DEFAULT_RADIUS) -> np.ndarray:
    """Bertalmio et al.'s Navier–Stokes inpainting (``cv2.INPAINT_NS``)."""
    cv2 = _cv2()
    img, h = _check(image, hole)
    out = cv2.inpaint(np.ascontiguousarray(img), h.astype(np.uint8) * 255, radius, cv2.INPAINT_NS)
    return np.where(h[..., None], out, img)


def mean_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill every hole pixel with the mean colour of the valid pixels (mid-grey if none is valid)."""
    img, h = _check(image, hole)
    valid = ~h
    colour = img[valid].mean(axis=0) if valid.any() else np.full(3, 127.5)
    out = img.copy()
    out[h] = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return out


def get_baseline(name: str, radius: int = DEFAULT_RADIUS) -> Baseline:
    """The baseline ``name`` (one of :data:`BASELINE_NAMES`) as an ``(image, hole)`` callable."""
    if name == "telea":
        return lambda image, hole: telea(image, hole, radius)
    if name == "ns":
        return lambda image, hole: navier_stokes(image, hole, radius)
    if name == "mean":
        return mean_fill
    raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINE_NAMES)}")
