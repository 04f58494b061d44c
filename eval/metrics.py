"""Image-quality metrics for inpainting, in plain numpy (no torch, no downloads).

Conventions (the literature's, so numbers compare with the paper's tables):

* Images are RGB ``H x W x 3`` on a ``[0, 1]`` scale (``uint8`` inputs are divided by 255).
* **L1** is the mean absolute error over every pixel and channel.
* **PSNR** is ``10 log10(1 / MSE)`` in dB (data range 1). Identical images have ``MSE = 0`` and PSNR
  ``inf``: :func:`psnr` returns ``math.inf`` so per-image rows stay exact, and aggregated means cap each
  value at :data:`PSNR_CAP_DB` (see :func:`mean_psnr`) so one perfect image cannot turn a mean into
  ``inf``.
* **SSIM** uses an 11x11 Gaussian window (sigma 1.5, built as scipy/scikit-image build it: radius
  ``int(3.5 * 1.5 + 0.5) = 5``), K1 = 0.01, K2 = 0.03, population covariances, symmetric ("reflect")
  padding, computed per channel and averaged. The whole-image value is the mean of the SSIM map with
  a 5-pixel border strip left out, exactly like ``skimage.metrics.structural_similarity(...,
  channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)``.

"Hole-only" variants restrict the average to hole pixels: L1 and PSNR over the hole pixels (all
channels); hole SSIM is the mean of the channel-averaged SSIM map over the hole pixels (the map is the
same one as above, so a window near a hole edge still sees its valid neighbours; no border strip is
dropped, because holes that touch the image border must count).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: Cap applied to PSNR values when averaging (identical images give ``inf``): MSE of 1e-10.
PSNR_CAP_DB = 100.0

SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # 5 -> 11 taps, as scipy.ndimage with truncate=3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

#: Metric column names, whole image then hole only, in table order.
METRIC_NAMES = ("l1", "psnr", "ssim", "l1_hole", "psnr_hole", "ssim_hole")


def to_float64_exact(image: np.ndarray) -> np.ndarray:
    """``image`` as float64 on the [0, 1] scale: uint8 / 255, floats kept exactly as they are.

    Not clipped (unlike :func:`pconv.runtime.imageio.to_float32_clipped`, which feeds the network):
    a metric must see a method's out-of-range output, not a tidied copy.
    """
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        raise TypeError(f"expected uint8 or float images on [0, 1], got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = to_float64_exact(a), to_float64_exact(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    if x.ndim != 3:
        raise ValueError(f"expected H x W or H x W x C images, got shape {x.shape}")
    return x, y


def _region(region: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if region is None:
        return None
    r = np.asarray(region).astype(bool)
    if r.shape != shape[:2]:
        raise ValueError(f"region mask must be H x W = {shape[:2]}, got {r.shape}")
    if not r.any():
        raise ValueError("region mask selects no pixels")
    return r


def l1(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean absolute error on [0, 1]; with ``region`` (H x W, True = counted) only over those pixels."""
    x, y = _pair(a, b)
    diff = np.abs(x - y)
    r = _region(region, x.shape)
    return float(diff.mean() if r is None else diff[r].mean())


def mse(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean squared error on [0, 1], optionally restricted to ``region``."""
    x, y = _pair(a, b)
    sq = (x - y) ** 2
    r = _region(region, x.shape)
    return float(sq.mean() if r is None else sq[r].mean())


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """PSNR in dB with data range 1; ``math.inf`` when the (region of the) images are identical."""
    err = mse(a, b, region)
    if err == 0.0:
        return math.inf
    return float(10.0 * math.log10(1.0 / err))


def mean_psnr(values: Iterable[float]) -> float:
    """Mean of PSNR values with each capped at :data:`PSNR_CAP_DB` (``inf`` counts as the cap)."""
    vals = [min(float(v), PSNR_CAP_DB) for v in values if not math.isnan(float(v))]
    return float(np.mean(vals)) if vals else math.nan


def gaussian_kernel_1d(sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> np.ndarray:
    """The normalised 1-D Gaussian taps scipy.ndimage uses for ``sigma`` and ``radius``."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _filter_axis(arr: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    radius = len(kernel) // 2
    pad = [(0, 0)] * arr.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(arr, pad, mode="symmetric")  # numpy "symmetric" == scipy.ndimage "reflect"
    n = arr.shape[axis]
    out = np.zeros_like(arr)
    for i, w in enumerate(kernel):
        out += w * np.take(padded, np.arange(i, i + n), axis=axis)
    return out


def gaussian_filter(arr: np.ndarray, sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> np.ndarray:
    """Separable Gaussian blur over the two spatial axes of an ``H x W [x C]`` array."""
    k = gaussian_kernel_1d(sigma, radius)
    return _filter_axis(_filter_axis(arr, k, 0), k, 1)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM averaged over channels (H x W), with the conventions in the module docstring."""
    x, y = _pair(a, b)
    if min(x.shape[:2]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least {2 * SSIM_RADIUS + 1} px per side, got {x.shape}")
    c1 = (SSIM_K1 * 1.0) ** 2
    c2 = (SSIM_K2 * 1.0) ** 2
    ux, uy = gaussian_filter(x), gaussian_filter(y)
    vx = gaussian_filter(x * x) - ux * ux
    vy = gaussian_filter(y * y) - uy * uy
    vxy = gaussian_filter(x * y) - ux * uy
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return np.asarray(s.mean(axis=2))


def ssim(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean SSIM: whole image (5-px border strip dropped, as scikit-image) or over ``region`` pixels."""
    smap = ssim_map(a, b)
    r = _region(region, smap.shape)
    if r is None:
        p = SSIM_RADIUS
        return float(smap[p:-p, p:-p].mean())
    return float(smap[r].mean())


@dataclass(frozen=True)
class Scores:
    """Every metric for one result against its ground truth."""

    l1: float
    psnr: float
    ssim: float
    l1_hole: float
    psnr_hole: float
    ssim_hole: float

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in METRIC_NAMES}


def score(result: np.ndarray, target: np.ndarray, hole: np.ndarray) -> Scores:
    """All metrics of ``result`` (the composite) against ``target``; ``hole`` is H x W, True = hole."""
    hole = np.asarray(hole).astype(bool)
    x, y = _pair(result, target)
    smap = ssim_map(x, y)
    p = SSIM_RADIUS
    return Scores(
        l1=l1(x, y),
        psnr=psnr(x, y),
        ssim=float(smap[p:-p, p:-p].mean()),
        l1_hole=l1(x, y, hole),
        psnr_hole=psnr(x, y, hole),
        ssim_hole=float(smap[_region(hole, smap.shape)].mean()),
    )
