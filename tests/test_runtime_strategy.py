"""Tile planning (pure numpy) and hypothesis properties of the whole Inpainter call."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pconv.runtime import Inpainter
from pconv.runtime.backend import Backend, ModelInfo
from pconv.runtime.strategy import (
    Box,
    choose,
    hole_regions,
    padded_size,
    plan_crop,
    plan_full,
    plan_resize,
    resize_bilinear,
)

DYNAMIC = ModelInfo(size_multiple=8, mask_convention="1=valid,0=hole", io_dtype=np.dtype(np.float32))
PROFILE = ModelInfo(8, "1=valid,0=hole", np.dtype(np.float32), min_shape=(1, 16, 16), max_shape=(4, 64, 96))


def test_padded_size_respects_multiple_and_profile() -> None:
    assert padded_size(37, 61, DYNAMIC) == (40, 64)
    assert padded_size(1, 1, DYNAMIC) == (8, 8)
    assert padded_size(5, 5, PROFILE) == (16, 16)
    assert padded_size(64, 96, PROFILE) == (64, 96)
    assert padded_size(65, 10, PROFILE) is None


def test_auto_picks_crop_past_the_limits_or_the_budget() -> None:
    assert choose("auto", (60, 90), PROFILE, 10**9) == "full"
    assert choose("auto", (70, 90), PROFILE, 10**9) == "crop"
    assert choose("auto", (300, 300), DYNAMIC, 10**9) == "full"
    assert choose("auto", (300, 300), DYNAMIC, 100 * 100) == "crop"
    assert choose("full", (300, 300), DYNAMIC, 1) == "full"
    with pytest.raises(ValueError, match="strategy must be one of"):
        choose("tiles", (8, 8), DYNAMIC, 1)


def test_hole_regions_are_tight_and_separate_far_groups() -> None:
    holes = np.zeros((200, 300), bool)
    holes[10:20, 30:45] = True
    holes[150:170, 250:260] = True
    boxes = sorted(hole_regions(holes, margin=16), key=lambda b: b.y0)
    assert boxes == [Box(10, 30, 20, 45), Box(150, 250, 170, 260)]
    merged = hole_regions(holes, margin=200)
    assert merged == [Box(10, 30, 170, 260)]
    assert hole_regions(np.zeros((9, 9), bool), 8) == []


def test_resize_bilinear_is_identity_at_same_size_and_preserves_constants() -> None:
    a = np.random.default_rng(0).random((10, 14, 3), dtype=np.float32)
    assert resize_bilinear(a, 10, 14) is a
    const = np.full((31, 17), 0.25, np.float32)
    assert np.allclose(resize_bilinear(const, 8, 40), 0.25)
    assert resize_bilinear(a, 5, 7).shape == (5, 7, 3)
    whole = resize_bilinear(a, 25, 33)  # a window is exactly that part of the whole result
    assert np.array_equal(
        resize_bilinear(a, 25, 33, rows=slice(3, 20), cols=slice(10, 31)), whole[3:20, 10:31]
    )


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 150),
    w=st.integers(1, 150),
    seed=st.integers(0, 2**16),
    margin=st.sampled_from([0, 4, 16, 64]),
    info=st.sampled_from([DYNAMIC, PROFILE]),
    budget=st.sampled_from([None, 32 * 32, 48 * 48, 10**9]),
)
def test_crop_plan_covers_every_hole_once_within_limits(h, w, seed, margin, info, budget) -> None:
    rng = np.random.default_rng(seed)
    holes = rng.random((h, w)) > rng.uniform(0.9, 1.0)
    tiles = plan_crop(0, holes, info, margin, budget)
    covered = np.zeros((h, w), np.int32)
    for tile in tiles:
        covered[tile.write.slices] += 1
        b, wr = tile.box, tile.write
        assert 0 <= b.y0 <= wr.y0 < wr.y1 <= b.y1 <= h and 0 <= b.x0 <= wr.x0 < wr.x1 <= b.x1 <= w
        assert tile.net[0] % 8 == 0 and tile.net[1] % 8 == 0
        assert tile.scaled[0] <= tile.net[0] and tile.scaled[1] <= tile.net[1]
        if info.max_shape is not None:
            assert tile.net[0] <= info.max_shape[1] and tile.net[1] <= info.max_shape[2]
        if budget is not None:
            assert tile.net[0] * tile.net[1] <= max(budget, 16 * 16)  # memory bounded per tile
    assert (covered[holes] == 1).all()  # every hole pixel written by exactly one tile
    if holes.any() and padded_size(h, w, info) is not None:
        assert plan_full(0, (h, w), info).net == padded_size(h, w, info)


@pytest.fixture(scope="module")
def inpainter(tiny_onnx_factory) -> Inpainter:
    return Inpainter(tiny_onnx_factory())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 90),
    w=st.integers(1, 90),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from(["uint8", "float32"]),
    strategy=st.sampled_from(["full", "crop", "auto"]),
    hole_fraction=st.floats(0.01, 1.0),
)
def test_inpainter_properties(inpainter, h, w, seed, dtype, strategy, hole_fraction) -> None:
    rng = np.random.default_rng(seed)
    if dtype == "uint8":
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:
        image = rng.random((h, w, 3), dtype=np.float32)
    mask = (rng.random((h, w)) < hole_fraction).astype(np.uint8)
    mask[rng.integers(0, h), rng.integers(0, w)] = 1  # at least one hole
    out = inpainter(image, mask, strategy=strategy)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert np.isfinite(out.astype(np.float64)).all()
    valid = mask == 0
    assert np.array_equal(out[valid], image[valid])
    if dtype == "float32":
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_pure_python_labelling_matches_scipy_free_expectation() -> None:
    from pconv.runtime.strategy import _label, _label_python

    grid = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1], [1, 1, 0, 1]], dtype=bool)
    labels, count = _label_python(grid)
    assert count == 4  # the diagonal pair is one region (8-connectivity)
    assert labels[0, 0] == labels[1, 1] and labels[2, 3] == labels[3, 3] != labels[0, 3]
    scipy_labels, scipy_count = _label(grid)
    assert scipy_count == count and np.array_equal(scipy_labels > 0, labels > 0)


def test_scattered_masks_are_merged_into_few_regions() -> None:
    from pconv.runtime.strategy import MAX_REGIONS

    holes = np.random.default_rng(0).random((1200, 1200)) > 0.999
    boxes = hole_regions(holes, margin=0)
    assert 1 <= len(boxes) <= MAX_REGIONS
    covered = np.zeros_like(holes)
    for b in boxes:
        covered[b.slices] = True
    assert covered[holes].all()


@pytest.mark.parametrize("shape", ["frame", "specks", "one"])
def test_big_groups_are_split_into_tiles_within_the_budget(shape: str) -> None:
    """A frame-shaped hole or scattered specks merge into one whole-image group; the plan splits it."""
    h, w, budget = 3000, 4000, 512 * 512
    holes = np.zeros((h, w), bool)
    if shape == "frame":
        holes[:40], holes[-40:], holes[:, :40], holes[:, -40:] = True, True, True, True
    elif shape == "specks":
        rng = np.random.default_rng(0)
        holes[rng.integers(0, h, 3000), rng.integers(0, w, 3000)] = True
    else:
        holes[500:2500, 800:3000] = True
    tiles = plan_crop(0, holes, DYNAMIC, 64, budget)
    covered = np.zeros((h, w), np.int32)
    for tile in tiles:
        assert tile.net[0] * tile.net[1] <= budget and tile.scaled == (tile.box.height, tile.box.width)
        covered[tile.write.slices] += 1
    assert (covered[holes] == 1).all()
    boxed = sum(t.net[0] * t.net[1] for t in tiles)
    if shape == "frame":  # the frame's empty middle is not inpainted
        assert boxed < 0.5 * h * w and not covered[1000:2000, 1000:3000].any()


def test_resize_plan_fits_the_budget_and_writes_the_holes() -> None:
    holes = np.zeros((3000, 4000), bool)
    holes[100:200, 3000:3500] = True
    tile = plan_resize(0, holes, DYNAMIC, 512 * 512)
    assert tile.net[0] * tile.net[1] <= 512 * 512 and tile.box == Box(0, 0, 3000, 4000)
    assert tile.write == Box(100, 3000, 200, 3500)
    assert abs(tile.scaled[0] / tile.scaled[1] - 0.75) < 0.01  # aspect kept
    assert choose("resize", (3000, 4000), DYNAMIC, 1) == "resize"
    with pytest.raises(Exception, match="larger than the model"):
        plan_full(0, (100, 100), PROFILE)
    small = plan_resize(0, np.ones((100, 200), bool), PROFILE, 10**9)  # the profile's maximum is the limit
    assert small.net[0] <= 64 and small.net[1] <= 96


def test_resize_and_budgeted_crop_end_to_end(inpainter, monkeypatch) -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)
    holes = np.zeros((120, 200), bool)
    holes[:6], holes[-6:], holes[:, :6], holes[:, -6:] = True, True, True, True  # a frame
    small = Inpainter.from_backend(inpainter.backend, pixel_budget=64 * 64, margin=8, tile_pixels=64 * 64)
    for strategy in ("resize", "crop", "auto"):
        out = small(image, holes, strategy=strategy)
        assert np.array_equal(out[~holes], image[~holes]) and not np.array_equal(out[holes], image[holes])
    from pconv.runtime import inpainter as inpainter_module

    whole = small(image, holes, strategy="resize")
    monkeypatch.setattr(inpainter_module, "UPSCALE_ROWS", 7)  # the fill upscaled in bands: the same result
    assert np.array_equal(small(image, holes, strategy="resize"), whole)


def test_backend_calls_stay_within_the_pixel_budget(inpainter) -> None:
    """Batching must not multiply the memory of big tiles: a call holds at most tile_pixels pixels."""

    class Recording(Backend):
        name = "recording"

        def __init__(self, inner) -> None:
            self.inner, self.info, self.shapes = inner, inner.info, []

        def run(self, image, mask):
            self.shapes.append(image.shape)
            return self.inner.run(image, mask)

        def close(self) -> None:
            pass

    backend = Recording(inpainter.backend)
    budget = 64 * 64
    small = Inpainter.from_backend(backend, margin=8, tile_pixels=budget)
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (150, 230, 3), dtype=np.uint8)
    holes = np.zeros((150, 230), bool)
    holes[::37, ::41] = True  # specks everywhere: one merged group, split into many tiles
    out = small(image, holes, strategy="crop", batch_size=8)
    assert np.array_equal(out[~holes], image[~holes])
    assert len(backend.shapes) > 1
    assert all(n * h * w <= budget for n, _, h, w in backend.shapes)
