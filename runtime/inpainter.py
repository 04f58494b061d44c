"""``Inpainter``: the API applications embed. Small, fast, hard to misuse.

>>> from pconv.runtime import Inpainter
>>> inpaint = Inpainter("model.onnx")          # or "model.engine" for TensorRT
>>> result = inpaint(image, mask)              # mask: non-zero = hole (what the user painted)

What happens on a call:

1. Inputs are validated and normalised (:mod:`pconv.runtime.imageio`): any bad input raises one
   :class:`~pconv.errors.InputError` saying what is wrong.
2. Each image is planned into network tiles (:mod:`pconv.runtime.strategy`): ``full`` pads the
   whole image to the model's size multiple with the padding marked as hole; ``crop`` inpaints
   only boxes around the holes; ``auto`` picks.
3. Tiles of equal network size are batched together (up to ``batch_size``) and run on the backend.
   Each tile is computed independently of what it is batched with, so a list of images gives the
   same results as one call per image.
4. The composite is made on the host from the caller's own pixels: every valid pixel of the result
   is bit-for-bit the input pixel; holes take the network output clipped to [0, 1] (rounded for
   uint8 input).

Edge cases, on purpose: a mask with no hole returns a copy of the input and warns; an all-hole mask
is allowed and returns the network's fill of the whole image (there is no context, so expect a
smooth guess, not a picture).
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pconv.errors import DeviceInputError, InputError
from pconv.models import resolve_model
from pconv.runtime import strategy as strategies
from pconv.runtime.backend import Backend, ModelInfo
from pconv.runtime.imageio import Batch, composite, is_device_array, normalise, to_float32_clipped
from pconv.runtime.loader import is_server_url, open_backend
from pconv.runtime.options import DEFAULT_BATCH_SIZE, DEFAULT_STRATEGY

#: Rows of an upscaled fill made at a time (a whole 24 MP fill in float32 is 288 MB, plus temporaries).
UPSCALE_ROWS = 256


class NoHoleWarning(UserWarning):
    """The mask marks no pixel as a hole, so the image is returned unchanged."""


class Inpainter:
    """Inpaint images with an exported pconv model (ONNX Runtime or TensorRT).

    ``model_path``: a ``.onnx`` model from ``pconv export`` or a ``.engine``/``.plan`` from
    ``pconv build``; its metadata gives the size multiple and conventions. ``None`` or
    ``"default"``: the model that ships with pconv (:mod:`pconv.models`). ``backend``:
    ``"auto"`` (by file suffix), ``"onnxruntime"`` or ``"tensorrt"``. ``providers``: ONNX Runtime
    execution providers (default: TensorRT EP, CUDA EP, CPU, whichever are installed).
    ``plugin_library``: the pconv TensorRT plugin ``.so`` (default: the packaged one).
    ``pixel_budget``: above this many padded pixels, ``strategy="auto"`` uses ``crop``.
    ``tile_pixels``: most network pixels of one ``crop`` tile, one ``resize`` input and one backend
    call (beyond a single full image), which bounds memory on big photos (about 1.8 GB RSS with the
    paper-size model on CPU at the default 1024²; benchmarks/big_photo_memory.py).
    ``margin``: context in pixels around each hole region for ``crop``.
    ``threads``: ONNX Runtime intra-op threads (default: ONNX Runtime's, one per core).
    ``model_path`` may also be ``"grpc://host:8001/MODEL"`` or ``"http://host:8000/MODEL"``: the tiles
    then run on a Triton server (:mod:`pconv.runtime.triton_backend`, ``pconv serve``); planning,
    batching by size and compositing stay here.

    Thread-safe: calls on one instance are serialised (backends keep per-shape buffers).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        backend: str = "auto",
        device: int = 0,
        providers: Sequence[str] | None = None,
        plugin_library: str | Path | None = None,
        *,
        pixel_budget: int = strategies.DEFAULT_PIXEL_BUDGET,
        margin: int = strategies.DEFAULT_MARGIN,
        tile_pixels: int = strategies.DEFAULT_TILE_PIXELS,
        threads: int | None = None,
    ) -> None:
        # A grpc:// or http:// model string stays a string (a model on a Triton server).
        self.model_path: Path | str = (
            model_path
            if isinstance(model_path, str) and is_server_url(model_path)
            else resolve_model(model_path)
        )
        self.backend: Backend = open_backend(
            self.model_path,
            backend=backend,
            device=device,
            providers=providers,
            plugin_library=plugin_library,
            threads=threads,
        )
        self.pixel_budget = int(pixel_budget)
        self.margin = int(margin)
        self.tile_pixels = int(tile_pixels)
        self._lock = threading.Lock()

    @classmethod
    def from_backend(
        cls,
        backend: Backend,
        *,
        pixel_budget: int = strategies.DEFAULT_PIXEL_BUDGET,
        margin: int = strategies.DEFAULT_MARGIN,
        tile_pixels: int = strategies.DEFAULT_TILE_PIXELS,
    ) -> Inpainter:
        """Wrap an already-open backend (for custom backends, or sharing one session)."""
        self = cls.__new__(cls)
        self.model_path = Path("<backend>")
        self.backend = backend
        self.pixel_budget = int(pixel_budget)
        self.margin = int(margin)
        self.tile_pixels = int(tile_pixels)
        self._lock = threading.Lock()
        return self

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    def __enter__(self) -> Inpainter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    def __repr__(self) -> str:
        return f"Inpainter({str(self.model_path)!r}, backend={self.backend.name!r})"

    # -- the API ------------------------------------------------------------------------------------
    def __call__(
        self,
        image: Any,
        mask: Any,
        *,
        mask_is_hole: bool = True,
        strategy: str = DEFAULT_STRATEGY,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Any:
        """Inpaint ``image`` where ``mask`` says; returns the same type and dtype as ``image``.

        ``image``: HWC uint8 / float in [0, 1], a PIL RGB image, a list of those (sizes may
        differ), or an NHWC array. ``mask``: 2-D (or a list / NHW array), non-zero = hole unless
        ``mask_is_hole=False`` (PIL masks: above mid-grey); one 2-D mask is shared by all images of a
        batch. ``strategy``: ``"full"``, ``"crop"``, ``"resize"`` or ``"auto"`` (see
        :mod:`pconv.runtime.strategy`). ``batch_size``:
        most tiles per backend call.

        GPU arrays (anything with ``__cuda_array_interface__``) go to :meth:`run_device`.
        """
        if is_device_array(image) or is_device_array(mask):
            if mask_is_hole:
                raise DeviceInputError(
                    "GPU inputs are passed to the backend as they are, so the mask must already be in "
                    "the network's convention (N,1,H,W, 1 = valid, 0 = hole): convert it on the GPU "
                    "(e.g. valid = 1 - hole) and call with mask_is_hole=False, or use run_device()"
                )
            return self.run_device(image, mask)["composite"]
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1; got {batch_size}")
        batch = normalise(image, mask, mask_is_hole)
        with self._lock:
            results = self._inpaint(batch, strategy, batch_size)
        return batch.restore(results)

    def run_device(
        self, image: Any, mask: Any, stream: Any = None, out: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Zero-copy GPU path: NCHW ``image`` and N1HW ``mask`` (1 = valid) already on the GPU.

        Sizes must already be multiples of the model's size multiple and the dtype the engine's
        I/O dtype (no host-side padding or conversion happens here). Returns the backend's device
        outputs ``{"output", "composite"}``; ``stream`` and ``out`` as in
        :meth:`pconv.runtime.backend.Backend.run_device`. Only backends with ``supports_device``
        (TensorRT) take them; the others raise :class:`~pconv.errors.DeviceInputError`.
        """
        with self._lock:  # a backend without device support raises its one-line refusal
            return self.backend.run_device(image, mask, stream=stream, out=out)

    # -- internals ----------------------------------------------------------------------------------
    def _inpaint(self, batch: Batch, strategy: str, batch_size: int) -> list[np.ndarray]:
        info = self.info
        tiles: list[strategies.Tile] = []
        results: list[np.ndarray | None] = [None] * len(batch.items)
        for index, item in enumerate(batch.items):
            chosen = strategies.choose(strategy, item.size, info, self.pixel_budget)
            if not item.holes.any():
                warnings.warn(
                    "the mask has no hole pixels, so the image is returned unchanged "
                    "(pass mask_is_hole=False if your mask marks valid pixels)",
                    NoHoleWarning,
                    stacklevel=3,  # _inpaint <- __call__ <- the caller's line
                )
                results[index] = item.original.copy()
                continue
            if chosen == "full":
                tiles.append(strategies.plan_full(index, item.size, info))
            elif chosen == "resize":
                tiles.append(strategies.plan_resize(index, item.holes, info, self.tile_pixels))
            else:
                tiles.extend(strategies.plan_crop(index, item.holes, info, self.margin, self.tile_pixels))
        # Each tile's fill is pasted into its write box as it arrives (hole pixels only), so host memory
        # is the images plus one backend call, never a float copy of every image or every tile.
        for index, item in enumerate(batch.items):
            if results[index] is None:
                results[index] = item.original.copy()
        for tile, fill in self._run_tiles(batch, tiles, batch_size):
            item = batch.items[tile.item]
            where = tile.write.slices
            out = results[tile.item]
            assert out is not None
            out[where] = composite(item.original[where], item.holes[where], fill)
        return [r for r in results if r is not None]

    def _run_tiles(
        self, batch: Batch, tiles: list[strategies.Tile], batch_size: int
    ) -> Iterator[tuple[strategies.Tile, np.ndarray]]:
        """Run tiles grouped by network size; yield each tile's fill of its write box (HWC float32).

        A call holds at most ``batch_size`` tiles and, beyond one tile, at most ``tile_pixels``
        network pixels, so batching never multiplies the memory a big tile needs.
        """
        info = self.info
        min_n, max_n = batch_limits(info)
        groups: dict[tuple[int, int], list[strategies.Tile]] = defaultdict(list)
        for tile in tiles:
            groups[tile.net].append(tile)
        for (net_h, net_w), group in groups.items():
            by_budget = max(1, self.tile_pixels // (net_h * net_w))
            per_call = max(min_n, min(batch_size, max_n, by_budget))
            for start in range(0, len(group), per_call):
                chunk = group[start : start + per_call]
                n = max(len(chunk), min_n)  # unused slots stay all-hole (a valid input, ignored)
                image = np.zeros((n, 3, net_h, net_w), dtype=np.float32)
                mask = np.zeros((n, 1, net_h, net_w), dtype=np.float32)  # 0 = hole: padding is hole
                for slot, tile in enumerate(chunk):
                    item = batch.items[tile.item]
                    region = to_float32_clipped(item.original[tile.box.slices])
                    valid = (~item.holes[tile.box.slices]).astype(np.float32)
                    if tile.scaled != (tile.box.height, tile.box.width):
                        region = strategies.resize_bilinear(region, *tile.scaled)
                        # A downscaled pixel is valid only if everything it covers was valid.
                        valid = (strategies.resize_bilinear(valid, *tile.scaled) >= 1.0 - 1e-6).astype(
                            np.float32
                        )
                    sh, sw = tile.scaled
                    image[slot, :, :sh, :sw] = (region * valid[..., None]).transpose(2, 0, 1)
                    mask[slot, 0, :sh, :sw] = valid
                output = np.asarray(self.backend.run(image, mask)["output"], dtype=np.float32)
                del image, mask
                for slot, tile in enumerate(chunk):
                    sh, sw = tile.scaled
                    fill = output[slot, :, :sh, :sw].transpose(1, 2, 0)
                    b, w = tile.box, tile.write
                    cols = slice(w.x0 - b.x0, w.x1 - b.x0)
                    if tile.scaled == (b.height, b.width):
                        yield tile, fill[w.y0 - b.y0 : w.y1 - b.y0, cols]
                        continue
                    small = np.ascontiguousarray(fill)
                    for y0 in range(w.y0, w.y1, UPSCALE_ROWS):  # upscale only the written part, in bands
                        band = strategies.Box(y0, w.x0, min(w.y1, y0 + UPSCALE_ROWS), w.x1)
                        rows = slice(band.y0 - b.y0, band.y1 - b.y0)
                        yield (
                            dataclasses.replace(tile, write=band),
                            strategies.resize_bilinear(small, b.height, b.width, rows=rows, cols=cols),
                        )


def batch_limits(info: ModelInfo) -> tuple[int, int]:
    """(smallest, largest) batch size N the graph takes (a static N gives min == max)."""
    if info.fixed_shape is not None:
        return info.fixed_shape[0], info.fixed_shape[0]
    min_n = info.min_shape[0] if info.min_shape is not None else 1
    max_n = info.max_shape[0] if info.max_shape is not None else 1 << 30
    return max(1, min_n), max(1, min_n, max_n)
