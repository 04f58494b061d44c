"""The options of ``pconv inpaint`` and ``pconv bench``: each default and check stated once.

:class:`InpaintOptions` and :class:`BenchOptions` are the source of truth; the command-line flags
are generated from their fields (:func:`add_arguments`: flag name, type, default, choices and help
come from the field), and the checks run once, in ``__post_init__``. The
:class:`~pconv.runtime.Inpainter` takes its batch and strategy defaults from here too.

Stdlib-only on purpose (plus the stdlib-only core): ``pconv --help`` builds these parsers without
importing numpy or onnxruntime.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pconv.contract import BACKENDS, MASK_THRESHOLD, STRATEGIES, format_nhw, nhw_arg
from pconv.errors import InputError
from pconv.models import DEFAULT_MODEL

#: Tiles (or images) per backend call.
DEFAULT_BATCH_SIZE = 4
#: How the Inpainter fits an image to the network (see :mod:`pconv.runtime.strategy`).
DEFAULT_STRATEGY = "auto"
#: Output formats of ``pconv inpaint --format`` and the Pillow writer each one uses.
OUTPUT_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
#: The output format a file name's suffix asks for (``--out result.jpg``).
SUFFIX_FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}
#: JPEG / WebP quality of written results.
DEFAULT_QUALITY = 95

_O = TypeVar("_O", bound="ModelOptions")


def option(default: Any = dataclasses.MISSING, help: str = "", **argparse_kwargs: Any) -> Any:
    """A dataclass field that also describes its command-line flag (``help``, ``metavar``, ...).

    A field without default is a required flag (keyword-only, so it may follow defaulted ones).
    """
    metadata = {"help": help, **argparse_kwargs}
    if default is dataclasses.MISSING:
        return field(kw_only=True, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ModelOptions:
    """Which model to open, and how (shared by ``inpaint`` and ``bench``)."""

    model: str = option(
        DEFAULT_MODEL,
        "a .onnx model (pconv export), a .engine/.plan (pconv build), or 'default': the model that ships "
        "with pconv (see the README's quality section)",
        metavar="M",
    )
    backend: str = option(
        "auto", "auto (default): ONNX Runtime for .onnx, TensorRT for .engine/.plan", choices=BACKENDS
    )
    device: int = option(0, "CUDA device index for GPU backends (default: %(default)s)")
    providers: str | None = option(
        None,
        "ONNX Runtime execution providers in order (default: TensorRT, CUDA, CPU, whichever are installed)",
        metavar="P1,P2",
    )
    plugin_library: str | None = option(
        None,
        "the pconv TensorRT plugin library, for engines built with the plugin "
        "(default: pconv.plugins.default_library_path())",
        metavar="SO",
    )

    @property
    def provider_list(self) -> list[str] | None:
        """``--providers A,B`` as a list (None: the backend's preference order)."""
        if not self.providers:
            return None
        return [p.strip() for p in self.providers.split(",") if p.strip()]

    @classmethod
    def from_namespace(cls: type[_O], args: argparse.Namespace) -> _O:
        """The options from parsed arguments (checked by ``__post_init__``)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    def open(self) -> Any:
        """The :class:`~pconv.runtime.Inpainter` for these options (imports the runtime now)."""
        from pconv.runtime import Inpainter

        return Inpainter(
            self.model,
            backend=self.backend,
            device=self.device,
            providers=self.provider_list,
            plugin_library=self.plugin_library,
        )


@dataclass(frozen=True)
class InpaintOptions(ModelOptions):
    """``pconv inpaint``: image / mask files in, result files out."""

    image: str = option(help="an image file or a folder of images", metavar="FILE|DIR")
    mask: str = option(help="a mask file (used for all images) or a folder", metavar="FILE|DIR")
    out: str = option(
        help="output folder (created), or for a single --image a file name such as result.png",
        metavar="DIR|FILE",
    )
    mask_is_valid: bool = option(False, "masks mark VALID pixels (white = keep) instead of holes")
    mask_threshold: float = option(
        MASK_THRESHOLD,
        "a mask pixel is white when its grey level (0..1, alpha applied) is above T; "
        "0 = any non-zero pixel (default: %(default)s, mid-grey)",
        metavar="T",
    )
    mask_dilate: int = option(0, "grow every hole by PX pixels (default: %(default)s)", metavar="PX")
    resize_mask: bool = option(
        False,
        "resize a mask whose size differs from its image to the image (nearest neighbour), e.g. one "
        "watermark mask for photos of several sizes (default: a size difference is an error)",
    )
    format: str | None = option(
        None, "output format (default: from --out's suffix, else png)", choices=tuple(OUTPUT_FORMATS)
    )
    quality: int = option(DEFAULT_QUALITY, "jpg/webp quality 1..100 (default: %(default)s)", metavar="Q")
    skip_existing: bool = option(
        False, "leave images whose output file already exists (rerun after an interruption)"
    )
    batch: int = option(
        DEFAULT_BATCH_SIZE, "images (or crops) per backend call (default: %(default)s)", metavar="N"
    )
    strategy: str = option(
        DEFAULT_STRATEGY,
        "full: whole image, padded; crop: only boxes around holes, in tiles of at most 2048x2048 "
        "(faster on big images, less context); resize: the whole image downscaled to the pixel budget, "
        "only the fill upscaled (whole-image context, softer fill); auto (default): crop when the image "
        "is too big for the model or the pixel budget",
        choices=STRATEGIES,
    )
    concat: bool = option(False, "also write OUT/<stem>_concat.png: image | mask | result")

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise InputError(f"--batch must be >= 1; got {self.batch}")
        from pconv.imagefiles import check_threshold  # numpy: checked when run, not for --help

        check_threshold(self.mask_threshold)
        if self.mask_dilate < 0:
            raise InputError(f"--mask-dilate must be >= 0 pixels; got {self.mask_dilate}")
        if not 1 <= self.quality <= 100:
            raise InputError(f"--quality must be 1..100; got {self.quality}")
        _check_choice("--strategy", self.strategy, STRATEGIES)
        _check_choice("--backend", self.backend, BACKENDS)
        if self.format is not None:
            _check_choice("--format", self.format, tuple(OUTPUT_FORMATS))


@dataclass(frozen=True)
class BenchOptions(ModelOptions):
    """``pconv bench``: latency and throughput on random inputs."""

    shape: tuple[int, int, int] = option(
        (1, 512, 512),
        "batch x height x width (default: %(default)s)",
        metavar="NxHxW",
        type=nhw_arg,
        shown_as=format_nhw,
    )
    iterations: int = option(50, "timed runs (default: %(default)s)")
    warmup: int = option(5, "untimed runs first (default: %(default)s)")
    hole_ratio: float = option(0.25, "fraction of hole pixels in the random mask (default: %(default)s)")
    end_to_end: bool = option(False, "time Inpainter calls (host pre/post work included)")
    json: str | None = option(
        None,
        "write the results as JSON to PATH (or stdout with no PATH) instead of the table",
        metavar="PATH",
        nargs="?",
        const="-",
    )

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.warmup < 0:
            raise InputError("--iterations must be >= 1 and --warmup >= 0")
        _check_choice("--backend", self.backend, BACKENDS)


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{flag} must be one of {', '.join(choices)}; got {value!r}")


# -- the command-line flags, generated from the fields ---------------------------------------------
_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str}


def add_arguments(parser: argparse.ArgumentParser, cls: type[ModelOptions]) -> None:
    """Add one ``--flag`` per field of ``cls``: bools are switches, fields without default required.

    The field's metadata gives ``help`` and any argparse keyword (``metavar``, ``choices``,
    ``type``); ``shown_as`` turns the default into the text a user would type (argparse then
    converts it with ``type``, and ``%(default)s`` shows it that way).
    """
    for f in dataclasses.fields(cls):
        kwargs = dict(f.metadata)
        shown_as = kwargs.pop("shown_as", None)
        if f.default is dataclasses.MISSING:
            kwargs["required"] = True
        elif f.type == "bool":
            kwargs["action"] = "store_true"
        else:
            kwargs["default"] = f.default if shown_as is None else shown_as(f.default)
            base = str(f.type).split(" |")[0]
            if "type" not in kwargs and base in _TYPES:
                kwargs["type"] = _TYPES[base]
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)
