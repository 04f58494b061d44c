"""Input/output type handling for the runtime: what users pass in, what they get back.

Accepted images: numpy ``HWC`` arrays (``uint8`` 0..255, or ``float16``/``float32``/``float64`` in
[0, 1]) with 3 channels (RGB), PIL images (mode ``RGB``), and batches: a list of those (sizes may
differ) or one ``NHWC`` array. Accepted masks: 2-D arrays (``HW``, or ``HW1``), where non-zero marks
a HOLE (what users paint, as in IOPaint, LaMa and OpenCV's ``inpaint``; an array is already a
decision), or PIL images, read like mask files: white = hole where the value (alpha applied) is above
mid-grey (:data:`pconv.imagefiles.MASK_THRESHOLD`). ``mask_is_hole=False`` flips that to
white / non-zero = valid, the convention inside the network.

Everything is validated here so a bad input gets one :class:`InputError` naming the problem, not a
traceback from deep inside a backend. Results come back as the type and dtype that went in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pconv.contract import IMAGE_SUFFIXES
from pconv.errors import ImageFileError, InputError
from pconv.imagefiles import (
    MASK_THRESHOLD,
    ImageReadError,
    is_hidden,
    mask_values,
    open_image,
    read_mask_file,
    rgb_array,
    white_pixels,
)
from pconv.runtime.options import DEFAULT_QUALITY as DEFAULT_QUALITY  # stated there, once
from pconv.runtime.options import OUTPUT_FORMATS as OUTPUT_FORMATS
from pconv.runtime.options import SUFFIX_FORMATS as SUFFIX_FORMATS

#: dtypes an image may have; floats are in [0, 1], uint8 in [0, 255].
SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
#: How far outside [0, 1] a float image may stray (rounding noise) before it is called a mistake.
FLOAT_RANGE_TOLERANCE = 1e-3


def is_pil_image(obj: object) -> bool:
    """True for a PIL image, without importing PIL when the caller never uses it."""
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "mode") and hasattr(obj, "size")


def is_device_array(obj: object) -> bool:
    """True for GPU-resident arrays (CuPy, PyTorch CUDA, Numba, PyCUDA): they go to ``run_device``."""
    return hasattr(obj, "__cuda_array_interface__")


@dataclass
class Item:
    """One image of a call: the original pixels (kept for the exact composite) and its hole mask."""

    original: np.ndarray  # HWC, the caller's dtype (uint8 or float)
    holes: np.ndarray  # HW bool, True = hole
    as_pil: bool  # return a PIL image for this item

    @property
    def size(self) -> tuple[int, int]:
        return int(self.original.shape[0]), int(self.original.shape[1])


@dataclass
class Batch:
    """The normalised call: items plus how to rebuild the caller's container."""

    items: list[Item]
    container: str  # "single" | "list" | "nhwc"
    list_type: type = list

    def restore(self, results: Sequence[np.ndarray]) -> Any:
        """Wrap per-item HWC results (caller's dtype) in the type the caller passed."""
        outs: list[Any] = [
            _to_pil(r) if item.as_pil else r for item, r in zip(self.items, results, strict=True)
        ]
        if self.container == "single":
            return outs[0]
        if self.container == "nhwc":
            return np.stack(outs)
        return self.list_type(outs)


