"""INT8 export: QDQ quantization of the feature convolutions, calibrated on real images and masks.

Why only the feature path: the convolutions are >80 % of the time and tolerate 8 bits; the mask path
(window sums, ``winsize/max(S,1)·clip(S,0,1)``, the new mask) and the renormalisation
``(raw·ratio + b)·new_mask`` stay FP32, so the formula's hole semantics do not change: all-hole
windows still give exactly 0 and the composite keeps valid pixels bit-exact. The exporter writes the
graph node by node and tags every feature convolution (:data:`FEATURE_CONV`), the Concat +
DepthToSpace interleaving a decoder layer's phase convolutions (:data:`PHASE_INTERLEAVE`) and the
sum of its skip and upsampled convolutions (:data:`DECODER_SUM`), so ``nodes_to_quantize`` is
exactly those nodes, less the layers kept FP32 (:func:`quantized_nodes`; default: the first and
the last). ONNX Runtime's ``quantize_static`` (QDQ format, per-channel symmetric int8 weights,
MinMax ranges averaged over the samples) does the rest.

Why the first and the last layer stay FP32 (:func:`pconv.contract.default_fp32_layers`): together
they are ~3 % of the paper net's multiply-adds (3 channels on one side), but they touch the image:
``dec1``'s 8-bit output would be at the image's own resolution (+3 dB when kept FP32) and ``enc1``'s
8-bit raw output, heavy-tailed and scaled up by the renormalisation next to holes, was more than half
of the SSIM an INT8-aware fine-tuned checkpoint still lost (a probe, see the contract function).
What remains is closed by training, not by more FP32 layers: :mod:`pconv.training.int8_aware`.
Why averaged ranges: the global min/max of 16 photos is set by rare outliers and wastes most of
the 256 levels (+9 dB); clipping the tails instead (percentiles) trades PSNR for SSIM without
closing the gap (measured).

Activations: ``uint8`` asymmetric for ONNX Runtime (on x86 it fuses ``DQ -> Conv -> Q`` into
``QLinearConv`` only for uint8 activations with int8 weights, the U8S8 VNNI kernel), or symmetric
``int8`` with zero point 0 for TensorRT, which takes nothing else (:data:`pconv.config.INT8_TARGETS`).

Calibration inputs: ``"builtin"`` = the training photos bundled with scikit-image, or a folder of
images; each sample is a random crop with a procedural irregular mask, a pure function of
``(seed, index)``, so the exported model is the same bytes for the same seed.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from pconv.config import ModelConfig
from pconv.contract import INT8_TARGETS, default_fp32_layers, round_up
from pconv.errors import PconvError, require
from pconv.export.options import DEFAULT_CALIBRATION_COUNT as DEFAULT_CALIBRATION_COUNT  # stated once
from pconv.export.options import DEFAULT_CALIBRATION_SIZE as DEFAULT_CALIBRATION_SIZE

#: Tag of the feature convolutions in :attr:`pconv.export.graph.GraphBuilder.tagged`.
FEATURE_CONV = "feature_conv"
#: Tag of the Concat + DepthToSpace that interleave a decoder layer's four phase convolutions.
PHASE_INTERLEAVE = "phase_interleave"
#: Tag of the Add of a decoder layer's skip and upsampled convolutions (its ``raw``, before renormalising).
DECODER_SUM = "decoder_sum"
#: Calibration crops are this size (rounded up to the model's size multiple) unless H/W are fixed.
#: Hole ratios of the calibration masks: the range the network is trained and evaluated on.
CALIBRATION_HOLE_RATIO = (0.01, 0.6)
BUILTIN = "builtin"


class CalibrationError(PconvError, ValueError):
    """The calibration images cannot be used; the message says what to pass instead."""


@dataclass(frozen=True)
class Int8Options:
    """How an INT8 export is calibrated and for which runtime (see :data:`INT8_TARGETS`)."""

    calibration: str | Path = BUILTIN  # "builtin" or a folder of images
    count: int = DEFAULT_CALIBRATION_COUNT  # calibration samples (image + mask), one per run
    seed: int = 0
    size: int | None = None  # crop size; default: the export's fixed H/W, else 512 (model multiple)
    target: str = "onnxruntime"
    keep_fp32: tuple[str, ...] | None = None  # layers left unquantized; None: the first and the last

    @property
    def activation_type(self) -> str:
        return INT8_TARGETS[self.target]

    def validate(self) -> None:
        if self.target not in INT8_TARGETS:
            raise CalibrationError(
                f"--int8-target must be one of {', '.join(INT8_TARGETS)}, got {self.target!r}"
            )
        if self.count < 1:
            raise CalibrationError(f"--calibration-count must be at least 1, got {self.count}")
        if self.size is not None and self.size < 1:
            raise CalibrationError(f"--calibration-size must be positive, got {self.size}")


def calibration_shape(
    config: ModelConfig, options: Int8Options, height: int | None, width: int | None
) -> tuple[int, int]:
    """(H, W) of the calibration inputs: the fixed export size, else ``size`` (or 512), rounded up."""
    m = config.size_multiple

    def up(v: int) -> int:
        return max(m, round_up(v, m))

    side = options.size if options.size is not None else DEFAULT_CALIBRATION_SIZE
    return (height or up(side), width or up(side))


def _source_images(source: str | Path) -> list[Any]:
    """The calibration photos as PIL images (builtin training photos, or every image in a folder)."""
    from PIL import Image

    from pconv.data.images import IMAGE_SUFFIXES, builtin_images

    if str(source) == BUILTIN:
        return [Image.fromarray(a) for a in builtin_images("train")]
    root = Path(source)
    if not root.is_dir():
        raise CalibrationError(
            f"--calibration {root}: not a directory; pass a folder of images or 'builtin' "
            "(the photos bundled with scikit-image)"
        )
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(
            f"--calibration {root}: no images ({', '.join(IMAGE_SUFFIXES)}) found (searched "
            "recursively); add photos like the ones the model will inpaint, or use --calibration builtin"
        )
    images = []
    for path in files:
        try:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        except Exception as exc:  # PIL raises many types for damaged files
            raise CalibrationError(
                f"--calibration: cannot read {path} ({type(exc).__name__}: {exc}); remove or re-save it"
            ) from exc
    return images


def calibration_samples(
    config: ModelConfig,
    options: Int8Options,
    height: int | None = None,
    width: int | None = None,
) -> list[dict[str, np.ndarray]]:
    """``options.count`` feeds ``{"image": (1,3,H,W), "mask": (1,1,H,W)}`` (1 = valid), seeded.

    Sample ``i`` is a random crop of photo ``i mod len(photos)`` with a procedural irregular mask,
    both drawn from ``default_rng([seed, i])``: deterministic, and independent of the count.
    """
    from pconv.data.images import random_crop
    from pconv.data.masks import generate_irregular_mask

    options.validate()
    h, w = calibration_shape(config, options, height, width)
    photos = _source_images(options.calibration)
    feeds = []
    for i in range(options.count):
        rng = np.random.default_rng([options.seed, i])
        crop = random_crop(photos[i % len(photos)], max(h, w), rng)[:h, :w]
        hole = generate_irregular_mask(h, w, rng, hole_ratio=CALIBRATION_HOLE_RATIO)
        image = np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        mask = (~hole).astype(np.float32)[None, None]
        feeds.append({"image": image, "mask": mask})
    return feeds


def fp32_layers(options: Int8Options, layer_names: Sequence[str]) -> tuple[str, ...]:
    """The layers an INT8 export keeps FP32: ``options.keep_fp32``, by default the first and the last
    (:func:`pconv.contract.default_fp32_layers`)."""
    keep = options.keep_fp32 if options.keep_fp32 is not None else default_fp32_layers(layer_names)
    unknown = [name for name in keep if name not in layer_names]
    if unknown:
        raise CalibrationError(
            f"--int8-keep-fp32 {','.join(unknown)}: no such layer; this model has {', '.join(layer_names)}"
        )
    return tuple(keep)


def quantized_nodes(tagged: dict[str, list[str]], keep_fp32: Sequence[str]) -> list[str]:
    """The nodes to quantize: the feature convolutions of every layer not in ``keep_fp32``, the
    Concat + DepthToSpace interleaving their phases (uint8 instead of float: measured 8 % faster on
    the 512² paper net, -0.01 dB held-out PSNR on the default model) and the Add of a decoder
    layer's skip and upsampled convolutions (``QLinearAdd``: a further 13 %, -0.02 dB, -0.0025
    SSIM). Everything from the renormalisation on stays FP32.

    Node names start with their layer's name (:meth:`pconv.export.graph.GraphBuilder.fresh` scopes).
    """
    names = tagged.get(FEATURE_CONV, []) + tagged.get(PHASE_INTERLEAVE, []) + tagged.get(DECODER_SUM, [])
    return [n for n in names if n.split("/", 1)[0] not in set(keep_fp32)]


def calibration_record(options: Int8Options, shape: tuple[int, int], keep_fp32: Sequence[str]) -> str:
    """What the metadata says about the calibration (JSON), so a model can be reproduced."""
    return json.dumps(
        {
            "source": str(options.calibration),
            "count": options.count,
            "seed": options.seed,
            "shape": list(shape),
            "method": "MinMax, mean of per-sample ranges",
            "fp32_layers": list(keep_fp32),
            "activations": options.activation_type,
            "weights": "int8 symmetric per-channel",
        },
        sort_keys=True,
    )


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Drop the quantizer's "consider pre-processing" warning: our graph is already shape-clean."""

    class _Filter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "pre-process" not in record.getMessage()

    root = logging.getLogger()
    f = _Filter()
    root.addFilter(f)
    try:
        yield
    finally:
        root.removeFilter(f)


