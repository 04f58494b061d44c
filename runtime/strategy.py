"""How an image of any size becomes network inputs the model accepts: the ``full`` and ``crop`` plans.

``full``
    The whole image is padded (bottom/right) to the model's size multiple, the padding marked as
    HOLE so partial convolution ignores it, inpainted, and cropped back. Every hole pixel sees the
    whole image as context. This is the reference result.

``crop``
    Only the neighbourhood of the holes is inpainted. Connected hole regions are found, each
    region's bounding box is grown by ``margin`` pixels of context (regions whose grown boxes touch
    are merged), then grown further with real image pixels to the next supported size (a multiple of
    the size multiple, within the model's shape limits), inpainted, and its hole pixels pasted back.
    A box larger than the model's maximum shape is downscaled to fit, inpainted, and the fill
    upscaled (bilinear) -- the only case where the fill is computed at lower resolution.

    How it differs from ``full``: each hole sees only its box as context (``margin`` plus growth),
    not the whole image, so fills near the box edge can differ from full inference (the U-Net's
    deepest layers have a receptive field of the whole padded image). Valid pixels are identical in
    both (they are always the input's own pixels). For small holes in large images it is much
    faster and uses far less memory, and it is the only way past a TensorRT profile's maximum size.

    Memory stays bounded: a hole group whose tile would exceed ``tile_pixels`` (scattered specks
    merged into one group, a frame-shaped hole) is split on a grid into pieces whose tiles fit it;
    each piece keeps ``margin`` pixels of real context on every side, pieces without hole pixels
    are dropped, and each hole pixel is written by exactly one piece.

``resize``
    The whole image is downscaled (aspect kept) until it fits ``tile_pixels`` and the model's
    limits, inpainted once, and only the fill is upscaled (bilinear) into the holes; valid pixels
    stay the input's. The whole picture is context at a fraction of the cost; fills are softer
    (lower resolution). As IOPaint's "resize" strategy.

``auto``
    ``full`` when the padded image fits the model's shape limits and ``pixel_budget``; otherwise
    ``crop``.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from typing import Literal

import numpy as np

from pconv.contract import STRATEGIES, round_up
from pconv.errors import InputError
from pconv.runtime.backend import ModelInfo

Strategy = Literal["full", "crop", "resize", "auto"]
#: Default crop context around each hole region, in pixels.
DEFAULT_MARGIN = 64
#: Default pixel budget: above this many padded pixels per image, ``auto`` switches to ``crop``.
DEFAULT_PIXEL_BUDGET = 2048 * 2048
#: Default most network pixels of one crop tile / resize input / backend call: what bounds memory.
DEFAULT_TILE_PIXELS = 1024 * 1024
#: Most separate crop regions per image before hole groups are merged more coarsely.
MAX_REGIONS = 256
#: Cell size of the coarse grid on which hole regions are labelled (speed over exact outlines).
_CELL = 8


@dataclass(frozen=True)
class Box:
    """A half-open pixel rectangle ``[y0, y1) x [x0, x1)``."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def union(self, other: Box) -> Box:
        return Box(
            min(self.y0, other.y0), min(self.x0, other.x0), max(self.y1, other.y1), max(self.x1, other.x1)
        )

    def grown(self, margin: int, height: int, width: int) -> Box:
        return Box(
            max(0, self.y0 - margin),
            max(0, self.x0 - margin),
            min(height, self.y1 + margin),
            min(width, self.x1 + margin),
        )


@dataclass(frozen=True)
class Tile:
    """One network input: ``box`` of the image, resized to ``scaled`` then padded to ``net``.

    Hole pixels inside ``write`` take this tile's fill; ``scaled == (box.height, box.width)``
    means native resolution.
    """

    item: int
    box: Box
    write: Box
    scaled: tuple[int, int]
    net: tuple[int, int]


