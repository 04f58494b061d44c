"""The contract between the stages: names, keys, file suffixes and choice lists, each written once.

Everything a model file promises its readers lives here (tensor names, metadata keys, formats), as
do the lists the command lines offer (backends, strategies, forms, precisions) and the small parsers
several commands share. Pure Python: every stage imports it, it imports no stage.
"""

from __future__ import annotations

from collections.abc import Sequence

from pconv.errors import InputError

Shape3 = tuple[int, int, int]

# -- tensors -----------------------------------------------------------------------------------------
#: Graph inputs and outputs of every exported model and engine, in order.
INPUT_NAMES = ("image", "mask")
OUTPUT_NAMES = ("output", "composite")
INPUT_CHANNELS = {"image": 3, "mask": 1}
#: Mask convention inside every model and graph: 1 = valid pixel, 0 = hole.
MASK_CONVENTION = "1=valid,0=hole"

# -- metadata (checkpoints and ONNX models) -------------------------------------------------------
META_FORMAT = "pconv_format"
META_CONFIG = "pconv_config"
META_VERSION = "pconv_version"
META_MULTIPLE = "pconv_size_multiple"
META_MASK = "pconv_mask_convention"
META_FORM = "pconv_form"
META_PRECISION = "pconv_precision"
META_IO = "pconv_io"  # element type of the graph inputs/outputs (fp32 or fp16)
META_INT8_ACTIVATIONS = "pconv_int8_activations"  # int8 exports: "uint8" (asymmetric) or "int8" (symmetric)
META_CALIBRATION = "pconv_calibration"  # int8 exports: what the activation ranges were calibrated on (JSON)
CHECKPOINT_FORMAT = "pconv-checkpoint-v1"
ONNX_FORMAT = "pconv-onnx-v1"

# -- choice lists --------------------------------------------------------------------------------
#: Feature precisions of an export (``pconv export --precision``); the mask path is FP32 in all.
PRECISIONS = ("fp32", "fp16", "int8")
#: Element types of the graph inputs and outputs (``pconv export --io``).
IO_TYPES = ("fp32", "fp16")
#: Who runs an INT8 export -> the element type of its quantized activations. ONNX Runtime on x86 fuses
#: only uint8 (asymmetric) activations with int8 weights into integer kernels (U8S8, VNNI); TensorRT
#: takes only symmetric int8 (zero point 0).
INT8_TARGETS = {"onnxruntime": "uint8", "tensorrt": "int8"}


def default_fp32_layers(layer_names: Sequence[str]) -> tuple[str, ...]:
    """The layers an INT8 export keeps FP32 unless told otherwise, and INT8-aware fine-tuning does
    not simulate: the two that touch the image (``enc1`` reads its 3 channels, ``dec1`` writes them).

    Why: they are the cheapest in multiply-adds (3 channels on one side, ~3 % of the paper net) and
    the most sensitive: 8 bits at the image's own resolution cost 3 dB (``dec1``), and keeping ``enc1``
    too took an INT8-aware fine-tuned checkpoint's held-out SSIM drop from 0.0119 to 0.0031 (a probe
    on an exploratory fine-tuning run at 1000 steps, not a recorded benchmark).
    """
    return (layer_names[0], layer_names[-1])


#: ONNX forms: partial convolutions as standard operators, or as the fused TensorRT plugin node.
FORMS = ("explicit", "plugin")
#: Inference backends (``auto``: by file suffix).
BACKENDS = ("auto", "onnxruntime", "tensorrt")
#: How the runtime fits an image to the network (see :mod:`pconv.runtime.strategy`).
STRATEGIES = ("auto", "full", "crop", "resize")

# -- files ---------------------------------------------------------------------------------------
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")
#: Image files every command reads (Pillow opens them all).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: A mask file named IMG_mask.png belongs to IMG.png.
MASK_SUFFIX = "_mask"
#: Grey level in [0, 1] above which a mask pixel is white (a hole, by default); mid-grey. Here, not
#: in :mod:`pconv.imagefiles` (which re-exports it), so the command lines can state it without numpy.
MASK_THRESHOLD = 0.5

# -- serving -------------------------------------------------------------------------------------
#: ``pconv serve --admin-token``: the HTTP header that carries the token, and the gRPC metadata name
#: Triton expects for it (it prefixes restricted-protocol keys for gRPC, so the two differ). Here, not in
#: the serving stage, so the runtime's Triton client can name the right one in its errors.
ADMIN_HEADER = "pconv-admin-key"
ADMIN_GRPC_HEADER = f"triton-grpc-protocol-{ADMIN_HEADER}"


# -- small shared parsers --------------------------------------------------------------------------
def parse_nhw(text: str, flag: str = "--shape") -> Shape3:
    """``"1x512x512"`` (also ``1×512×512``) -> ``(1, 512, 512)``; a one-line error for anything else."""
    parts = text.strip().lower().replace("×", "x").split("x")
    if len(parts) != 3:
        raise InputError(f"{flag} {text!r}: expected NxHxW (batch x height x width), e.g. 1x512x512")
    try:
        n, h, w = (int(p) for p in parts)
    except ValueError:
        raise InputError(f"{flag} {text!r}: N, H and W must be integers, e.g. 1x512x512") from None
    if n < 1 or h < 1 or w < 1:
        raise InputError(f"{flag} {text!r}: N, H and W must be positive")
    return (n, h, w)


def format_nhw(shape: Shape3) -> str:
    return "x".join(str(v) for v in shape)


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def nhw_arg(text: str) -> Shape3:
    """:func:`parse_nhw` as an argparse ``type=`` (its error becomes argparse's one-line usage error)."""
    import argparse

    try:
        return parse_nhw(text, "")
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).lstrip()) from exc
