"""The options of ``pconv export`` and ``pconv check``, and the defaults they share with the library.

:class:`ExportOptions` and :class:`CheckOptions` are :func:`pconv.cliopts.option` dataclasses: the
flags, defaults, choices (from :mod:`pconv.contract`) and help come from their fields, and the
combination rules (int8 flags without ``--precision int8``) are checked once, in ``__post_init__``.
The defaults the exporter and the checker use (opset, calibration, tolerances) are stated here so
that ``--help`` can show them without importing onnx or numpy; :mod:`~pconv.export.onnx_export`,
:mod:`~pconv.export.quantize` and :mod:`~pconv.export.check` import them from here.

Standard library only (plus the stdlib-only core): ``pconv --help`` builds these parsers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pconv.cliopts import check, cli_fields, comma_list, flag_of, option
from pconv.contract import FORMS, INT8_TARGETS, IO_TYPES, PRECISIONS
from pconv.errors import OptionError

if TYPE_CHECKING:
    from pconv.export.quantize import Int8Options

#: Oldest default-domain opset the exporter writes (CastLike, used by the plugin function, is 15).
MIN_OPSET = 15
DEFAULT_OPSET = 18
#: How a decoder layer convolves its upsampled input (see :mod:`pconv.export.onnx_export`).
DECODERS = ("subpixel", "resize")
#: INT8 calibration: samples, and the crop side when the export's H/W are dynamic.
DEFAULT_CALIBRATION_COUNT = 16
DEFAULT_CALIBRATION_SIZE = 512
#: Default tolerances per graph precision (FP16 and INT8 graphs are compared with FP32 PyTorch).
#: INT8 pass/fail is PSNR (:data:`MIN_INT8_PSNR`); its atol/rtol are only printed for reference.
DEFAULT_TOLERANCE = {"fp32": (1e-4, 1e-3), "fp16": (2e-2, 2e-2), "int8": (5e-2, 5e-2)}
#: INT8: least PSNR (dB, outputs clipped to [0, 1]) against FP32 PyTorch on real photos to pass.
MIN_INT8_PSNR = 30.0
#: The argument group of the int8 options.
INT8_GROUP = "int8"


def _tolerance_help(kind: str, index: int) -> str:
    """``--atol``/``--rtol`` help naming the FP32 and FP16 defaults of :data:`DEFAULT_TOLERANCE`."""

    def short(value: float) -> str:  # 1e-4, not 0.0001
        return f"{value:.0e}".replace("e-0", "e-")

    fp32, fp16 = DEFAULT_TOLERANCE["fp32"][index], DEFAULT_TOLERANCE["fp16"][index]
    return f"{kind} tolerance (default: {short(fp32)}; fp16 {short(fp16)})"


@dataclass(frozen=True)
class ExportOptions:
    """``pconv export``: a checkpoint to an ONNX file (the int8 fields need ``--precision int8``)."""

    checkpoint: Path = option(
        positional=True,
        help="pconv checkpoint (.safetensors) from `pconv train`, or 'default' for the model shipped "
        "with pconv",
    )
    output: Path = option(flags=("-o", "--output"), help="ONNX file to write (atomically)")
    form: str = option(
        "explicit",
        choices=FORMS,
        help="explicit: standard ONNX ops only (any runtime); plugin: one pconv::PartialConv2d node "
        "per layer plus a local ONNX function with the same math, so ONNX Runtime runs it without "
        "the plugin and TensorRT uses the plugin when its library is loaded",
    )
    precision: str = option(
        "fp32",
        choices=PRECISIONS,
        help="weights and feature tensors; the mask path always stays FP32. "
        "fp16 is what strongly typed TensorRT (10.x with strong typing, 11.x) builds in FP16; "
        "int8: QDQ int8 feature convolutions (per-channel symmetric weights, activations calibrated "
        "with --calibration), mask path and renormalisation FP32, explicit form only",
    )
    io: str = option("fp32", choices=IO_TYPES, help="element type of the image/mask inputs and the outputs")
    opset: int = option(DEFAULT_OPSET, help=f"ONNX opset, {MIN_OPSET} or newer")
    decoder: str = option(
        "subpixel",
        choices=DECODERS,
        help="explicit form only: how a decoder layer convolves its upsampled input. subpixel: on the "
        "low-resolution features (2x2 phase convolutions + DepthToSpace, or one ConvTranspose for "
        "narrow layers), 16 instead of 36 multiply-adds per input pixel, ~30% less CPU time; resize: "
        "nearest Resize + Concat + one 3x3 Conv, the literal formulation",
    )
    calibration: str | None = option(
        None,
        metavar="DIR|builtin",
        group=INT8_GROUP,
        help="images to calibrate the activation ranges on: a folder (searched recursively) of photos "
        "like the ones the model will inpaint, or 'builtin' (the training photos bundled with "
        "scikit-image); each sample is a seeded random crop with a procedural irregular mask",
    )
    calibration_count: int | None = option(
        None,
        metavar="N",
        group=INT8_GROUP,
        help=f"calibration samples (default: {DEFAULT_CALIBRATION_COUNT})",
    )
    calibration_size: int | None = option(
        None,
        metavar="PX",
        group=INT8_GROUP,
        help=f"side of the calibration crops (default: the fixed --height/--width, else "
        f"{DEFAULT_CALIBRATION_SIZE}, rounded up to the model's size multiple)",
    )
    calibration_seed: int = option(0, group=INT8_GROUP, help="seed of crops and masks")
    int8_target: str = option(
        "onnxruntime",
        choices=tuple(INT8_TARGETS),
        group=INT8_GROUP,
        help="onnxruntime: uint8 asymmetric activations, which ONNX Runtime on x86 fuses into integer "
        "QLinearConv kernels (VNNI); tensorrt: symmetric int8 activations (zero point 0), the only "
        "kind TensorRT builds; ONNX Runtime runs those convolutions in float",
    )
    int8_keep_fp32: tuple[str, ...] | None = option(
        None,
        metavar="LAYER[,LAYER]",
        parse=comma_list,
        group=INT8_GROUP,
        help="layers whose convolutions stay FP32 (names as enc1..encD, decD..dec1; default: the first and "
        "the last, enc1,dec1, which touch the image). More layers: closer to FP32, slower; e.g. "
        "enc1,dec2,dec1",
    )
    batch: int | None = option(None, help="fix N (default: dynamic)")
    height: int | None = option(None, help="fix H, a multiple of 2^depth (default: dynamic)")
    width: int | None = option(None, help="fix W, a multiple of 2^depth (default: dynamic)")

    def __post_init__(self) -> None:
        check(self)
        if self.precision != "int8":
            given = [
                flag_of(ExportOptions, f.name)
                for f, spec in cli_fields(ExportOptions)
                if spec.group == INT8_GROUP and f.default is None and getattr(self, f.name) is not None
            ]  # (the seed and the target have defaults: a float export ignores them)
            if given:
                raise OptionError(f"{given[0]} only applies to --precision int8")
        elif self.calibration is None:
            raise OptionError(
                "--precision int8 needs calibration images: add --calibration DIR (photos like the ones "
                "you will inpaint) or --calibration builtin"
            )

    def int8_options(self) -> Int8Options | None:
        """The exporter's ``Int8Options`` (checked), or None for a float export."""
        if self.precision != "int8" or self.calibration is None:
            return None
        from pconv.export.quantize import Int8Options

        options = Int8Options(
            calibration=self.calibration,
            count=self.calibration_count if self.calibration_count is not None else DEFAULT_CALIBRATION_COUNT,
            seed=self.calibration_seed,
            size=self.calibration_size,
            target=self.int8_target,
            keep_fp32=self.int8_keep_fp32 or None,
        )
        options.validate()
        return options


@dataclass(frozen=True)
class CheckOptions:
    """``pconv check``: run an exported ONNX with ONNX Runtime, optionally against its checkpoint."""

    model: Path = option(positional=True, help="ONNX file written by `pconv export`")
    against: Path | None = option(
        None, help="checkpoint to compare with (PyTorch, FP32), or 'default' for the shipped one"
    )
    atol: float | None = option(None, help=_tolerance_help("absolute", 0))
    rtol: float | None = option(None, help=_tolerance_help("relative", 1))
    batch: int | None = option(None, help="N (default: the graph's fixed N, else 1)")
    height: int | None = option(None, help="H (default: the graph's fixed H, else 2*2^depth)")
    width: int | None = option(None, help="W (default: the graph's fixed W, else 2*2^depth)")
    seed: int = option(0, help="seed of the random inputs")
    min_psnr: float | None = option(
        None,
        metavar="DB",
        help="INT8 graphs: pass if output and composite reach this PSNR against FP32 PyTorch on real "
        f"held-out photos with irregular holes (default: {MIN_INT8_PSNR:g})",
    )
    json: bool = option(False, help="print the report as JSON instead of a table")
    verbose: bool = option(False, help="show Polygraphy's own log")

    def __post_init__(self) -> None:
        check(self)
