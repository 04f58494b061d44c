"""Datasets: builtin photos (no download), image folders, file masks, index-seeded sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pconv.data.images import (
    BUILTIN_HELDOUT,
    BUILTIN_TRAIN,
    builtin_image_path,
    builtin_images,
    heldout_crops,
)
from pconv.data.masks import save_mask_file
from pconv.errors import PconvError
from pconv.training.dataset import StepIndexSampler, make_dataset


def test_builtin_photos_are_local_and_split() -> None:
    assert not set(BUILTIN_TRAIN) & set(BUILTIN_HELDOUT)
    for name in BUILTIN_TRAIN + BUILTIN_HELDOUT:
        assert builtin_image_path(name).is_file()  # shipped inside the scikit-image wheel
    train = builtin_images("train")
    assert len(train) == len(BUILTIN_TRAIN)
    assert all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 for im in train)
    crops = heldout_crops(64, count=3)
    assert [c.shape for c in crops] == [(64, 64, 3)] * 3
    assert np.array_equal(crops[0], heldout_crops(64, count=3)[0])


def test_builtin_samples_are_deterministic_per_index() -> None:
    ds = make_dataset("builtin", 64, "procedural", seed=3, hole_ratio=(0.2, 0.4))
    image, mask = ds[5]
    assert image.shape == (3, 64, 64) and mask.shape == (1, 64, 64)
    assert image.dtype == torch.float32 and image.min() >= 0.0 and image.max() <= 1.0
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert 0.2 <= 1.0 - mask.mean().item() <= 0.4  # 1 = valid: the hole ratio is 1 - mean
    again_image, again_mask = ds[5]
    assert torch.equal(image, again_image) and torch.equal(mask, again_mask)
    assert not torch.equal(image, ds[6][0])


def test_image_folder_with_file_masks(tmp_path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "imgs" / "nested").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "imgs" / "a.png")
    Image.fromarray(rng.integers(0, 255, (90, 70, 3), dtype=np.uint8)).save(
        tmp_path / "imgs" / "nested" / "b.JPG"
    )
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "imgs" / "c.webp")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    (tmp_path / "masks").mkdir()
    hole = np.zeros((128, 128), dtype=bool)
    hole[40:80, 40:80] = True
    save_mask_file(hole, tmp_path / "masks" / "m.png")
    ds = make_dataset(str(tmp_path / "imgs"), 48, str(tmp_path / "masks"))
    assert len(ds) == 3
    for i in range(6):
        image, mask = ds[i]
        assert image.shape == (3, 48, 48) and mask.shape == (1, 48, 48)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PconvError, match="no images"):
        make_dataset(str(tmp_path / "empty"), 48)
    with pytest.raises(PconvError, match="not a directory"):
        make_dataset(str(tmp_path / "missing"), 48)
    with pytest.raises(PconvError, match="no mask images"):
        make_dataset("builtin", 48, str(tmp_path / "empty"))


def test_step_sampler_splits_ranks_and_resumes() -> None:
    def take(sampler: StepIndexSampler, n: int) -> list[int]:
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    r0 = take(StepIndexSampler(batch=3, rank=0, world_size=2), 9)
    r1 = take(StepIndexSampler(batch=3, rank=1, world_size=2), 9)
    assert not set(r0) & set(r1)
    assert sorted(r0 + r1) == list(range(18))
    resumed = take(StepIndexSampler(batch=3, start_step=2, rank=0, world_size=2), 3)
    assert resumed == r0[6:9]


def test_image_folder_skips_hidden_files_and_reports_bad_ones_once_up_front(tmp_path) -> None:
    from pconv.data.images import find_images
    from pconv.training.dataset import make_dataset

    rng = np.random.default_rng(0)
    for name in ("a.png", "sub/b.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "._a.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (tmp_path / ".thumbs").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / ".thumbs" / "t.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    assert [p.name for p in find_images(tmp_path)] == ["a.png", "broken.jpg", "b.jpg"]
    with pytest.warns(UserWarning, match=r"skipping 1 of 3 files that are not readable images: broken\.jpg"):
        dataset = make_dataset(str(tmp_path), 16)
    assert sorted(p.name for p in dataset.images) == ["a.png", "b.jpg"]
    for name in ("a.png", "sub/b.jpg"):
        (tmp_path / name).write_bytes(b"junk")
    with pytest.raises(PconvError, match="none of its 3 image files is readable"):
        make_dataset(str(tmp_path), 16)


def test_a_file_that_breaks_while_decoding_is_replaced_not_fatal(tmp_path) -> None:
    from pconv.training.dataset import InpaintingDataset

    good = tmp_path / "good.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(good)
    full = (tmp_path / "good.png").read_bytes()
    (tmp_path / "torn.png").write_bytes(full[: len(full) // 2])  # header fine, data cut off
    dataset = InpaintingDataset([tmp_path / "torn.png", good], 16, lambda rng: np.zeros((16, 16), bool))
    with pytest.warns(UserWarning, match="torn.png from now on"):
        crops = [dataset.sample(i)[0] for i in range(6)]
    assert all((c == 90).all() for c in crops)  # every sample came from the readable file


def test_mask_folder_skips_hidden_and_broken_files(tmp_path) -> None:
    from pconv.data.masks import FileMaskSource

    hole = np.zeros((32, 32), bool)
    hole[8:20, 8:20] = True
    save_mask_file(hole, tmp_path / "m.png")
    (tmp_path / "._m.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (tmp_path / "bad.png").write_bytes(b"junk")
    full = (tmp_path / "m.png").read_bytes()
    (tmp_path / "torn.png").write_bytes(full[: len(full) // 2])
    with pytest.warns(UserWarning, match=r"--masks: skipping 1 of 3 files .*bad\.png"):
        source = FileMaskSource(tmp_path, 32)
    assert sorted(p.name for p in source.files) == ["m.png", "torn.png"]
    rng = np.random.default_rng(0)
    with pytest.warns(UserWarning, match="torn.png from now on"):
        masks = [source(rng) for _ in range(8)]
    assert all(m.shape == (32, 32) and m.any() for m in masks)
