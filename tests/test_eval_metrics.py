"""Metrics: known values on hand-made cases, and SSIM against scikit-image's implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pconv.eval import metrics

SKIMAGE_SSIM_ARGS = {
    "channel_axis": -1,
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
    "data_range": 1.0,
}


def _skimage_ssim(a: np.ndarray, b: np.ndarray, full: bool = False):
    from skimage.metrics import structural_similarity

    return structural_similarity(a, b, full=full, **SKIMAGE_SSIM_ARGS)


def test_constant_offset_gives_known_l1_and_psnr() -> None:
    a = np.full((32, 40, 3), 0.5)
    b = a + 0.1
    assert metrics.l1(a, b) == pytest.approx(0.1, abs=1e-12)
    assert metrics.psnr(a, b) == pytest.approx(20.0, abs=1e-9)  # 10 log10(1 / 0.01)


def test_uint8_inputs_are_scaled_to_unit_range() -> None:
    a = np.full((16, 16, 3), 100, np.uint8)
    b = np.full((16, 16, 3), 110, np.uint8)
    assert metrics.l1(a, b) == pytest.approx(10 / 255)
    assert metrics.psnr(a, b) == pytest.approx(20 * math.log10(255 / 10))


def test_identical_images_have_infinite_psnr_capped_in_means_and_ssim_one() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((24, 24, 3))
    assert metrics.psnr(a, a) == math.inf
    assert metrics.l1(a, a) == 0.0
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert metrics.mean_psnr([math.inf, 20.0]) == pytest.approx((metrics.PSNR_CAP_DB + 20.0) / 2)
    assert metrics.mean_psnr([30.0, 20.0]) == pytest.approx(25.0)


def test_hole_only_metrics_average_over_hole_pixels() -> None:
    a = np.full((20, 20, 3), 0.2)
    b = a.copy()
    hole = np.zeros((20, 20), bool)
    hole[5:10, 5:15] = True  # 50 of 400 pixels
    b[hole] += 0.3
    assert metrics.l1(a, b, hole) == pytest.approx(0.3)
    assert metrics.l1(a, b) == pytest.approx(0.3 * 50 / 400)
    assert metrics.psnr(a, b, hole) == pytest.approx(10 * math.log10(1 / 0.09))
    assert metrics.psnr(a, b, ~hole) == math.inf
    s = metrics.score(b, a, hole)
    assert s.l1_hole == pytest.approx(0.3) and s.l1 == pytest.approx(0.3 * 50 / 400)


@pytest.mark.parametrize("shape", [(64, 64, 3), (37, 53, 3), (11, 11, 3)])
def test_ssim_matches_scikit_image_on_random_images(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    a = rng.random(shape)
    b = np.clip(a + rng.normal(0, 0.15, shape), 0, 1)
    assert abs(metrics.ssim(a, b) - _skimage_ssim(a, b)) <= 1e-4


def test_ssim_matches_scikit_image_on_natural_images() -> None:
    from skimage import data

    photo = data.astronaut()[100:260, 150:330]  # bundled with scikit-image, no download
    x = photo.astype(np.float64) / 255
    blurred = metrics.gaussian_filter(x, sigma=2.0, radius=6)  # a realistic degradation
    rng = np.random.default_rng(1)
    noisy = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
    for degraded in (blurred, noisy):
        ours = metrics.ssim(photo, (degraded * 255).round().astype(np.uint8))
        ref = _skimage_ssim(x, (degraded * 255).round() / 255)
        assert abs(ours - ref) <= 1e-4
        assert 0.2 < ours < 0.999  # a real, non-trivial comparison


def test_hole_ssim_is_the_mean_of_the_ssim_map_over_hole_pixels() -> None:
    rng = np.random.default_rng(2)
    a = rng.random((40, 48, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    hole = np.zeros((40, 48), bool)
    hole[0:12, 20:40] = True  # touches the top border on purpose
    _, smap = _skimage_ssim(a, b, full=True)
    expected = smap.mean(axis=2)[hole].mean()
    assert abs(metrics.ssim(a, b, hole) - expected) <= 1e-4
    assert abs(metrics.score(b, a, hole).ssim_hole - expected) <= 1e-4


def test_bad_inputs_raise_clear_errors() -> None:
    a = np.zeros((16, 16, 3))
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.l1(a, np.zeros((16, 17, 3)))
    with pytest.raises(ValueError, match="no pixels"):
        metrics.l1(a, a, np.zeros((16, 16), bool))
    with pytest.raises(ValueError, match="at least 11"):
        metrics.ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
    with pytest.raises(TypeError, match="uint8 or float"):
        metrics.l1(a.astype(np.int32), a.astype(np.int32))
