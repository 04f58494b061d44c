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
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from pconv.errors import PconvError
from pconv.imagefiles import ImageReadError, drop_unreadable, is_hidden, open_image, read_rgb, rgb_array
from pconv.training.augment import AugmentLevel, ColourJitter, augment_crop, check_level
from pconv.training.masks import BINARIZE_THRESHOLD, FileMaskSource, ProceduralMaskSource, to_valid_mask

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
#: PIL modes of single-channel files (tinted like the grey builtin images under ``--augment full``).
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


@dataclass(frozen=True)
class BuiltinImage:
    """One image file shipped inside an installed package (read from disk, never downloaded)."""

    name: str
    package: str  # the importable package whose folder holds it
    file: str  # path inside that package
    grey: bool = False  # a grey photo or texture: tinted with a random colour ramp in training


def _skimage(name: str, file: str, grey: bool = False) -> BuiltinImage:
    return BuiltinImage(name, "skimage", f"data/{file}", grey)


#: The default training data: every natural photo and texture in the scikit-image wheel except
#: chelsea (held out). Grey ones add structure and texture; training tints them with random colours.
BUILTIN_TRAIN_IMAGES = (
    _skimage("astronaut", "astronaut.png"),
    _skimage("coffee", "coffee.png"),
    _skimage("rocket", "rocket.jpg"),
    _skimage("motorcycle_left", "motorcycle_left.png"),
    _skimage("motorcycle_right", "motorcycle_right.png"),
    _skimage("hubble_deep_field", "hubble_deep_field.jpg"),
    _skimage("immunohistochemistry", "ihc.png"),
    _skimage("retina", "retina.jpg"),
    _skimage("camera", "camera.png", grey=True),
    _skimage("moon", "moon.png", grey=True),
    _skimage("coins", "coins.png", grey=True),
    _skimage("cell", "cell.png", grey=True),
    _skimage("clock", "clock_motion.png", grey=True),
    _skimage("brick", "brick.png", grey=True),
    _skimage("grass", "grass.png", grey=True),
    _skimage("gravel", "gravel.png", grey=True),
)
#: Held back from every training run: natural photos for demos and evaluation. chelsea ships with
#: scikit-image, grace_hopper with matplotlib, china and flower with scikit-learn (the last three
#: are used when their package is installed: the ``eval`` extra installs them).
BUILTIN_HELDOUT_IMAGES = (
    _skimage("chelsea", "chelsea.png"),
    BuiltinImage("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    BuiltinImage("china", "sklearn", "datasets/images/china.jpg"),
    BuiltinImage("flower", "sklearn", "datasets/images/flower.jpg"),
)
BUILTIN_TRAIN = tuple(b.name for b in BUILTIN_TRAIN_IMAGES)
BUILTIN_HELDOUT = tuple(b.name for b in BUILTIN_HELDOUT_IMAGES)
_BUILTIN = {b.name: b for b in BUILTIN_TRAIN_IMAGES + BUILTIN_HELDOUT_IMAGES}
_INSTALL_HINT = {"skimage": "pconv[train]", "matplotlib": "pconv[eval]", "sklearn": "pconv[eval]"}

Split = Literal["train", "heldout", "all"]
MaskFn = Callable[[np.random.Generator], np.ndarray]
#: Third seed word of the augmentation's random stream (the crop and mask use ``[seed, index]``).
AUGMENT_STREAM = 1


def builtin_image_names(split: Split = "train") -> tuple[str, ...]:
    """Names of the bundled images in ``split`` ("train", "heldout" or "all")."""
    if split == "train":
        return BUILTIN_TRAIN
    if split == "heldout":
        return BUILTIN_HELDOUT
    if split == "all":
        return BUILTIN_TRAIN + BUILTIN_HELDOUT
    raise ValueError(f"split must be 'train', 'heldout' or 'all', got {split!r}")


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def builtin_image_available(name: str) -> bool:
    """Whether the package that ships ``name`` is installed and holds the file."""
    image = _BUILTIN[name]
    root = _package_dir(image.package)
    return root is not None and (root / image.file).is_file()


def builtin_image_path(name: str) -> Path:
    """Path of one bundled image inside its installed package."""
    if name not in _BUILTIN:
        raise ValueError(f"unknown builtin image {name!r}; known: {sorted(_BUILTIN)}")
    image = _BUILTIN[name]
    root = _package_dir(image.package)
    if root is None:
        raise PconvError(
            f"the builtin image {name!r} comes with {image.package}, which is not installed: "
            f"run `pip install '{_INSTALL_HINT[image.package]}'` or pass a folder of images"
        )
    path = root / image.file
    if not path.is_file():
        raise PconvError(
            f"builtin image {name!r} is missing from the {image.package} install ({path}); "
            f"reinstall {image.package} or pass a folder of images"
        )
    return path


def builtin_is_grey(name: str) -> bool:
    return _BUILTIN[name].grey


def available_heldout_names() -> tuple[str, ...]:
    """The held-out images whose packages are installed (chelsea always, with scikit-image)."""
    return tuple(n for n in BUILTIN_HELDOUT if builtin_image_available(n))


def builtin_images(split: Split = "train") -> list[np.ndarray]:
    """The bundled images of ``split`` as (H, W, 3) uint8 RGB arrays (held-out: those installed)."""
    names = available_heldout_names() if split == "heldout" else builtin_image_names(split)
    return [read_rgb(builtin_image_path(name)) for name in names]


def find_images(root: str | Path) -> list[Path]:
    """All images below ``root`` (recursive; jpg/jpeg/png/webp; hidden files skipped), sorted.

    Only the list: :func:`usable_images` then checks each file's header.
    """
    root = Path(root)
    if not root.is_dir():
        raise PconvError(f"--data {root}: not a directory (pass a folder of images, or 'builtin')")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not is_hidden(p, root)
    )
    if not files:
        raise PconvError(
            f"--data {root}: no images ({', '.join(IMAGE_EXTENSIONS)}) found (searched recursively)"
        )
    return files


