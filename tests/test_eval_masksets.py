"""Binned test mask sets: bin edges, the border flag, generation, binning an existing folder, CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pconv.apps.cli import main
from pconv.data import masks
from pconv.eval import masksets


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (0.0, None),
        (0.01, None),  # lower bounds are exclusive
        (0.0100001, 0),
        (0.1, 0),  # upper bounds inclusive
        (0.1000001, 1),
        (0.35, 3),
        (0.5, 4),
        (0.6, 5),
        (0.6000001, None),
        (0.9, None),
    ],
)
def test_bin_index_edges(ratio: float, expected: int | None) -> None:
    assert masksets.bin_index(ratio) == expected


def test_border_margin_definition() -> None:
    assert masksets.border_margin(512, 512) == 16
    assert masksets.border_margin(64, 64) == 2
    assert masksets.border_margin(512, 256) == 8
    assert masksets.border_margin(8, 8) == 1


def test_border_flag_on_constructed_masks() -> None:
    hole = np.zeros((64, 64), bool)
    hole[2:62, 2:62] = True  # exactly at the 2-px margin: inside, does not touch
    assert masksets.touches_border(hole) is False
    for rows, cols in (
        (slice(1, 3), slice(30, 31)),
        (slice(63, 64), slice(5, 6)),
        (slice(30, 31), slice(62, 63)),
    ):
        h = np.zeros((64, 64), bool)
        h[20:30, 20:30] = True
        h[rows, cols] = True
        assert masksets.touches_border(h) is True
    b, border, ratio = masksets.classify(hole)
    assert (b, border) == (masksets.bin_index(60 * 60 / 64**2), False)
    assert ratio == pytest.approx(3600 / 4096)


def test_generated_masks_land_in_their_cells_and_are_deterministic(tmp_path: Path) -> None:
    entries = masksets.generate_mask_set(tmp_path / "a", per_bin=2, size=64, seed=7, progress=False)
    assert len(entries) == 2 * 12
    assert masksets.cell_counts(entries) == {(b, f): 2 for b in range(6) for f in (False, True)}
    index = masksets.read_index(tmp_path / "a" / masksets.INDEX_NAME)
    assert index == entries
    for e in entries:
        hole = masks.load_mask_file(e.path(tmp_path / "a"))  # reload the PNG: white = hole
        b, border, ratio = masksets.classify(hole)
        assert (b, border) == (e.bin, e.border)
        assert ratio == pytest.approx(e.hole_ratio, abs=1e-6)
        lo, hi = masksets.BINS[e.bin]
        assert lo < ratio <= hi
    again = masksets.generate_mask_set(tmp_path / "b", per_bin=3, size=64, seed=7, progress=False)
    for e in entries:  # same seed: identical masks, and mask i does not depend on --per-bin
        a = np.asarray(Image.open(e.path(tmp_path / "a")))
        b_ = np.asarray(Image.open(e.path(tmp_path / "b")))
        assert np.array_equal(a, b_)
    assert {e.file for e in entries} < {e.file for e in again}
    other = masksets.generate_mask_set(tmp_path / "c", per_bin=2, size=64, seed=8, progress=False)
    assert any(
        not np.array_equal(
            np.asarray(Image.open(e.path(tmp_path / "a"))), np.asarray(Image.open(o.path(tmp_path / "c")))
        )
        for e, o in zip(entries, other)
    )


def _save(path: Path, hole: np.ndarray, white_is_hole: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    masks.save_mask_file(hole, path, white_is_hole=white_is_hole)


def _box(h0: int, h1: int, w0: int, w1: int, size: int = 64) -> np.ndarray:
    hole = np.zeros((size, size), bool)
    hole[h0:h1, w0:w1] = True
    return hole


def test_binning_an_existing_folder(tmp_path: Path) -> None:
    src = tmp_path / "nvidia"
    _save(src / "a_inner_small.png", _box(20, 36, 20, 36))  # 256/4096 = 0.0625, inside
    _save(src / "b_edge_quarter.png", _box(0, 32, 0, 32))  # 0.25, touches
    _save(src / "sub" / "c_inner_half.png", _box(8, 56, 10, 50))  # 1920/4096 = 0.469, inside
    _save(src / "d_empty.png", _box(0, 0, 0, 0))  # 0: outside every bin
    _save(src / "e_full.png", _box(0, 64, 0, 60))  # 0.9375: outside
    (src / "f_broken.png").write_bytes(b"not a png")
    binned = masksets.bin_folder(src, progress=False)
    got = {e.file: (e.bin, e.border, e.hole_ratio) for e in binned.entries}
    assert got == {
        "a_inner_small.png": (0, False, pytest.approx(0.0625)),
        "b_edge_quarter.png": (2, True, pytest.approx(0.25)),
        "sub/c_inner_half.png": (4, False, pytest.approx(1920 / 4096)),
    }
    assert sorted(name for name, _ in binned.outside) == ["d_empty.png", "e_full.png"]
    assert [name for name, _ in binned.unreadable] == ["f_broken.png"]

    out = tmp_path / "index"
    index_binned = masksets.bin_folder(src, index_dir=out, progress=False)
    masksets.write_binned_folder(index_binned, out)
    entries = masksets.load_mask_set(out)
    assert [Path(e.file).is_absolute() for e in entries] == [True] * 3  # the files stay where they are
    assert all(e.path(out).is_file() for e in entries)
    with open(out / masksets.OUTSIDE_NAME) as f:
        rows = list(csv.DictReader(f))
    assert {r["file"].rsplit("/", 1)[-1] for r in rows} == {"d_empty.png", "e_full.png", "f_broken.png"}
    # binning again after the odd files are gone leaves no stale list behind
    for name in ("d_empty.png", "e_full.png", "f_broken.png"):
        (src / name).unlink()
    masksets.write_binned_folder(masksets.bin_folder(src, index_dir=out, progress=False), out)
    assert not (out / masksets.OUTSIDE_NAME).exists() and len(masksets.read_index(out / "index.csv")) == 3

    # black = hole: the same geometry drawn the other way round classifies the same
    inverted = tmp_path / "inverted"
    _save(inverted / "x.png", _box(0, 32, 0, 32), white_is_hole=False)
    (e,) = masksets.bin_folder(inverted, white_is_hole=False, progress=False).entries
    assert (e.bin, e.border) == (2, True)


def test_masks_cli_generates_and_bins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["masks", "--out", str(tmp_path / "gen"), "--per-bin", "1", "--size", "64", "--no-progress"])
        == 0
    )
    assert "wrote 12 masks" in capsys.readouterr().out
    assert len(masksets.read_index(tmp_path / "gen" / masksets.INDEX_NAME)) == 12
    # bin the generated folder again, as one would bin NVIDIA's test set: same cells
    args = ["masks", "--from", str(tmp_path / "gen"), "--out", str(tmp_path / "rebinned"), "--no-progress"]
    assert main(args) == 0
    rebinned = masksets.read_index(tmp_path / "rebinned" / masksets.INDEX_NAME)
    assert masksets.cell_counts(rebinned) == {(b, f): 1 for b in range(6) for f in (False, True)}
    assert main(["masks", "--out", str(tmp_path / "x"), "--no-progress"]) == 2  # one-line error, no traceback
    assert "--per-bin" in capsys.readouterr().err
