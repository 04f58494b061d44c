"""Classical baselines: valid pixels untouched, holes filled sensibly."""

from __future__ import annotations

import numpy as np
import pytest

from pconv.eval import baselines, metrics


def _gradient(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return (
        np.stack([x * 255 / (w - 1), y * 255 / (h - 1), np.full_like(x, 120.0)], axis=-1)
        .round()
        .astype(np.uint8)
    )


def _hole() -> np.ndarray:
    hole = np.zeros((48, 64), bool)
    hole[15:30, 20:40] = True
    return hole


@pytest.mark.parametrize("name", baselines.BASELINE_NAMES)
def test_baselines_keep_valid_pixels_and_fill_holes(name: str) -> None:
    image, hole = _gradient(), _hole()
    damaged = image.copy()
    damaged[hole] = 0  # what is under the hole must not matter
    out = baselines.get_baseline(name)(damaged, hole)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[~hole], image[~hole])
    assert metrics.l1(out, image, hole) < 0.25  # far better than the zeros that were there


def test_mean_fill_uses_the_mean_of_valid_pixels() -> None:
    image, hole = _gradient(), _hole()
    out = baselines.mean_fill(image, hole)
    expected = np.rint(image[~hole].mean(axis=0)).astype(np.uint8)
    assert np.array_equal(out[hole], np.broadcast_to(expected, out[hole].shape))


def test_diffusion_baselines_beat_mean_fill_on_a_smooth_image() -> None:
    image, hole = _gradient(), _hole()
    mean_err = metrics.l1(baselines.mean_fill(image, hole), image, hole)
    for name in ("telea", "ns"):
        err = metrics.l1(baselines.get_baseline(name, radius=5)(image, hole), image, hole)
        assert err < 0.5 * mean_err, name


def test_constant_image_is_filled_with_its_colour() -> None:
    image = np.full((32, 32, 3), 77, np.uint8)
    hole = np.zeros((32, 32), bool)
    hole[8:20, 5:25] = True
    assert metrics.psnr(baselines.mean_fill(image, hole), image) == float("inf")
    assert metrics.psnr(baselines.navier_stokes(image, hole), image) == float("inf")
    # OpenCV's Telea weights gradients and lands within a few grey levels (76..79 measured), not exactly
    assert metrics.l1(baselines.telea(image, hole), image, hole) < 2 / 255


def test_unknown_baseline_and_bad_inputs() -> None:
    with pytest.raises(ValueError, match="telea, ns, mean"):
        baselines.get_baseline("lama")
    with pytest.raises(ValueError, match="uint8"):
        baselines.mean_fill(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), bool))
