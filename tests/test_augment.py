"""Training-crop augmentation: deterministic per seed, masks untouched, colour maps that keep grey grey."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pconv.data.images import BUILTIN_HELDOUT, BUILTIN_TRAIN, builtin_is_grey
from pconv.data.masks import ProceduralMaskSource
from pconv.training.augment import (
    ColourJitter,
    augment_crop,
    hue_rotation_matrix,
    random_dihedral,
    tint_grey,
)
from pconv.training.dataset import InpaintingDataset


def dataset(augment: str, seed: int = 0) -> InpaintingDataset:
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, size=(48, 40, 3), dtype=np.uint8) for _ in range(3)]
    return InpaintingDataset(
        images, 32, ProceduralMaskSource(32), seed=seed, augment=augment, grey=[False, True, False]
    )


@pytest.mark.parametrize("augment", ["none", "geometric", "full"])
def test_samples_are_a_pure_function_of_seed_and_index(augment: str) -> None:
    a, b = dataset(augment), dataset(augment)
    for index in (0, 7, 123):
        (ia, ha), (ib, hb) = a.sample(index), b.sample(index)
        assert np.array_equal(ia, ib) and np.array_equal(ha, hb)
        assert ia.shape == (32, 32, 3) and ia.dtype == np.uint8 and ha.shape == (32, 32)
    assert not np.array_equal(dataset(augment, seed=1).sample(0)[0], a.sample(0)[0])


def test_augmentation_never_changes_the_mask_or_the_crop_it_starts_from() -> None:
    """Same holes at every level, and the geometric crop is one of the 8 flips/turns of the plain crop:
    the image moves as a whole, so what the model sees around each hole is a real neighbourhood."""
    plain, geometric, full = dataset("none"), dataset("geometric"), dataset("full")
    for index in range(12):
        image, hole = plain.sample(index)
        g_image, g_hole = geometric.sample(index)
        assert np.array_equal(hole, g_hole) and np.array_equal(hole, full.sample(index)[1])
        variants = [np.rot90(image, k) for k in range(4)]
        variants += [v[:, ::-1] for v in variants]
        assert any(np.array_equal(g_image, v) for v in variants)


def test_full_augmentation_changes_colour_but_not_geometry() -> None:
    geometric, full = dataset("geometric"), dataset("full")
    changed = 0
    for index in range(12):
        g = geometric.sample(index)[0].astype(np.float64)
        f = full.sample(index)[0].astype(np.float64)
        # Colour maps are per pixel: where the geometric crop has an edge, the coloured one has it too.
        edges_g = np.abs(np.diff(g.mean(axis=2), axis=1)) > 60
        edges_f = np.abs(np.diff(f, axis=1)).max(axis=2) > 0
        assert edges_f[edges_g].mean() > 0.9
        changed += int(np.abs(f - g).mean() > 5)
    assert changed >= 10


def test_hue_rotation_is_a_rotation_that_keeps_grey_grey() -> None:
    for angle in (0.3, -2.0, math.pi):
        rot = hue_rotation_matrix(angle)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
        np.testing.assert_allclose(rot @ np.ones(3), np.ones(3), atol=1e-6)
    # A third of a turn maps red to green: hue really rotates.
    np.testing.assert_allclose(hue_rotation_matrix(2 * math.pi / 3) @ [1, 0, 0], [0, 1, 0], atol=1e-6)


def test_jitter_stays_in_range_and_tint_is_monotone_in_grey() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((16, 16, 3), dtype=np.float32)
    out = ColourJitter()(image, rng)
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    ramp = np.linspace(0, 1, 11, dtype=np.float32)[None, :]
    tinted = tint_grey(ramp, rng)
    assert tinted.shape == (1, 11, 3)
    assert np.all(np.diff(tinted[0], axis=0) > 0)  # brighter grey -> brighter in every channel
    assert np.ptp(tinted[0, -1]) > 0 or np.ptp(tinted[0, 0]) > 0  # a colour, not grey


def test_grey_sources_get_colour_under_full_augmentation() -> None:
    rng = np.random.default_rng(1)
    grey = np.repeat(rng.integers(0, 256, size=(16, 16, 1), dtype=np.uint8), 3, axis=2)
    out = augment_crop(grey, True, "full", np.random.default_rng(2), ColourJitter())
    assert np.abs(out[..., 0].astype(int) - out[..., 1]).mean() > 2  # channels now differ
    assert np.array_equal(augment_crop(grey, True, "none", rng, ColourJitter()), grey)


def test_dihedral_keeps_square_shape() -> None:
    array = np.arange(2 * 2 * 3).reshape(2, 2, 3)
    assert random_dihedral(array, np.random.default_rng(0)).shape == array.shape


def test_builtin_split_holds_out_every_evaluation_photo() -> None:
    assert not set(BUILTIN_TRAIN) & set(BUILTIN_HELDOUT)
    assert {"camera", "brick", "grass", "gravel"} <= {n for n in BUILTIN_TRAIN if builtin_is_grey(n)}
