"""Reading image and mask files the way a viewer shows them; one place for every stage.

Why one module: inpaint, training and evaluation must agree on what a file means. Here are the
facts each of them uses, written once:

* **Orientation**: every file is read with its EXIF orientation applied (``ImageOps.exif_transpose``),
  so a phone photo tagged "rotate 90°" is the upright picture a viewer shows.
* **Bit depth**: 16-bit grey (``I;16*``, and ``I`` holding 0..65535) is scaled by 65535, float
  (``F``) images must be in [0, 1] and are scaled by 255; anything else that cannot be read as RGB
  is refused with one line. (PIL's ``convert("RGB")`` clips 16-bit values, giving a white image.)
* **Masks**: a pixel's value is its grey level in [0, 1] (colour masks: the brightest channel),
  multiplied by its alpha when the file has one (a mask "looks as it does over black": a
  transparent background is 0). A pixel is "white" when its value is above :data:`MASK_THRESHOLD`
  (mid-grey), so JPEG noise around a painted hole does not grow it.
* **Hidden files** (``.DS_Store``, macOS ``._*`` resource forks, any dot-file or dot-folder) are never
  images.

Imports numpy and PIL only (no stage, no torch), so the torch-free runtime can use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pconv.contract import MASK_THRESHOLD as MASK_THRESHOLD  # re-exported: it was defined here
from pconv.errors import PconvError

#: How far outside [0, 1] a float image file may stray (rounding noise) before it is refused.
FLOAT_FILE_TOLERANCE = 1e-3
#: PIL modes holding 16-bit unsigned grey values.
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


class ImageReadError(PconvError, ValueError):
    """An image or mask file that cannot be read, or whose pixels cannot be used as they are."""


def is_hidden(path: str | Path, root: str | Path | None = None) -> bool:
    """True for dot-files and anything inside a dot-folder (below ``root`` when given)."""
    path = Path(path)
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    return any(part.startswith(".") for part in parts)


def open_image(path: str | Path, what: str = "image") -> Any:
    """The decoded PIL image of ``path`` with its EXIF orientation applied (one-line errors)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{what} file not found: {path}")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{what} file is empty: {path}")
    try:
        img = Image.open(path)
        img.load()
        upright = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(
            f"{what} file {path} is larger than PIL's safety limit ({exc}); if you trust it, raise "
            "PIL.Image.MAX_IMAGE_PIXELS"
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{what} file {path} is not a readable image ({exc})") from exc
    upright.format = img.format  # exif_transpose returns a copy without it
    return upright


def check_header(path: str | Path) -> str | None:
    """Why ``path`` is not a usable image, reading only its header (fast), or None when it looks fine."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
    except Image.DecompressionBombError as exc:
        return f"larger than PIL's safety limit ({exc})"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return f"not a readable image ({exc})"
    if width < 1 or height < 1:
        return f"has no pixels ({width}x{height})"
    return None


#: How many bad files a warning names before it says "and N more".
NAMED_BAD_FILES = 5


def drop_unreadable(files: list[Path], what: str) -> list[Path]:
    """``files`` without those whose header is not a readable image, reported once in one warning.

    Why up front: a long job (training) must not die hours in when it first meets a broken file.
    Only headers are read, so this is fast. ``what`` names the option in messages (``--data``).
    """
    import warnings

    bad = [(path, why) for path in files if (why := check_header(path)) is not None]
    if not bad:
        return files
    if len(bad) == len(files):
        raise ImageReadError(
            f"{what}: none of its {len(files)} image files is readable (first: {bad[0][0]}: {bad[0][1]})"
        )
    named = ", ".join(p.name for p, _ in bad[:NAMED_BAD_FILES])
    more = f" and {len(bad) - NAMED_BAD_FILES} more" if len(bad) > NAMED_BAD_FILES else ""
    warnings.warn(
        f"{what}: skipping {len(bad)} of {len(files)} files that are not readable images: {named}{more}",
        stacklevel=3,
    )
    bad_set = {p for p, _ in bad}
    return [p for p in files if p not in bad_set]


def _scaled_grey(img: Any, what: str) -> np.ndarray | None:
    """Single-channel 16-bit / 32-bit / float pixels as float32 in [0, 1]; None for other modes."""
    if img.mode in SIXTEEN_BIT_MODES:
        return np.asarray(img, dtype=np.float32) / np.float32(65535.0)
    if img.mode == "I":
        ints = np.asarray(img)
        low, high = int(ints.min()), int(ints.max())
        if low < 0 or high > 65535:
            raise ImageReadError(
                f"{what} holds 32-bit integer pixels ({low}..{high}); pconv reads 8- and 16-bit images: "
                "save it as an 8- or 16-bit PNG"
            )
        return ints.astype(np.float32) / np.float32(65535.0)
    if img.mode == "F":
        values = np.asarray(img, dtype=np.float32)
        if not np.isfinite(values).all():
            raise ImageReadError(f"{what} is a float image with NaN or Inf pixels; fix or re-save it")
        lo, hi = float(values.min()), float(values.max())
        if lo < -FLOAT_FILE_TOLERANCE or hi > 1.0 + FLOAT_FILE_TOLERANCE:
            raise ImageReadError(
                f"{what} is a float image with values in [{lo:g}, {hi:g}]; pconv reads float images in "
                "[0, 1]: rescale it, or save it as an 8- or 16-bit PNG"
            )
        return np.clip(values, 0.0, 1.0)
    return None


def rgb_array(img: Any, what: str = "image") -> np.ndarray:
    """A PIL image as (H, W, 3) uint8 RGB, scaled by its real bit depth (alpha dropped)."""
    grey = _scaled_grey(img, what)
    if grey is not None:
        level = np.rint(grey * 255.0).astype(np.uint8)
        return np.repeat(level[..., None], 3, axis=-1)
    try:
        return np.asarray(img.convert("RGB")).copy()
    except (ValueError, OSError) as exc:
        raise ImageReadError(
            f"{what} has PIL mode {img.mode!r}, which cannot be read as RGB ({exc}); save it as RGB"
        ) from exc


def read_rgb(path: str | Path, what: str = "image") -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, upright and scaled by its bit depth."""
    return rgb_array(open_image(path, what), f"{what} {path}")


def mask_values(img: Any, what: str = "mask") -> np.ndarray:
    """A mask image's pixel values as float32 (H, W) in [0, 1], alpha applied (see module doc)."""
    alpha: np.ndarray | None = None
    bands = img.getbands()
    if "A" in bands or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA") if img.mode not in ("LA", "La", "RGBA") else img
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / np.float32(255.0)
        img = rgba.convert("RGB") if rgba.mode != "LA" else rgba.convert("L")
    grey = _scaled_grey(img, what)
    if grey is None:
        if img.mode in ("RGB", "CMYK", "YCbCr", "P") or len(img.getbands()) >= 3:
            grey = np.asarray(img.convert("RGB"), dtype=np.float32).max(axis=-1) / np.float32(255.0)
        else:
            grey = np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255.0)
    return grey * alpha if alpha is not None else grey