def _to_pil(array: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(array, mode="RGB") if array.dtype == np.uint8 else Image.fromarray(array)


def to_float32_clipped(image: np.ndarray) -> np.ndarray:
    """A fresh float32 copy in [0, 1] for the network (uint8 / 255; floats clipped to [0, 1]).

    Clipped because the network is only defined on [0, 1]; :func:`pconv.eval.metrics.to_float64_exact`
    is the measuring counterpart, which must not clip.
    """
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def composite(original: np.ndarray, holes: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """The result: ``original`` everywhere except holes, which take ``fill`` (HWC float, [0, 1] scale).

    Valid pixels are copied, never recomputed, so they are bit-for-bit the input. The network's
    output is clipped to [0, 1] (and for uint8 rounded to the nearest level) only where it is used.
    """
    out = original.copy()
    values = np.clip(fill[holes], 0.0, 1.0)
    if original.dtype == np.uint8:
        out[holes] = np.rint(values * 255.0).astype(np.uint8)
    else:
        out[holes] = values.astype(original.dtype)
    return out


# -- validation -------------------------------------------------------------------------------------
def image_array(image: object, what: str = "image") -> tuple[np.ndarray, bool]:
    """The image as an HWC array of a supported dtype, and whether it came in as a PIL image."""
    if is_pil_image(image):
        mode = image.mode  # type: ignore[attr-defined]
        if mode != "RGB":
            alpha = " (an alpha channel is not inpainted)" if "A" in mode else ""
            raise InputError(
                f"{what} is a PIL image in mode {mode!r}; pconv inpaints RGB images: "
                f"pass image.convert('RGB'){alpha}"
            )
        return np.asarray(image).copy(), True
    if is_device_array(image):
        raise DeviceArrayInBatch(what)
    if not isinstance(image, np.ndarray):
        if not hasattr(image, "__array__"):
            raise InputError(f"{what} must be a numpy HWC array or a PIL image; got {type(image).__name__}")
        image = np.asarray(image)
    assert isinstance(image, np.ndarray)
    if image.ndim != 3 or image.shape[-1] != 3:
        hint = ""
        if image.ndim == 2:
            hint = " (a grayscale image: stack it to 3 channels, e.g. np.dstack([g, g, g]))"
        elif image.ndim == 3 and image.shape[0] == 3:
            hint = " (this looks like CHW: pass image.transpose(1, 2, 0))"
        elif image.ndim == 3 and image.shape[-1] == 4:
            hint = " (RGBA: pass image[..., :3]; alpha is not inpainted)"
        raise InputError(f"{what} must be HxWx3 (RGB); got shape {tuple(image.shape)}{hint}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{what} is empty (shape {tuple(image.shape)})")
    if image.dtype not in SUPPORTED_DTYPES:
        raise InputError(
            f"{what} has dtype {image.dtype}; use uint8 (0..255) or float32 in [0, 1] "
            "(float16/float64 in [0, 1] also work)"
        )
    if image.dtype != np.uint8:
        if not np.isfinite(image).all():
            raise InputError(f"{what} contains NaN or Inf pixels; replace them before inpainting")
        lo, hi = float(image.min()), float(image.max())
        if lo < -FLOAT_RANGE_TOLERANCE or hi > 1.0 + FLOAT_RANGE_TOLERANCE:
            raise InputError(
                f"{what} is a float image with values in [{lo:g}, {hi:g}]; float images must be in "
                "[0, 1] (divide by 255, or pass uint8)"
            )
    return image, False


class DeviceArrayInBatch(InputError):
    """A GPU array mixed into a host call; device inputs must be passed alone (see Inpainter)."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} is a GPU array; pass GPU inputs as one NCHW image tensor and one N1HW mask "
            "tensor (Inpainter.run_device), not inside a list"
        )


def hole_mask(mask: object, size: tuple[int, int], mask_is_hole: bool, what: str = "mask") -> np.ndarray:
    """The mask as an HxW bool array, True = hole, checked against the image size."""
    if is_pil_image(mask):  # an image, like a file: its values (alpha applied) above the threshold
        array = white_pixels(mask_values(mask, what))
    elif isinstance(mask, np.ndarray):
        array = mask
    elif hasattr(mask, "__array__") and not is_device_array(mask):
        array = np.asarray(mask)
    else:
        raise InputError(f"{what} must be a 2-D numpy array or a PIL image; got {type(mask).__name__}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        hint = " (for a colour mask pass mask.any(axis=-1) or one channel)" if array.ndim == 3 else ""
        raise InputError(f"{what} must be 2-D (HxW); got shape {tuple(array.shape)}{hint}")
    if array.dtype.kind not in "biuf":
        raise InputError(f"{what} has dtype {array.dtype}; use bool, an integer type or a float type")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(f"{what} contains NaN or Inf")
    if tuple(array.shape) != tuple(size):
        raise InputError(
            f"{what} is {array.shape[0]}x{array.shape[1]} (HxW) but its image is {size[0]}x{size[1]}; "
            "they must match"
        )
    nonzero = array != 0
    return nonzero if mask_is_hole else ~nonzero


def normalise(image: object, mask: object, mask_is_hole: bool = True) -> Batch:
    """Validate a call's ``image``/``mask`` and turn them into a :class:`Batch`."""
    if isinstance(image, (list, tuple)):
        if len(image) == 0:
            raise InputError("the image list is empty")
        masks = _per_item_masks(mask, len(image))
        items = []
        for i, (img, msk) in enumerate(zip(image, masks)):
            array, pil = image_array(img, f"image[{i}]")
            holes = hole_mask(msk, array.shape[:2], mask_is_hole, f"mask for image[{i}]")
            items.append(Item(array, holes, pil))
        return Batch(items, "list", type(image))
    if isinstance(image, np.ndarray) and image.ndim == 4:
        if image.shape[0] == 0:
            raise InputError("the NHWC image batch is empty")
        if isinstance(mask, np.ndarray) and mask.ndim in (3, 4) and mask.shape[0] != image.shape[0]:
            raise InputError(
                f"mask batch has {mask.shape[0]} masks for {image.shape[0]} images; they must match"
            )
        masks = _per_item_masks(mask, image.shape[0])
        items = []
        for i in range(image.shape[0]):
            array, _ = image_array(image[i], f"image[{i}]")
            holes = hole_mask(masks[i], array.shape[:2], mask_is_hole, f"mask[{i}]")
            items.append(Item(array, holes, False))
        return Batch(items, "nhwc")
    array, pil = image_array(image)
    return Batch([Item(array, hole_mask(mask, array.shape[:2], mask_is_hole), pil)], "single")


def _per_item_masks(mask: object, count: int) -> list[object]:
    """A list of masks (one per image), a stacked NHW array, or one mask shared by all images."""
    if isinstance(mask, (list, tuple)):
        if len(mask) != count:
            raise InputError(f"got {len(mask)} masks for {count} images; pass one each, or one for all")
        return list(mask)
    if isinstance(mask, np.ndarray) and (mask.ndim == 4 or (mask.ndim == 3 and mask.shape[-1] != 1)):
        if mask.shape[0] != count:
            raise InputError(f"mask batch has {mask.shape[0]} masks for {count} images; they must match")
        return [mask[i] for i in range(count)]
    return [mask] * count


# -- files ----------------------------------------------------------------------------------------


@dataclass
class ImageFile:
    """An image file's upright RGB pixels and the metadata a result keeps (colour profile, EXIF)."""

    pixels: np.ndarray  # HxWx3 uint8, EXIF orientation applied, scaled by its bit depth
    icc_profile: bytes | None = None
    exif: bytes | None = None  # orientation tag removed: the pixels are already upright


def _file_error(exc: ImageReadError) -> ImageFileError:
    return ImageFileError(str(exc))


def read_image_file(path: str | Path) -> ImageFile:
    """An image file as :class:`ImageFile` (see :mod:`pconv.imagefiles` for how pixels are read)."""
    try:
        img = open_image(path, "image")
        pixels = rgb_array(img, f"image {path}")
    except ImageReadError as exc:
        raise _file_error(exc) from exc
    return ImageFile(pixels, img.info.get("icc_profile") or None, img.info.get("exif") or None)


def read_image(path: str | Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB, as a viewer shows it (EXIF orientation, 16-bit/float scaled)."""
    return read_image_file(path).pixels


def read_mask(path: str | Path, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """A mask file as HxW uint8, 255 where its value is above ``threshold`` (alpha applied), else 0."""
    try:
        white = read_mask_file(path, threshold)
    except ImageReadError as exc:
        raise _file_error(exc) from exc
    return white.astype(np.uint8) * np.uint8(255)


def write_image(
    path: str | Path,
    image: np.ndarray,
    fmt: str = "png",
    quality: int = DEFAULT_QUALITY,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
) -> Path:
    """Write an HxW or HxWx3 image (uint8, or float in [0, 1]) atomically as ``fmt`` (png | jpg | webp).

    Atomic (temp file + rename, :func:`pconv.fileio.atomic_write`) so a full disk or a kill never
    leaves a truncated file that looks like a result.
    """
    from PIL import Image

    from pconv.fileio import atomic_write

    if fmt not in OUTPUT_FORMATS:
        raise InputError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}; got {fmt!r}")
    if image.dtype != np.uint8:
        image = np.rint(np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    options: dict[str, Any] = {}
    if fmt != "png":
        options["quality"] = quality
    if icc_profile:
        options["icc_profile"] = icc_profile
    if exif:
        options["exif"] = exif
    pil = Image.fromarray(image)
    return atomic_write(path, lambda tmp: pil.save(tmp, format=OUTPUT_FORMATS[fmt], **options))


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an HxW or HxWx3 uint8 array (floats are scaled from [0, 1]) as PNG, atomically."""
    return write_image(path, image, "png")


def list_images(path: str | Path, what: str = "image") -> list[Path]:
    """The image files of a directory (sorted; hidden files skipped), or the file itself."""
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not is_hidden(p)
        )
        if not files:
            raise ImageFileError(f"no {what} files ({', '.join(IMAGE_SUFFIXES)}) in directory {path}")
        return files
    if not path.exists():
        raise ImageFileError(f"{what} file or folder not found: {path}")
    return [path]
