"""Mask files, augmentation and the procedural generator (torch-free module)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pconv.data.masks import (
    FileMaskSource,
    MaskAugmenter,
    augment_mask_file,
    dilate,
    generate_irregular_mask,
    load_mask_file,
    save_mask_file,
    to_valid_mask,
)


def test_generator_is_deterministic_under_a_seed() -> None:
    a = generate_irregular_mask(48, 64, np.random.default_rng(7))
    b = generate_irregular_mask(48, 64, np.random.default_rng(7))
    c = generate_irregular_mask(48, 64, np.random.default_rng(8))
    assert a.dtype == bool and a.shape == (48, 64)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("ratio", [(0.01, 0.1), (0.1, 0.2), (0.3, 0.5), (0.5, 0.6)])
def test_hole_ratio_lands_in_range(ratio: tuple[float, float]) -> None:
    rng = np.random.default_rng(0)
    got = [generate_irregular_mask(64, 64, rng, hole_ratio=ratio).mean() for _ in range(25)]
    assert min(got) >= ratio[0] and max(got) <= ratio[1], (min(got), max(got))
    assert max(got) - min(got) > 0.2 * (ratio[1] - ratio[0])  # spread over the range, not one value


def test_border_margin_keeps_holes_inside() -> None:
    rng = np.random.default_rng(1)
    for _ in range(10):
        hole = generate_irregular_mask(64, 80, rng, hole_ratio=(0.2, 0.3), margin=12)
        assert 0.2 <= hole.mean() <= 0.3
        assert not hole[:12].any() and not hole[-12:].any()
        assert not hole[:, :12].any() and not hole[:, -12:].any()


def test_impossible_requests_raise() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="impossible with margin"):
        generate_irregular_mask(32, 32, rng, hole_ratio=(0.5, 0.6), margin=10)  # inner area 0.14
    with pytest.raises(ValueError, match="hole_ratio must satisfy"):
        generate_irregular_mask(32, 32, rng, hole_ratio=(0.6, 0.5))
    with pytest.raises(ValueError, match="could not reach"):
        generate_irregular_mask(32, 32, rng, hole_ratio=(0.30005, 0.30006))  # narrower than one pixel


def test_binarise_at_mid_grey_and_white_is_hole_switch(tmp_path) -> None:
    grey = np.array([[0, 100, 127, 128, 255]], dtype=np.uint8)  # 127/255=0.498, 128/255=0.502
    path = tmp_path / "m.png"
    Image.fromarray(grey).save(path)
    assert load_mask_file(path).tolist() == [[False, False, False, True, True]]
    assert load_mask_file(path, white_is_hole=False).tolist() == [[True, True, True, False, False]]
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(rgb)
    assert np.array_equal(load_mask_file(rgb), load_mask_file(path))


def test_valid_mask_convention_and_file_round_trip(tmp_path) -> None:
    hole = np.array([[True, False], [False, False]])
    valid = to_valid_mask(hole)
    assert valid.dtype == np.float32 and valid.tolist() == [[0.0, 1.0], [1.0, 1.0]]
    for white_is_hole in (True, False):
        path = save_mask_file(hole, tmp_path / f"h{white_is_hole}.png", white_is_hole=white_is_hole)
        assert np.array_equal(load_mask_file(path, white_is_hole=white_is_hole), hole)


def test_dilate_by_hand() -> None:
    hole = np.zeros((7, 7), dtype=bool)
    hole[3, 3] = True
    grown = dilate(hole, 3)
    assert grown.sum() == 9 and grown[2:5, 2:5].all()
    assert dilate(hole, 5).sum() == 25
    edge = np.zeros((5, 5), dtype=bool)
    edge[0, 0] = True
    assert dilate(edge, 3).sum() == 4  # clipped at the border


def test_augmenter_shapes_determinism_and_dilation(tmp_path) -> None:
    source = np.zeros((128, 128), dtype=bool)
    source[60:68, 20:100] = True  # a thin bar, 3.9 % of the area
    aug = MaskAugmenter(64, dilation=(9, 49), max_rotation=30, max_translation=0.1)
    a = aug(source, np.random.default_rng(3))
    b = aug(source, np.random.default_rng(3))
    assert a.shape == (64, 64) and a.dtype == bool and np.array_equal(a, b)
    ratios = [aug(source, np.random.default_rng(s)).mean() for s in range(10)]
    assert np.mean(ratios) > source.mean()  # the 9-49 px dilation grows the holes
    identity = MaskAugmenter(128, dilation=(1, 1), max_rotation=0, max_translation=0, crop_scale=(1, 1))
    assert np.array_equal(identity(source, np.random.default_rng(0)), source)

    for i in range(3):
        save_mask_file(source, tmp_path / f"mask_{i}.png")
    one = augment_mask_file(tmp_path / "mask_0.png", (24, 40), np.random.default_rng(5))
    assert one.shape == (24, 40) and np.array_equal(
        one, augment_mask_file(tmp_path / "mask_0.png", (24, 40), np.random.default_rng(5))
    )
    files = FileMaskSource(tmp_path, 32)
    assert files(np.random.default_rng(0)).shape == (32, 32)
    with pytest.raises(FileNotFoundError, match="no mask images"):
        FileMaskSource(tmp_path / "empty", 32)


def test_masks_and_data_import_without_torch() -> None:
    code = (
        "import sys\n"
        "import pconv.data.masks, pconv.data.images\n"
        "from pconv.data.images import builtin_images\n"
        "assert builtin_images('heldout')[0].ndim == 3\n"
        "bad = [m for m in ('torch', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_augmenter_translates_rotates_and_crops() -> None:
    """Each random step acts on its own, even when the mask file has the training size."""
    source = np.zeros((64, 64), dtype=bool)
    source[28:36, 8:56] = True  # a horizontal bar: 8 rows, 48 columns
    rngs = [np.random.default_rng(s) for s in range(8)]

    def only(**kw: object) -> list[np.ndarray]:
        params: dict = {"dilation": (1, 1), "max_rotation": 0, "max_translation": 0, "crop_scale": (1, 1)}
        aug = MaskAugmenter(64, **(params | kw))
        return [aug(source, rng) for rng in rngs]

    def rows_and_cols(hole: np.ndarray) -> tuple[int, int]:
        return int(hole.any(axis=1).sum()), int(hole.any(axis=0).sum())

    shifted = only(max_translation=0.25)
    assert any(not np.array_equal(m, source) for m in shifted)
    assert all(rows_and_cols(m)[0] == 8 for m in shifted)  # a shift keeps the bar's shape
    turned = only(max_rotation=180)
    assert max(rows_and_cols(m)[0] for m in turned) > 20  # some rotation stood the bar up
    cropped = only(crop_scale=(0.5, 0.7))
    # A 32..45 px window resized to 64: the bar gets thicker (and may leave the window).
    assert all(m.shape == (64, 64) for m in cropped)
    assert any(rows_and_cols(m)[0] > 8 for m in cropped)
    assert len({m.tobytes() for m in cropped}) > 1  # the window position and size are random
    with pytest.raises(ValueError, match="crop_scale"):
        MaskAugmenter(64, crop_scale=(0.0, 1.0))
