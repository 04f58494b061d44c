"""The training dataset: ``(image, mask)`` samples from image data and hole masks.

Samples are ``(image, mask)``: image (3, H, W) float32 in [0, 1], mask (1, H, W) float32 with
1 = valid, 0 = hole (the model's convention; see :mod:`pconv.data.masks`).

Every sample is a pure function of ``(seed, index)``: :meth:`InpaintingDataset.__getitem__` seeds
its own ``numpy`` generator from both, so results do not depend on worker processes, and
resuming a run at step ``s`` continues with exactly the samples it would have seen. The training
loop hands out global indices (see :class:`StepIndexSampler`); distributed ranks get disjoint ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pconv.data.images import (
    BUILTIN_TRAIN,
    builtin_images,
    builtin_is_grey,
    find_images,
    random_crop,
    usable_images,
)
from pconv.data.masks import BINARIZE_THRESHOLD, FileMaskSource, ProceduralMaskSource, to_valid_mask
from pconv.errors import PconvError
from pconv.imagefiles import ImageReadError, open_image, rgb_array
from pconv.training.augment import AugmentLevel, ColourJitter, augment_crop, check_level

#: PIL modes of single-channel files (tinted like the grey builtin images under ``--augment full``).
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
MaskFn = Callable[[np.random.Generator], np.ndarray]
#: Third seed word of the augmentation's random stream (the crop and mask use ``[seed, index]``).
AUGMENT_STREAM = 1


def make_mask_source(
    masks: str,
    size: int,
    hole_ratio: tuple[float, float] = (0.1, 0.5),
    white_is_hole: bool = True,
    threshold: float = BINARIZE_THRESHOLD,
) -> MaskFn:
    """``"procedural"`` or a folder of mask files (augmented NVIDIA-style) -> ``rng -> hole array``."""
    if masks == "procedural":
        return ProceduralMaskSource(size, hole_ratio=hole_ratio)
    root = Path(masks)
    if not root.is_dir():
        raise PconvError(f"--masks {masks}: not a directory (pass a folder of mask images, or 'procedural')")
    try:
        return FileMaskSource(root, size, white_is_hole=white_is_hole, threshold=threshold)
    except FileNotFoundError as exc:
        raise PconvError(str(exc)) from exc


class InpaintingDataset:
    """Map-style dataset of ``(image, mask)`` pairs; sample ``i`` is a pure function of (seed, i).

    ``images`` is a list of in-memory uint8 arrays (the builtin photos) or of file paths (an image
    folder, read lazily); ``grey[i]`` marks grey sources (tinted under ``augment="full"``). Indices
    are unbounded: the training loop asks for global sample numbers. Duck-typed for
    ``torch.utils.data.DataLoader`` (no torch import at module level).
    """

    def __init__(
        self,
        images: list[np.ndarray] | list[Path],
        size: int,
        mask_source: MaskFn,
        seed: int = 0,
        flip: bool = True,
        augment: AugmentLevel = "none",
        grey: list[bool] | None = None,
    ) -> None:
        if not images:
            raise PconvError("no training images")
        self.images = images
        self.size = size
        self.mask_source = mask_source
        self.seed = seed
        self.flip = flip
        self.augment = check_level(augment)
        self.grey = grey if grey is not None else [False] * len(images)
        self.jitter = ColourJitter()
        self._broken: set[Path] = set()  # files that failed to decode (warned about once)

    def __len__(self) -> int:
        """Number of source images (the dataset itself is unbounded: any index is valid)."""
        return len(self.images)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` as numpy: (size, size, 3) uint8 image and (size, size) bool hole array."""
        rng = np.random.default_rng([self.seed, index])
        which = int(rng.integers(len(self.images)))
        source = self.images[which]
        grey = self.grey[which]
        if isinstance(source, np.ndarray):
            crop = random_crop(Image.fromarray(source), self.size, rng, self.flip)
        else:
            picture, grey = self._read(which)
            crop = random_crop(picture, self.size, rng, self.flip)
        hole = self.mask_source(rng)
        # Augmentation draws from its own stream: a sample's crop position and mask are the same
        # whatever --augment is, so recipes are compared on identical holes.
        augment_rng = np.random.default_rng([self.seed, index, AUGMENT_STREAM])
        return augment_crop(crop, grey, self.augment, augment_rng, self.jitter), hole

    def _read(self, which: int) -> tuple[Image.Image, bool]:
        """Image file ``which`` as RGB (upright, bit depth scaled) and whether it is grey.

        A file that passed the header check but fails to decode is warned about once and replaced
        by the next readable file, so one broken file never ends a long run (still a pure function
        of the index: the replacement is fixed).
        """
        for offset in range(len(self.images)):
            at = (which + offset) % len(self.images)
            path = Path(self.images[at])  # type: ignore[arg-type]
            if path in self._broken:
                continue
            try:
                im = open_image(path)
                grey = self.grey[at] or im.mode in GREY_MODES
                return Image.fromarray(rgb_array(im, f"image {path}")), grey
            except ImageReadError as exc:
                self._broken.add(path)
                warnings.warn(f"--data: skipping {path} from now on: {exc}", stacklevel=2)
        raise PconvError("--data: no readable image left (every file failed to decode)")

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import torch

        crop, hole = self.sample(int(index))
        image = torch.from_numpy(crop).permute(2, 0, 1).float().div_(255.0)
        mask = torch.from_numpy(to_valid_mask(hole))[None]
        return image, mask


def make_dataset(
    data: str,
    size: int,
    masks: str = "procedural",
    seed: int = 0,
    hole_ratio: tuple[float, float] = (0.1, 0.5),
    white_is_hole: bool = True,
    augment: AugmentLevel = "none",
    mask_threshold: float = BINARIZE_THRESHOLD,
) -> InpaintingDataset:
    """Dataset for ``--data DIR|builtin``, ``--masks DIR|procedural`` and ``--augment``."""
    images: list[np.ndarray] | list[Path]
    if data == "builtin":
        images = builtin_images("train")
        grey = [builtin_is_grey(n) for n in BUILTIN_TRAIN]
    else:
        images = usable_images(find_images(data))
        grey = None  # grey files are recognised by their PIL mode when read
    mask_source = make_mask_source(
        masks, size, hole_ratio=hole_ratio, white_is_hole=white_is_hole, threshold=mask_threshold
    )
    return InpaintingDataset(images, size, mask_source, seed=seed, augment=augment, grey=grey)


class StepIndexSampler:
    """Global sample indices for one rank, starting at ``start_step`` (an endless iterable).

    Step ``s`` of a run with world size ``W`` and per-rank batch ``B`` uses global indices
    ``s*W*B + rank*B + j`` for ``j < B``: ranks never share a sample and a resumed run continues
    with exactly the samples an uninterrupted run would have used.
    """

    def __init__(self, batch: int, start_step: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.batch = batch
        self.start_step = start_step
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            base = (step * self.world_size + self.rank) * self.batch
            yield from range(base, base + self.batch)
            step += 1