def quantize_feature_convs(
    float_model: onnx.ModelProto,
    feature_nodes: Sequence[str],
    feeds: Sequence[dict[str, np.ndarray]],
    target: str,
) -> onnx.ModelProto:
    """QDQ-quantize ``feature_nodes`` of ``float_model`` with ranges calibrated on ``feeds``."""
    require("onnxruntime", "export")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    symmetric = INT8_TARGETS[target] == "int8"
    with tempfile.TemporaryDirectory(prefix="pconv-int8-") as tmp, _quiet_quantizer():
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(float_model, str(src))
        quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=list(feature_nodes),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={
                "ActivationSymmetric": symmetric,
                "WeightSymmetric": True,
                "CalibMovingAverage": True,  # with all samples in memory: mean of per-sample min/max
            },
        )
        quantized = onnx.load(str(dst))
    _float_inputs_for_float_nodes(quantized.graph, set(feature_nodes))
    return quantized


def _float_inputs_for_float_nodes(graph: onnx.GraphProto, quantized: set[str]) -> None:
    """Give unquantized consumers of a quantized *input* tensor the FP32 tensor back.

    ``quantize_static`` rewires every consumer of a tensor it quantizes to the ``DequantizeLinear``
    output, so a layer kept FP32 that shares an input with a quantized one (the image feeds ``enc1``
    and ``dec1``'s skip convolution; each encoder output feeds the next encoder layer and a decoder
    skip) would read the 8-bit round trip for nothing. Outputs of quantized convolutions keep their
    Q/DQ pair (ONNX Runtime needs the ``Q`` to fuse ``QLinearConv``; their readers are the FP32
    renormalisation by design).
    """
    produced_by = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.name in quantized or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for i, name in enumerate(node.input):
            dq = produced_by.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = produced_by.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue  # a weight's DQ: initializer input
            source = produced_by.get(q.input[0])
            if source is None or source.name not in quantized:
                node.input[i] = q.input[0]


def optimized_op_counts(path: str | Path, threads: int = 1) -> dict[str, int]:
    """Op types of the graph ONNX Runtime (CPU, all optimizations) actually runs, with counts.

    This is where a ``DequantizeLinear -> Conv -> QuantizeLinear`` group shows up as one integer
    ``QLinearConv`` kernel, or stays a float ``Conv`` when ORT cannot fuse it.
    """
    ort: Any = require("onnxruntime", "runtime")
    with tempfile.TemporaryDirectory(prefix="pconv-ortopt-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3  # the "hardware specific optimizations" notice is expected
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        counts: dict[str, int] = {}
        for node in onnx.load(options.optimized_model_filepath).graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