def _limits(info: ModelInfo) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """(min H, W) and (max H, W) (None = unbounded) the backend accepts, as multiples of m."""
    m = info.size_multiple
    if info.fixed_shape is not None:
        hw = (info.fixed_shape[1], info.fixed_shape[2])
        return hw, hw
    lo = (
        (m, m) if info.min_shape is None else (round_up(info.min_shape[1], m), round_up(info.min_shape[2], m))
    )
    hi = None if info.max_shape is None else ((info.max_shape[1] // m) * m, (info.max_shape[2] // m) * m)
    return lo, hi


def padded_size(height: int, width: int, info: ModelInfo) -> tuple[int, int] | None:
    """The network size for a ``height x width`` input at native resolution, or None if too big."""
    lo, hi = _limits(info)
    m = info.size_multiple
    net = (max(lo[0], round_up(height, m)), max(lo[1], round_up(width, m)))
    if hi is not None and (net[0] > hi[0] or net[1] > hi[1]):
        return None
    return net


def choose(strategy: str, size: tuple[int, int], info: ModelInfo, pixel_budget: int) -> str:
    """Resolve ``auto`` to ``full`` or ``crop`` for one image."""
    if strategy not in STRATEGIES:
        raise InputError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    if strategy != "auto":
        return strategy
    net = padded_size(*size, info)
    return "full" if net is not None and net[0] * net[1] <= pixel_budget else "crop"


def plan_full(item: int, size: tuple[int, int], info: ModelInfo) -> Tile:
    height, width = size
    net = padded_size(height, width, info)
    if net is None:
        _, hi = _limits(info)
        raise InputError(
            f"image {height}x{width} is larger than the model accepts ({hi[0] if hi else '?'}x"
            f"{hi[1] if hi else '?'} max); use the crop or auto strategy (--strategy in pconv inpaint, "
            "strategy= in Python), or give the model larger shapes (pconv export without fixed "
            "--height/--width for ONNX, a larger --max profile in pconv build for an engine)"
        )
    whole = Box(0, 0, height, width)
    return Tile(item, whole, whole, (height, width), net)


def hole_regions(holes: np.ndarray, margin: int) -> list[Box]:
    """Tight bounding boxes of groups of hole pixels; groups closer than ~``2*margin`` are merged.

    Labelled on a coarse grid of 8x8 cells (dilated by the margin) so it stays fast for large
    masks; then boxes whose margin-grown extents overlap are merged until none do, so the returned
    boxes, grown by ``margin``, are pairwise disjoint. Masks scattered into more than
    :data:`MAX_REGIONS` groups are merged more coarsely (many tiny tiles would be slower than
    fewer larger ones).
    """
    height, width = holes.shape
    gh, gw = -(-height // _CELL), -(-width // _CELL)
    padded = np.zeros((gh * _CELL, gw * _CELL), dtype=bool)
    padded[:height, :width] = holes
    cells = np.asarray(padded.reshape(gh, _CELL, gw, _CELL).any(axis=(1, 3)))
    radius = max(0, -(-margin // _CELL))
    while True:
        labels, count = _label(_dilate(cells, radius))
        if count <= MAX_REGIONS:
            break
        radius = max(1, 2 * radius)
    boxes: list[Box] = []
    for label in range(1, count + 1):
        ys, xs = np.nonzero((labels == label) & cells)
        y0, y1 = int(ys.min()) * _CELL, min(height, (int(ys.max()) + 1) * _CELL)
        x0, x1 = int(xs.min()) * _CELL, min(width, (int(xs.max()) + 1) * _CELL)
        sub = holes[y0:y1, x0:x1]
        rows, cols = np.nonzero(sub.any(axis=1))[0], np.nonzero(sub.any(axis=0))[0]
        boxes.append(
            Box(y0 + int(rows[0]), x0 + int(cols[0]), y0 + int(rows[-1]) + 1, x0 + int(cols[-1]) + 1)
        )
    return _merge(boxes, margin, height, width)


def _merge(boxes: list[Box], margin: int, height: int, width: int) -> list[Box]:
    """Union boxes whose margin-grown extents overlap, repeatedly, until none do (vectorised)."""
    while len(boxes) > 1:
        grown = np.array([astuple(b.grown(margin, height, width)) for b in boxes], dtype=np.int64)
        y0, x0, y1, x1 = (grown[:, i] for i in range(4))
        overlap = (
            (y0[:, None] < y1[None, :])
            & (y0[None, :] < y1[:, None])
            & (x0[:, None] < x1[None, :])
            & (x0[None, :] < x1[:, None])
        )
        if int(overlap.sum()) == len(boxes):  # each box overlaps only itself
            break
        group = np.full(len(boxes), -1)
        merged: list[Box] = []
        for start in range(len(boxes)):
            if group[start] >= 0:
                continue
            group[start] = len(merged)
            stack, union = [start], boxes[start]
            while stack:
                for j in np.nonzero(overlap[stack.pop()] & (group < 0))[0]:
                    group[j] = len(merged)
                    union = union.union(boxes[j])
                    stack.append(int(j))
            merged.append(union)
        boxes = merged
    return boxes


def _dilate(grid: np.ndarray, radius: int) -> np.ndarray:
    """Square (Chebyshev) dilation by ``radius`` cells, with shifts (no scipy needed)."""
    out = grid.copy()
    for axis in (0, 1):
        src = out.copy()
        for shift in range(1, radius + 1):
            if axis == 0:
                out[shift:] |= src[:-shift]
                out[:-shift] |= src[shift:]
            else:
                out[:, shift:] |= src[:, :-shift]
                out[:, :-shift] |= src[:, shift:]
    return out


def _label(grid: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected component labels of a boolean grid (scipy if installed, else a flood fill)."""
    try:
        from scipy import ndimage
    except ImportError:
        return _label_python(grid)
    labels, count = ndimage.label(grid, structure=np.ones((3, 3), dtype=bool))
    return np.asarray(labels), int(count)


def _label_python(grid: np.ndarray) -> tuple[np.ndarray, int]:
    labels = np.zeros(grid.shape, dtype=np.int32)
    height, width = grid.shape
    count = 0
    for y, x in zip(*np.nonzero(grid)):
        if labels[y, x]:
            continue
        count += 1
        labels[y, x] = count
        stack = [(int(y), int(x))]
        while stack:
            cy, cx = stack.pop()
            for ny in (cy - 1, cy, cy + 1):
                for nx in (cx - 1, cx, cx + 1):
                    if 0 <= ny < height and 0 <= nx < width and grid[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = count
                        stack.append((ny, nx))
    return labels, count


def _grow_to(start: int, stop: int, length: int, limit: int) -> tuple[int, int]:
    """Grow ``[start, stop)`` to ``length`` around its centre, inside ``[0, limit)`` where possible."""
    if length >= limit:
        return 0, limit
    extra = length - (stop - start)
    lo = max(0, start - extra // 2)
    hi = lo + length
    if hi > limit:
        hi = limit
        lo = hi - length
    return lo, hi


def _tile_side(info: ModelInfo, budget: int | None) -> tuple[int, int] | None:
    """Largest tile (H, W) a piece may use: within ``budget`` pixels and the model's maximum."""
    _, hi = _limits(info)
    m = info.size_multiple
    sides: list[int] = []
    if budget is not None:
        sides.append(max(m, (math.isqrt(max(1, budget)) // m) * m))
    if not sides and hi is None:
        return None
    side = min(sides) if sides else None
    if hi is None:
        assert side is not None
        return side, side
    return (min(side, hi[0]) if side else hi[0]), (min(side, hi[1]) if side else hi[1])


def split_region(
    core: Box, holes: np.ndarray, margin: int, limit: tuple[int, int] | None, info: ModelInfo
) -> list[Box]:
    """``core`` cut on a grid into tight hole boxes whose margin-grown tiles fit ``limit`` (H, W).

    Pieces partition ``core``, so every hole pixel is in exactly one; pieces with no hole are dropped.
    """
    height, width = holes.shape
    if limit is None:
        return [core]
    ctx = core.grown(margin, height, width)
    net = padded_size(ctx.height, ctx.width, info)
    if net is not None and net[0] <= limit[0] and net[1] <= limit[1]:
        return [core]
    # Piece side: the tile minus context on both sides (plan_crop keeps the margin below a quarter).
    step_h, step_w = max(1, limit[0] - 2 * margin), max(1, limit[1] - 2 * margin)
    pieces: list[Box] = []
    for y0 in range(core.y0, core.y1, step_h):
        for x0 in range(core.x0, core.x1, step_w):
            y1, x1 = min(core.y1, y0 + step_h), min(core.x1, x0 + step_w)
            sub = holes[y0:y1, x0:x1]
            rows, cols = np.nonzero(sub.any(axis=1))[0], np.nonzero(sub.any(axis=0))[0]
            if rows.size:
                pieces.append(
                    Box(y0 + int(rows[0]), x0 + int(cols[0]), y0 + int(rows[-1]) + 1, x0 + int(cols[-1]) + 1)
                )
    return pieces


def plan_crop(
    item: int,
    holes: np.ndarray,
    info: ModelInfo,
    margin: int = DEFAULT_MARGIN,
    tile_pixels: int | None = None,
) -> list[Tile]:
    """One tile per group of hole regions, split so each tile fits ``tile_pixels`` (module docstring)."""
    height, width = holes.shape
    _, hi = _limits(info)
    limit = _tile_side(info, tile_pixels)
    if limit is not None:  # the context must leave room for the hole in a tile (tiny budgets)
        margin = min(margin, max(0, (min(limit) // 2 - info.size_multiple) // 2))
    cores = [
        piece
        for region in hole_regions(holes, margin)
        for piece in split_region(region, holes, margin, limit, info)
    ]
    tiles = []
    for core in cores:
        ctx = core.grown(margin, height, width)
        net = padded_size(ctx.height, ctx.width, info)
        if net is not None:
            y0, y1 = _grow_to(ctx.y0, ctx.y1, net[0], height)
            x0, x1 = _grow_to(ctx.x0, ctx.x1, net[1], width)
            box = Box(y0, x0, y1, x1)
            tiles.append(Tile(item, box, core, (box.height, box.width), net))
            continue
        assert hi is not None  # padded_size is only None when there is a maximum
        scale = min(hi[0] / ctx.height, hi[1] / ctx.width)
        scaled = (max(1, math.floor(ctx.height * scale)), max(1, math.floor(ctx.width * scale)))
        net = padded_size(*scaled, info)
        assert net is not None
        tiles.append(Tile(item, ctx, core, scaled, net))
    return tiles


def plan_resize(item: int, holes: np.ndarray, info: ModelInfo, tile_pixels: int) -> Tile:
    """The whole image downscaled to fit ``tile_pixels`` and the model; writes the holes' bounding box."""
    height, width = holes.shape
    _, hi = _limits(info)
    m = info.size_multiple
    scale = min(1.0, math.sqrt(max(1, tile_pixels) / (height * width)))
    if hi is not None:
        scale = min(scale, hi[0] / height, hi[1] / width)
    while True:
        scaled = (max(1, math.floor(height * scale)), max(1, math.floor(width * scale)))
        net = padded_size(*scaled, info)
        if net is not None and (net[0] * net[1] <= max(tile_pixels, m * m) or scale <= 0):
            break
        scale *= 0.95  # padding to the size multiple went over the budget: a little smaller
    rows, cols = np.nonzero(holes.any(axis=1))[0], np.nonzero(holes.any(axis=0))[0]
    write = Box(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    return Tile(item, Box(0, 0, height, width), write, scaled, net)


def resize_bilinear(
    array: np.ndarray, height: int, width: int, rows: slice | None = None, cols: slice | None = None
) -> np.ndarray:
    """Bilinear resize (half-pixel centres) of an HW or HWC float array, numpy only.

    ``rows``/``cols`` (of the ``height`` x ``width`` result) compute only that window: upscaling a
    fill for its holes must not allocate the whole upscaled image.
    """
    in_h, in_w = array.shape[:2]
    if (in_h, in_w) == (height, width):
        return array if rows is None and cols is None else array[rows or slice(None), cols or slice(None)]

    def axis(n_in: int, n_out: int, part: slice | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start, stop, _ = (part or slice(None)).indices(n_out)
        pos = np.clip((np.arange(start, stop) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y_lo, y_hi, fy = axis(in_h, height, rows)
    x_lo, x_hi, fx = axis(in_w, width, cols)
    if array.ndim == 3:
        fy, fx = fy[:, None, None], fx[None, :, None]
    else:
        fy, fx = fy[:, None], fx[None, :]
    top = array[y_lo][:, x_lo] * (1 - fx) + array[y_lo][:, x_hi] * fx
    bottom = array[y_hi][:, x_lo] * (1 - fx) + array[y_hi][:, x_hi] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)