def usable_images(files: list[Path], what: str = "--data") -> list[Path]:
    """``files`` without unreadable ones, reported once (:func:`pconv.imagefiles.drop_unreadable`).

    A file that passes this header check but breaks while decoding is replaced by another image
    (see :meth:`InpaintingDataset.sample`).
    """
    return drop_unreadable(files, what)


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


def heldout_crops(size: int, count: int = 4, seed: int = 0) -> list[np.ndarray]:
    """``count`` deterministic (size, size, 3) uint8 crops of the held-out builtin photos."""
    photos = builtin_images("heldout")
    rng = np.random.default_rng([seed, 1_000_003])
    return [
        random_crop(Image.fromarray(photos[i % len(photos)]), size, rng, flip=False) for i in range(count)
    ]


#: Short side (in multiples of the view size) each held-out photo is scaled to: 1 = the whole
#: scene, larger = closer views; and how many crops are taken along each axis at that scale.
HELDOUT_SCALES = ((1.0, (1, 3)), (1.5, (2, 2)), (2.0, (2, 3)))


def heldout_views(size: int = 256) -> list[tuple[str, np.ndarray]]:
    """Deterministic ``size`` x ``size`` views of every installed held-out photo: ``(name, uint8 RGB)``.

    Why views and not whole photos: only four natural photos can be held out without a download;
    whole-scene and closer crops give 13 test images per photo with different content and detail
    scales. None of these photos is ever training data.
    """
    views: list[tuple[str, np.ndarray]] = []
    for name in available_heldout_names():
        photo = Image.fromarray(read_rgb(builtin_image_path(name)))
        for factor, (rows, cols) in HELDOUT_SCALES:
            scale = factor * size / min(photo.size)
            w, h = max(size, round(photo.width * scale)), max(size, round(photo.height * scale))
            scaled = photo.resize((w, h), Image.Resampling.LANCZOS)
            grid_r, grid_c = (rows, cols) if h <= w else (cols, rows)
            for r in range(grid_r):
                for c in range(grid_c):
                    top = round(r * (h - size) / max(1, grid_r - 1)) if grid_r > 1 else (h - size) // 2
                    left = round(c * (w - size) / max(1, grid_c - 1)) if grid_c > 1 else (w - size) // 2
                    crop = np.asarray(scaled.crop((left, top, left + size, top + size)))
                    views.append((f"{name}_s{factor:g}_{r}{c}", np.ascontiguousarray(crop)))
    return views


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
