"""Training data: image folders or the photos bundled with scikit-image, paired with hole masks.

Samples are ``(image, mask)``: image (3, H, W) float32 in [0, 1], mask (1, H, W) float32 with
1 = valid, 0 = hole (the model's convention; see :mod:`pconv.training.masks`).

Every sample is a pure function of ``(seed, index)``: :meth:`InpaintingDataset.__getitem__` seeds
its own ``numpy`` generator from both, so results do not depend on worker processes, and
resuming a run at step ``s`` continues with exactly the samples it would have seen. The training
loop hands out global indices (see :class:`StepIndexSampler`); distributed ranks get disjoint ones.

Module level imports numpy and PIL only (torch is imported when a sample is built), so
:func:`builtin_images` works in torch-free tools such as the runtime demo.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from pconv.errors import PconvError
from pconv.training.masks import FileMaskSource, ProceduralMaskSource, to_valid_mask

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")

#: Natural colour photos that ship inside the scikit-image wheel (no download: these are read as
#: files from the installed package, never through ``skimage.data``'s pooch fetcher).
BUILTIN_TRAIN = ("astronaut", "coffee", "rocket", "motorcycle_left", "motorcycle_right")
#: Held back from training so demos and evaluations can run on photos the model never saw.
BUILTIN_HELDOUT = ("chelsea",)
_BUILTIN_FILES = {
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png",
    "chelsea": "chelsea.png",
}

Split = Literal["train", "heldout", "all"]
MaskFn = Callable[[np.random.Generator], np.ndarray]


def builtin_image_names(split: Split = "train") -> tuple[str, ...]:
    """Names of the bundled photos in ``split`` ("train", "heldout" or "all")."""
    if split == "train":
        return BUILTIN_TRAIN
    if split == "heldout":
        return BUILTIN_HELDOUT
    if split == "all":
        return BUILTIN_TRAIN + BUILTIN_HELDOUT
    raise ValueError(f"split must be 'train', 'heldout' or 'all', got {split!r}")


def _skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise PconvError(
            "the builtin images come from scikit-image, which is not installed: "
            "run `pip install 'pconv[train]'` or pass --data DIR"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def builtin_image_path(name: str) -> Path:
    """Path of one bundled photo inside the installed scikit-image package."""
    if name not in _BUILTIN_FILES:
        raise ValueError(f"unknown builtin image {name!r}; known: {sorted(_BUILTIN_FILES)}")
    path = _skimage_data_dir() / _BUILTIN_FILES[name]
    if not path.is_file():
        raise PconvError(
            f"builtin image {name!r} is missing from the scikit-image install ({path}); "
            "reinstall scikit-image or pass --data DIR"
        )
    return path


def builtin_images(split: Split = "train") -> list[np.ndarray]:
    """The bundled photos of ``split`` as (H, W, 3) uint8 RGB arrays (read from disk, no download)."""
    out = []
    for name in builtin_image_names(split):
        with Image.open(builtin_image_path(name)) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def find_images(root: str | Path) -> list[Path]:
    """All images below ``root`` (recursive; jpg/jpeg/png/webp), sorted for determinism."""
    root = Path(root)
    if not root.is_dir():
        raise PconvError(f"--data {root}: not a directory (pass a folder of images, or 'builtin')")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise PconvError(
            f"--data {root}: no images ({', '.join(IMAGE_EXTENSIONS)}) found (searched recursively)"
        )
    return files


def random_crop(image: Image.Image, size: int, rng: np.random.Generator, flip: bool = True) -> np.ndarray:
    """A random ``size`` x ``size`` crop as (size, size, 3) uint8.

    The image is first rescaled by a random factor so that its short side lies between ``size``
    and its original length (images smaller than ``size`` are enlarged to it), so crops see
    both whole-scene and detail views; then a random horizontal flip.
    """
    image = image.convert("RGB")
    short = min(image.width, image.height)
    target_short = float(rng.uniform(size, max(size, short)))
    scale = target_short / short
    if abs(scale - 1.0) > 1e-6:
        new_w = max(size, round(image.width * scale))
        new_h = max(size, round(image.height * scale))
        image = image.resize((new_w, new_h), resample=Image.Resampling.BICUBIC)
    top = int(rng.integers(image.height - size + 1))
    left = int(rng.integers(image.width - size + 1))
    crop = np.array(image.crop((left, top, left + size, top + size)))
    if flip and rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def make_mask_source(
    masks: str,
    size: int,
    hole_ratio: tuple[float, float] = (0.1, 0.5),
    white_is_hole: bool = True,
) -> MaskFn:
    """``"procedural"`` or a folder of mask files (augmented NVIDIA-style) -> ``rng -> hole array``."""
    if masks == "procedural":
        return ProceduralMaskSource(size, hole_ratio=hole_ratio)
    root = Path(masks)
    if not root.is_dir():
        raise PconvError(f"--masks {masks}: not a directory (pass a folder of mask images, or 'procedural')")
    try:
        return FileMaskSource(root, size, white_is_hole=white_is_hole)
    except FileNotFoundError as exc:
        raise PconvError(str(exc)) from exc


class InpaintingDataset:
    """Map-style dataset of ``(image, mask)`` pairs; sample ``i`` is a pure function of (seed, i).

    ``images`` is a list of in-memory uint8 arrays (the builtin photos) or of file paths (an image
    folder, read lazily). Indices are unbounded: the training loop asks for global sample numbers.
    Duck-typed for ``torch.utils.data.DataLoader`` (no torch import at module level).
    """

    def __init__(
        self,
        images: list[np.ndarray] | list[Path],
        size: int,
        mask_source: MaskFn,
        seed: int = 0,
        flip: bool = True,
    ) -> None:
        if not images:
            raise PconvError("no training images")
        self.images = images
        self.size = size
        self.mask_source = mask_source
        self.seed = seed
        self.flip = flip

    def __len__(self) -> int:
        """Number of source images (the dataset itself is unbounded: any index is valid)."""
        return len(self.images)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` as numpy: (size, size, 3) uint8 image and (size, size) bool hole array."""
        rng = np.random.default_rng([self.seed, index])
        source = self.images[int(rng.integers(len(self.images)))]
        if isinstance(source, np.ndarray):
            crop = random_crop(Image.fromarray(source), self.size, rng, self.flip)
        else:
            with Image.open(source) as im:
                crop = random_crop(im, self.size, rng, self.flip)
        return crop, self.mask_source(rng)

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
) -> InpaintingDataset:
    """Dataset for ``--data DIR|builtin`` and ``--masks DIR|procedural``."""
    images: list[np.ndarray] | list[Path]
    images = builtin_images("train") if data == "builtin" else find_images(data)
    mask_source = make_mask_source(masks, size, hole_ratio=hole_ratio, white_is_hole=white_is_hole)
    return InpaintingDataset(images, size, mask_source, seed=seed)


def heldout_crops(size: int, count: int = 4, seed: int = 0) -> list[np.ndarray]:
    """``count`` deterministic (size, size, 3) uint8 crops of the held-out builtin photos."""
    photos = builtin_images("heldout")
    rng = np.random.default_rng([seed, 1_000_003])
    return [
        random_crop(Image.fromarray(photos[i % len(photos)]), size, rng, flip=False) for i in range(count)
    ]


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
