"""Test mask sets organised like NVIDIA's irregular-mask test set: hole-ratio bins x border flag.

Six hole-ratio bins ``(0.01, 0.1], (0.1, 0.2], ..., (0.5, 0.6]`` (lower bound exclusive, upper
inclusive, as the paper's table headings), each split by **border contact**:

* ``border = False`` ("no holes near the border"): no hole pixel lies within :func:`border_margin`
  pixels of the image edge;
* ``border = True`` ("holes touch the border"): at least one hole pixel lies within that margin.

The margin is ``max(1, round(min(H, W) / 32))`` pixels: 16 px for 512 x 512 masks, 2 px for 64 x 64.
Both properties are *measured* on the mask, never taken from how it was drawn, so a generated set and
an existing folder binned with :func:`bin_folder` use exactly the same definitions.

Masks are PNG files, white (255) = hole. An ``index.csv`` next to them lists every mask's file, bin,
border flag and exact hole ratio; :func:`load_mask_set` reads it back (or bins a folder on the fly).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pconv.data import masks
from pconv.errors import PconvError

#: Hole-ratio bins, ``(low, high]``, as in the NVIDIA irregular-mask test set and the paper's tables.
BINS: tuple[tuple[float, float], ...] = (
    (0.01, 0.1),
    (0.1, 0.2),
    (0.2, 0.3),
    (0.3, 0.4),
    (0.4, 0.5),
    (0.5, 0.6),
)

#: The border margin is ``min(H, W) / BORDER_MARGIN_DIVISOR`` pixels (rounded, at least 1).
BORDER_MARGIN_DIVISOR = 32

INDEX_NAME = "index.csv"
OUTSIDE_NAME = "outside_bins.csv"
INDEX_FIELDS = ("file", "bin", "bin_low", "bin_high", "border", "hole_ratio", "height", "width")

#: Draws per mask before giving up on a (bin, border) cell; a generator that cannot hit a cell is a bug.
MAX_DRAWS_PER_MASK = 500


def bin_label(index: int) -> str:
    """Human-readable name of bin ``index``, e.g. ``"(0.1, 0.2]"``."""
    lo, hi = BINS[index]
    return f"({lo:g}, {hi:g}]"


def bin_slug(index: int) -> str:
    """File-name-safe name of bin ``index``, e.g. ``"0.1-0.2"``."""
    lo, hi = BINS[index]
    return f"{lo:g}-{hi:g}"


def bin_index(ratio: float) -> int | None:
    """Index of the bin ``(low, high]`` holding ``ratio``, or None when it lies outside every bin."""
    for i, (lo, hi) in enumerate(BINS):
        if lo < ratio <= hi:
            return i
    return None


def border_margin(height: int, width: int) -> int:
    """Width in pixels of the frame along the image edge used for the border flag."""
    return max(1, round(min(height, width) / BORDER_MARGIN_DIVISOR))


def touches_border(hole: np.ndarray, margin: int | None = None) -> bool:
    """True when any hole pixel lies within ``margin`` px (default :func:`border_margin`) of the edge."""
    h = np.asarray(hole).astype(bool)
    m = border_margin(*h.shape) if margin is None else margin
    return bool(h[:m].any() or h[-m:].any() or h[:, :m].any() or h[:, -m:].any())


def classify(hole: np.ndarray) -> tuple[int | None, bool, float]:
    """``(bin index or None, border flag, hole ratio)`` of one mask."""
    ratio = masks.hole_ratio_of(hole)
    return bin_index(ratio), touches_border(hole), ratio


@dataclass(frozen=True)
class MaskEntry:
    """One mask of a set: where it is and how it is classified."""

    file: str  # path relative to the index's folder, or absolute
    bin: int
    border: bool
    hole_ratio: float
    height: int
    width: int

    def path(self, root: Path) -> Path:
        p = Path(self.file)
        return p if p.is_absolute() else root / p

    def row(self) -> dict[str, str]:
        lo, hi = BINS[self.bin]
        return {
            "file": self.file,
            "bin": str(self.bin),
            "bin_low": f"{lo:g}",
            "bin_high": f"{hi:g}",
            "border": str(int(self.border)),
            "hole_ratio": repr(self.hole_ratio),  # exact: round-trips through float()
            "height": str(self.height),
            "width": str(self.width),
        }


def write_index(path: Path, entries: Sequence[MaskEntry]) -> None:
    """Write ``entries`` as the CSV index (columns :data:`INDEX_FIELDS`)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=INDEX_FIELDS)
        writer.writeheader()
        for e in entries:
            writer.writerow(e.row())