def white_pixels(values: np.ndarray, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """``values > threshold`` as bool, after checking the threshold (0 = any non-zero pixel)."""
    check_threshold(threshold)
    return np.asarray(values) > threshold


def check_threshold(threshold: float) -> float:
    """The threshold, or a one-line error when it is outside [0, 1)."""
    if not 0.0 <= threshold < 1.0:
        raise PconvError(
            f"mask threshold must be in [0, 1) (0 = any non-zero pixel, default {MASK_THRESHOLD}); "
            f"got {threshold}"
        )
    return threshold


def read_mask_file(path: str | Path, threshold: float = MASK_THRESHOLD, what: str = "mask") -> np.ndarray:
    """A mask file as bool (H, W), True = white (above the threshold), upright."""
    return white_pixels(mask_values(open_image(path, what), f"{what} {path}"), threshold)


def dilate_square(hole: np.ndarray, size: int) -> np.ndarray:
    """Binary dilation of True pixels with a ``size`` x ``size`` square (separable running max)."""
    if size <= 1:
        return np.asarray(hole, dtype=bool).copy()
    before = size // 2
    after = size - 1 - before
    out = np.asarray(hole).astype(np.uint8)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (before, after)
        padded = np.pad(out, pad)
        windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=axis)
        out = windows.max(axis=-1)
    return out.astype(bool)


def grow(hole: np.ndarray, pixels: int) -> np.ndarray:
    """Holes grown by ``pixels`` in every direction (a square of side 2·pixels + 1)."""
    if pixels < 0:
        raise PconvError(f"mask dilation must be >= 0 pixels; got {pixels}")
    return dilate_square(hole, 2 * pixels + 1)


def resize_nearest(hole: np.ndarray, height: int, width: int) -> np.ndarray:
    """A bool mask resized to ``height`` x ``width`` with nearest-neighbour sampling."""
    from PIL import Image

    img = Image.fromarray(np.asarray(hole, dtype=np.uint8) * 255)
    return np.asarray(img.resize((width, height), Image.Resampling.NEAREST)) > 127
