"""Image data every stage shares: the photos bundled with scikit-image (training and held-out
splits), image folders, random crops and the fixed held-out views that evaluation scores.

numpy and PIL only (no torch), so evaluation, the demo and calibration use it torch-free. The
training dataset built on it is :mod:`pconv.training.dataset`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from pconv.contract import IMAGE_SUFFIXES
from pconv.errors import PconvError
from pconv.imagefiles import drop_unreadable, is_hidden, read_rgb


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
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p, root)
    )
    if not files:
        raise PconvError(
            f"--data {root}: no images ({', '.join(IMAGE_SUFFIXES)}) found (searched recursively)"
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