def read_index(path: Path) -> list[MaskEntry]:
    """Read an index written by :func:`write_index`."""
    entries = []
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                entries.append(
                    MaskEntry(
                        file=row["file"],
                        bin=int(row["bin"]),
                        border=bool(int(row["border"])),
                        hole_ratio=float(row["hole_ratio"]),
                        height=int(row["height"]),
                        width=int(row["width"]),
                    )
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise PconvError(f"{path}:{line}: not a pconv mask index row ({exc}); regenerate it") from exc
    return entries


def save_mask_png(path: Path, hole: np.ndarray) -> None:
    """Save ``hole`` (nonzero = hole) as an 8-bit PNG, white = hole (creating folders as needed)."""

    path.parent.mkdir(parents=True, exist_ok=True)
    masks.save_mask_file(np.asarray(hole).astype(bool), path, white_is_hole=True)


def load_mask(
    path: Path, white_is_hole: bool = True, threshold: float = masks.BINARIZE_THRESHOLD
) -> np.ndarray:
    """A mask file as a bool H x W array, True = hole (via ``pconv.data.masks.load_mask_file``)."""

    try:
        return np.asarray(masks.load_mask_file(path, white_is_hole, threshold)).astype(bool)
    except (OSError, ValueError) as exc:
        raise PconvError(f"cannot read mask {path}: {exc}") from exc


def _progress(iterable: Sequence, desc: str, enabled: bool) -> Iterator:
    from tqdm import tqdm

    from pconv.terminal import show_progress

    return iter(tqdm(iterable, desc=desc, unit="mask", disable=not show_progress(enabled)))


def draw_cell_mask(size: int, bin_idx: int, border: bool, rng: np.random.Generator) -> np.ndarray:
    """One random ``size x size`` hole mask whose *measured* bin and border flag are the requested ones.

    Uses the project's one stroke/ellipse/box generator (:func:`pconv.data.masks.generate_irregular_mask`,
    with ``margin`` = :func:`border_margin` for no-border cells) and keeps drawing until the measurement
    matches, so the definitions in this module stay the only ones (border cells must actually touch the
    frame; a ratio exactly on a bin's lower bound is redrawn).
    """

    lo, hi = BINS[bin_idx]
    margin = 0 if border else border_margin(size, size)
    for _ in range(MAX_DRAWS_PER_MASK):
        try:
            hole = masks.generate_irregular_mask(size, size, rng, hole_ratio=(lo, hi), margin=margin)
        except ValueError:
            continue
        b, touches, _ = classify(hole)
        if b == bin_idx and touches == border:
            return np.asarray(hole, dtype=bool)
    raise PconvError(
        f"could not draw a {size}x{size} mask in bin {bin_label(bin_idx)} with border={border} after "
        f"{MAX_DRAWS_PER_MASK} tries; try a larger --size"
    )


def cell_rng(seed: int, bin_idx: int, border: bool, index: int) -> np.random.Generator:
    """Independent generator per mask, so mask ``i`` of a cell does not depend on ``--per-bin``."""
    return np.random.default_rng([seed, bin_idx, int(border), index])


def generate_mask_set(
    out_dir: Path, per_bin: int, size: int = 512, seed: int = 0, progress: bool = True
) -> list[MaskEntry]:
    """Write ``per_bin`` masks for every (bin, border) cell under ``out_dir`` plus ``index.csv``.

    Layout: ``out_dir/<low>-<high>/<border|no_border>/<nnnnn>.png``. Deterministic for ``seed``.
    """
    if per_bin < 1:
        raise PconvError("--per-bin must be at least 1")
    if size < 16:
        raise PconvError("--size must be at least 16 px")
    out_dir.mkdir(parents=True, exist_ok=True)
    cells = [(b, border, i) for b in range(len(BINS)) for border in (False, True) for i in range(per_bin)]
    entries = []
    for b, border, i in _progress(cells, "masks", progress):
        hole = draw_cell_mask(size, b, border, cell_rng(seed, b, border, i))
        rel = Path(bin_slug(b)) / ("border" if border else "no_border") / f"{i:05d}.png"
        save_mask_png(out_dir / rel, hole)
        entries.append(MaskEntry(rel.as_posix(), b, border, masks.hole_ratio_of(hole), size, size))
    write_index(out_dir / INDEX_NAME, entries)
    return entries


@dataclass
class BinnedFolder:
    """The result of binning a folder: masks in a bin, and the files that were not."""

    entries: list[MaskEntry]
    outside: list[tuple[str, float]]  # (file, hole ratio) of masks outside every bin
    unreadable: list[tuple[str, str]]  # (file, reason)


def list_mask_files(folder: Path) -> list[Path]:
    """Mask image files under ``folder`` (recursively, sorted), as the training code finds them."""

    if not folder.is_dir():
        raise PconvError(f"mask folder {folder} does not exist or is not a folder")
    return masks.find_mask_files(folder)


def _relative_or_absolute(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def bin_folder(
    src_dir: Path,
    index_dir: Path | None = None,
    white_is_hole: bool = True,
    per_bin: int | None = None,
    progress: bool = True,
    threshold: float = masks.BINARIZE_THRESHOLD,
) -> BinnedFolder:
    """Classify every mask file under ``src_dir`` by measured hole ratio and border contact.

    Paths in the entries are relative to ``index_dir`` (default ``src_dir``) when the file lies below
    it, absolute otherwise. ``per_bin`` keeps at most that many masks per (bin, border) cell (in sorted
    file order).
    """
    root = index_dir or src_dir
    files = list_mask_files(src_dir)
    if not files:
        raise PconvError(f"no mask images (png, jpg, bmp, webp) found under {src_dir}")
    result = BinnedFolder([], [], [])
    counts: dict[tuple[int, bool], int] = {}
    for path in _progress(files, "binning", progress):
        name = _relative_or_absolute(path, root)
        try:
            hole = load_mask(path, white_is_hole, threshold)
        except PconvError as exc:
            result.unreadable.append((name, str(exc)))
            continue
        b, border, ratio = classify(hole)
        if b is None:
            result.outside.append((name, ratio))
            continue
        if per_bin is not None and counts.get((b, border), 0) >= per_bin:
            continue
        counts[(b, border)] = counts.get((b, border), 0) + 1
        result.entries.append(MaskEntry(name, b, border, ratio, hole.shape[0], hole.shape[1]))
    return result


def write_binned_folder(binned: BinnedFolder, out_dir: Path) -> None:
    """Write ``index.csv`` and, when any, ``outside_bins.csv`` (file, hole ratio or reason) to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_index(out_dir / INDEX_NAME, binned.entries)
    (out_dir / OUTSIDE_NAME).unlink(missing_ok=True)  # a list left by an earlier binning would mislead
    if binned.outside or binned.unreadable:
        with open(out_dir / OUTSIDE_NAME, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "hole_ratio", "reason"])
            for name, ratio in binned.outside:
                writer.writerow([name, f"{ratio:.6f}", "hole ratio outside (0.01, 0.6]"])
            for name, reason in binned.unreadable:
                writer.writerow([name, "", reason])


def load_mask_set(
    folder: Path,
    white_is_hole: bool = True,
    progress: bool = True,
    threshold: float = masks.BINARIZE_THRESHOLD,
) -> list[MaskEntry]:
    """The masks of ``folder``: from its ``index.csv`` if present, else by binning its files now."""
    index = folder / INDEX_NAME
    if index.is_file():
        entries = read_index(index)
    else:
        entries = bin_folder(
            folder, white_is_hole=white_is_hole, progress=progress, threshold=threshold
        ).entries
    if not entries:
        raise PconvError(f"no masks with a hole ratio in (0.01, 0.6] found in {folder}")
    return entries


def cell_counts(entries: Sequence[MaskEntry]) -> dict[tuple[int, bool], int]:
    """Number of masks per (bin, border) cell, every cell present (0 when empty)."""
    counts = {(b, border): 0 for b in range(len(BINS)) for border in (False, True)}
    for e in entries:
        counts[(e.bin, e.border)] += 1
    return counts


def describe_counts(entries: Sequence[MaskEntry]) -> str:
    """A small text table of masks per bin and border flag, for the CLI."""
    counts = cell_counts(entries)
    lines = [f"{'hole ratio':<14}{'no border':>10}{'border':>8}"]
    for b in range(len(BINS)):
        lines.append(f"{bin_label(b):<14}{counts[(b, False)]:>10}{counts[(b, True)]:>8}")
    return "\n".join(lines)
