"""The options of ``pconv inpaint`` and ``pconv bench``: each default and check stated once.

:class:`InpaintOptions` and :class:`BenchOptions` are the source of truth; their fields are
:func:`pconv.cliopts.option` fields, so the command-line flags (name, type, default, choices, help)
come from them (:func:`pconv.cliopts.add_options`), and the checks run once, in ``__post_init__``
(:func:`pconv.cliopts.check` for choices and bounds). The :class:`~pconv.runtime.Inpainter` takes its
batch and strategy defaults from here too.

Stdlib-only on purpose (plus the stdlib-only core): ``pconv --help`` builds these parsers without
importing numpy or onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pconv.cliopts import check, option
from pconv.contract import BACKENDS, MASK_THRESHOLD, STRATEGIES, Shape3, format_nhw, nhw_arg
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


@dataclass(frozen=True)
class ModelOptions:
    """Which model to open, and how (shared by ``inpaint`` and ``bench``)."""

    model: str = option(
        DEFAULT_MODEL,
        help="a .onnx model (pconv export), a .engine/.plan (pconv build), or 'default': the model that "
        "ships with pconv (see the README's quality section)",
        metavar="M",
        show_default=False,
    )
    backend: str = option(
        "auto",
        help="auto (default): ONNX Runtime for .onnx, TensorRT for .engine/.plan",
        choices=BACKENDS,
        show_default=False,
    )
    device: int = option(0, help="CUDA device index for GPU backends")
    providers: str | None = option(
        None,
        help="ONNX Runtime execution providers in order (default: TensorRT, CUDA, CPU, whichever are "
        "installed)",
        metavar="P1,P2",
    )
    plugin_library: str | None = option(
        None,
        help="the pconv TensorRT plugin library, for engines built with the plugin "
        "(default: pconv.plugins.default_library_path())",
        metavar="SO",
    )

    def __post_init__(self) -> None:
        check(self)

    @property
    def provider_list(self) -> list[str] | None:
        """``--providers A,B`` as a list (None: the backend's preference order)."""
        if not self.providers:
            return None
        return [p.strip() for p in self.providers.split(",") if p.strip()]

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

    image: str = option(help="an image file or a folder of images", metavar="FILE|DIR", kw_only=True)
    mask: str = option(help="a mask file (used for all images) or a folder", metavar="FILE|DIR", kw_only=True)
    out: str = option(
        help="output folder (created), or for a single --image a file name such as result.png",
        metavar="DIR|FILE",
        kw_only=True,
    )
    mask_is_valid: bool = option(False, help="masks mark VALID pixels (white = keep) instead of holes")
    mask_threshold: float = option(
        MASK_THRESHOLD,
        help="a mask pixel is white when its grey level (0..1, alpha applied) is above T; "
        "0 = any non-zero pixel",
        show=lambda t: f"{t}, mid-grey",
        metavar="T",
    )
    mask_dilate: int = option(0, help="grow every hole by PX pixels", metavar="PX", at_least=0)
    resize_mask: bool = option(
        False,
        help="resize a mask whose size differs from its image to the image (nearest neighbour), e.g. one "
        "watermark mask for photos of several sizes (default: a size difference is an error)",
    )
    format: str | None = option(
        None, help="output format (default: from --out's suffix, else png)", choices=tuple(OUTPUT_FORMATS)
    )
    quality: int = option(
        DEFAULT_QUALITY, help="jpg/webp quality 1..100", metavar="Q", at_least=1, at_most=100
    )
    skip_existing: bool = option(
        False, help="leave images whose output file already exists (rerun after an interruption)"
    )
    batch: int = option(
        DEFAULT_BATCH_SIZE, help="images (or crops) per backend call", metavar="N", at_least=1
    )
    strategy: str = option(
        DEFAULT_STRATEGY,
        help="full: whole image, padded; crop: only boxes around holes, in tiles of at most 2048x2048 "
        "(faster on big images, less context); resize: the whole image downscaled to the pixel budget, "
        "only the fill upscaled (whole-image context, softer fill); auto (default): crop when the image "
        "is too big for the model or the pixel budget",
        choices=STRATEGIES,
        show_default=False,
    )
    concat: bool = option(False, help="also write OUT/<stem>_concat.png: image | mask | result")

    def __post_init__(self) -> None:
        check(self)
        from pconv.imagefiles import check_threshold  # numpy: checked when run, not for --help

        check_threshold(self.mask_threshold)


@dataclass(frozen=True)
class BenchOptions(ModelOptions):
    """``pconv bench``: latency and throughput on random inputs."""

    shape: Shape3 = option(
        (1, 512, 512), help="batch x height x width", metavar="NxHxW", parse=nhw_arg, show=format_nhw
    )
    iterations: int = option(50, help="timed runs", at_least=1)
    warmup: int = option(5, help="untimed runs first", at_least=0)
    hole_ratio: float = option(0.25, help="fraction of hole pixels in the random mask")
    end_to_end: bool = option(False, help="time Inpainter calls (host pre/post work included)")
    json: str | None = option(
        None,
        help="write the results as JSON to PATH (or stdout with no PATH) instead of the table",
        metavar="PATH",
        const="-",
    )
