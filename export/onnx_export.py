"""Build the ONNX graph of a :class:`~pconv.training.unet.PConvUNet` directly from its layer specs.

No tracing: every node is written here from :meth:`ModelConfig.layer_specs` and the folded
weights; the wiring is :func:`pconv.network.unet_forward` and the partial-convolution arithmetic
comes from :mod:`pconv.formula` through :class:`~pconv.export.graph.OnnxOps`, so PyTorch, this
graph and the plugin's function body all run the same steps. Two forms:

``explicit``
    Standard ONNX ops. Per layer: the window mask sum is a Conv of the single-channel mask(s)
    with a constant ``(1, K, kh, kw)`` kernel filled with the mask channel weights (never a
    ``C_out x C_in`` ones-convolution); Clip/Max/Div/Mul give the ratio and the new mask; the
    feature Conv has the BatchNorm-folded weight and no bias; ``(raw * ratio + b') * new_mask``
    and the activation follow. Every layer output is already multiplied by its mask, so the next
    layer needs no input masking (nearest upsampling commutes with it). Decoder layers convolve
    the upsampled half of their input on the low-resolution features (``decoder="subpixel"``,
    the default: 2x2 phase convolutions + DepthToSpace, or a ConvTranspose for narrow layers),
    which gives the same result as Resize + Concat + 3x3 Conv (``decoder="resize"``) with 16
    instead of 36 multiply-adds per pixel; the masks are still upsampled with a nearest Resize.

``plugin``
    Each partial convolution is one ``pconv::PartialConv2d`` node (attributes from
    :mod:`pconv.plugin_fields`), and the model carries a local function of that name whose
    body is the explicit math, so ONNX Runtime and ``onnx.reference`` run it with no plugin.

``precision="int8"``
    The explicit FP32 graph, with every decoder layer in phase form (ONNX Runtime fuses QDQ
    ``Conv`` into integer kernels, not ``ConvTranspose``), then QDQ-quantized feature convolutions
    calibrated on real images (:mod:`pconv.export.quantize`); mask path and renormalisation FP32.

Minimum opset: :data:`MIN_OPSET` (``CastLike`` in the function body needs 15; the rest of the
graph needs 13 for ``Clip``/``Resize`` with tensor inputs and ``Unsqueeze`` axes as an input).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper

from pconv import formula, plugin_fields
from pconv._version import __version__
from pconv.config import LayerSpec, ModelConfig
from pconv.contract import (
    IO_TYPES,
    MASK_CONVENTION,
    META_CALIBRATION,
    META_CONFIG,
    META_FORM,
    META_FORMAT,
    META_INT8_ACTIVATIONS,
    META_IO,
    META_MASK,
    META_MULTIPLE,
    META_PRECISION,
    META_VERSION,
    ONNX_FORMAT,
    PRECISIONS,
)
from pconv.errors import PconvError
from pconv.export.graph import FLOAT, FLOAT16, GraphBuilder, OnnxOps, rename_value
from pconv.export.options import DEFAULT_OPSET as DEFAULT_OPSET  # stated there, once (for --help)
from pconv.export.options import MIN_OPSET as MIN_OPSET
from pconv.export.quantize import DECODER_SUM, FEATURE_CONV, PHASE_INTERLEAVE, Int8Options
from pconv.metadata import read_onnx_metadata
from pconv.network import unet_forward
from pconv.training.fold import FoldedLayer, fold_layers

if TYPE_CHECKING:
    from pconv.training.unet import PConvUNet

Form = Literal["explicit", "plugin"]
#: Feature precision of an export (:data:`pconv.contract.PRECISIONS`); ``FloatPrecision`` is what a
#: tensor of the graph can be (int8 exports are an FP32 graph whose feature convolutions are QDQ).
Precision = Literal["fp32", "fp16", "int8"]
FloatPrecision = Literal["fp32", "fp16"]
Decoder = Literal["subpixel", "resize"]

#: Opset of the ``pconv`` custom domain.
PCONV_DOMAIN_VERSION = 1
#: Extra metadata key: element type of the graph inputs/outputs ("fp32"/"fp16").

_ELEM = {"fp32": FLOAT, "fp16": FLOAT16}
_NP = {"fp32": np.float32, "fp16": np.float16}


class ExportError(PconvError, ValueError):
    """The export cannot be done with these options; the message says what to change."""


def _conv_attrs(spec: LayerSpec) -> dict[str, Any]:
    p = spec.padding
    return {
        "kernel_shape": [spec.kernel, spec.kernel],
        "strides": [spec.stride, spec.stride],
        "pads": [p, p, p, p],
        "dilations": [spec.dilation, spec.dilation],
    }


# -- explicit partial convolution -------------------------------------------------------------
#: Nearest ×2 upsampling that matches ``F.interpolate(scale_factor=2, mode="nearest")`` exactly.
_RESIZE_NEAREST = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}

#: Rows: the 4 taps of a stride-2 transposed convolution; columns: the 3 taps of a 3x3 convolution
#: applied after nearest ×2 upsampling (offsets -1, 0, +1). ``conv3x3(up2(h), W)`` equals
#: ``conv_transpose(h, A·W·Aᵀ, stride 2, pads 1)``: the same result with 16 instead of 36
#: multiply-adds per low-resolution pixel, and no upsampled copy of the features.
_SUBPIXEL_TAPS = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=np.float64)
#: Per output phase a (row or column parity): the 2 low-resolution taps, as rows of
#: :data:`_SUBPIXEL_TAPS`. Phase 0 reads offsets (-1, 0), phase 1 reads (0, +1).
_PHASE_TAPS = {0: _SUBPIXEL_TAPS[[3, 1]], 1: _SUBPIXEL_TAPS[[2, 0]]}
#: Below this many output channels the phase convolutions are too narrow for ORT's blocked
#: (NCHWc) kernels and one ConvTranspose is faster (the network's last layer: 3 channels).
_MIN_PHASE_CHANNELS = 16


def subpixel_kernel(weight: np.ndarray) -> np.ndarray:
    """ConvTranspose kernel ``(C_in, C_out, 4, 4)`` for a 3x3, pad-1 conv after nearest ×2 upsampling."""
    a = _SUBPIXEL_TAPS
    return np.einsum("ty,oiyx,sx->iots", a, weight, a)


def phase_kernel(weight: np.ndarray, row_phase: int, col_phase: int) -> np.ndarray:
    """2x2 kernel ``(C_out, C_in, 2, 2)`` giving output pixels (2i + row_phase, 2j + col_phase)."""
    return np.einsum("ty,oiyx,sx->oits", _PHASE_TAPS[row_phase], weight, _PHASE_TAPS[col_phase])


def _upsampled_conv(
    g: GraphBuilder, features: str, weight_up: np.ndarray, dtype: type, *, phases_only: bool = False
) -> str:
    """``conv3x3(nearest_up2(features))`` without materialising the upsampled tensor.

    Wide layers: four 2x2 convolutions on the low-resolution input, one per output phase
    (asymmetric pads pick the taps), interleaved by Concat + DepthToSpace (DCR). Narrow layers:
    one ConvTranspose (``phases_only``: never, since ORT has no integer ConvTranspose kernel). Both
    do 16 instead of 36 multiply-adds per low-resolution pixel.
    """
    if weight_up.shape[0] < _MIN_PHASE_CHANNELS and not phases_only:
        kernel = g.initializer(subpixel_kernel(weight_up).astype(dtype), "weight_up")
        return g.op(
            "ConvTranspose",
            features,
            kernel,
            hint="conv_up",
            tag=FEATURE_CONV,
            kernel_shape=[4, 4],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        )
    phases = []
    for a in (0, 1):
        for b in (0, 1):
            kernel = g.initializer(phase_kernel(weight_up, a, b).astype(dtype), f"weight_up{a}{b}")
            pads = [1 - a, 1 - b, a, b]
            phases.append(
                g.op(
                    "Conv",
                    features,
                    kernel,
                    hint=f"conv_up{a}{b}",
                    tag=FEATURE_CONV,
                    kernel_shape=[2, 2],
                    pads=pads,
                )
            )
    stacked = g.op("Concat", *phases, hint="conv_up_phases", tag=PHASE_INTERLEAVE, axis=1)
    return g.op("DepthToSpace", stacked, hint="conv_up", tag=PHASE_INTERLEAVE, blocksize=2, mode="DCR")


def _subpixel_ok(spec: LayerSpec) -> bool:
    return spec.kernel == 3 and spec.stride == 1 and spec.padding == 1 and spec.dilation == 1


def emit_partial_conv(
    g: GraphBuilder,
    layer: FoldedLayer,
    features: str,
    mask: str,
    precision: FloatPrecision,
    *,
    skip: str | None = None,
    decoder: Decoder = "subpixel",
    phases_only: bool = False,
) -> tuple[str, str]:
    """Explicit ops for one layer: returns (masked activated features, new FP32 mask (N,1,H',W')).

    Encoder layers take ``features`` (already masked) and ``mask`` at the layer's input size.
    Decoder layers take the low-resolution ``features`` and the ``skip`` features, plus the
    concatenated FP32 masks (N, 2, H, W) at full size; with ``decoder="subpixel"`` the upsampled
    part of the convolution runs on the low-resolution input (:func:`_upsampled_conv`) and is
    added to the skip part's convolution, otherwise a nearest Resize and a Concat precede one Conv.
    Feature convolutions are tagged :data:`FEATURE_CONV` (what an INT8 export quantizes).
    """
    spec = layer.spec
    ops = OnnxOps(g)
    attrs = _conv_attrs(spec)
    weights = np.asarray(spec.mask_channel_weights, dtype=np.float32).reshape(1, -1, 1, 1)
    box = np.broadcast_to(weights, (1, len(spec.mask_channel_weights), spec.kernel, spec.kernel))
    box_name = g.initializer(box.astype(np.float32), "mask_kernel")
    mask_sum = g.op("Conv", mask, box_name, hint="mask_sum", **attrs)
    ratio, new_mask = formula.mask_ratio(mask_sum, float(spec.window_size), ops)
    dtype = _NP[precision]
    if skip is None:
        raw = g.op(
            "Conv",
            features,
            g.initializer(layer.weight.astype(dtype), "weight"),
            hint="conv",
            tag=FEATURE_CONV,
            **attrs,
        )
    elif decoder == "subpixel" and _subpixel_ok(spec):
        c_up = spec.mask_channel_weights[0]
        w_skip = g.initializer(layer.weight[:, c_up:].astype(dtype), "weight_skip")
        skip_raw = g.op("Conv", skip, w_skip, hint="conv_skip", tag=FEATURE_CONV, **attrs)
        up_raw = _upsampled_conv(g, features, layer.weight[:, :c_up], dtype, phases_only=phases_only)
        raw = g.op("Add", skip_raw, up_raw, hint="conv", tag=DECODER_SUM)
    else:
        scales = g.shared_initializer(np.array([1.0, 1.0, 2.0, 2.0], dtype=np.float32), "up_scales")
        up = g.op("Resize", features, "", scales, hint="up", **_RESIZE_NEAREST)
        cat = g.op("Concat", up, skip, hint="concat", axis=1)
        weight = g.initializer(layer.weight.astype(dtype), "weight")
        raw = g.op("Conv", cat, weight, hint="conv", tag=FEATURE_CONV, **attrs)
    b_name = g.initializer(layer.bias.astype(dtype).reshape(1, -1, 1, 1), "bias")
    y = formula.renormalize(raw, ops.cast_like(ratio, raw), ops.cast_like(new_mask, raw), b_name, ops)
    return formula.activate(y, spec.activation, spec.negative_slope, ops), new_mask


# -- plugin form ------------------------------------------------------------------------------
def _ref(name: str, attr_type: int) -> onnx.AttributeProto:
    """An attribute of a function-body node that refers to the function's attribute ``name``."""
    attr = onnx.AttributeProto()
    attr.name = name
    attr.ref_attr_name = name
    attr.type = attr_type  # type: ignore[assignment]
    return attr


def _ref_as(attr_name: str, ref: str, attr_type: int) -> onnx.AttributeProto:
    attr = _ref(ref, attr_type)
    attr.name = attr_name
    return attr


def build_plugin_function(opset: int) -> onnx.FunctionProto:
    """The model-local ``pconv::PartialConv2d`` function: the explicit math, driven by attributes.

    The window size ``sum(mask_channel_weights) · kh · kw`` and the ``(1, K, kh, kw)`` mask kernel
    are computed in the body from the attributes; the activation is one PRelu whose slope is
    ``activation_alpha`` (see :func:`pconv.formula.effective_slope`).
    """
    ints, floats, flt = onnx.AttributeProto.INTS, onnx.AttributeProto.FLOATS, onnx.AttributeProto.FLOAT
    g = GraphBuilder(function=True)
    features, mask, weight, bias = (g.reserve(n) for n in plugin_fields.INPUTS)
    g.dtypes[mask] = FLOAT
    ops = OnnxOps(g)
    conv_refs = {
        "kernel_shape": _ref("kernel_shape", ints),
        "strides": _ref("strides", ints),
        "pads": _ref("pads", ints),
        "dilations": _ref("dilations", ints),
    }
    # Constant's `value_ints`/`value_floats` refer to the function's attributes.
    kernel_hw = g.op(
        "Constant",
        hint="kernel_hw",
        dtype=TensorProto.INT64,
        value_ints=_ref_as("value_ints", "kernel_shape", ints),
    )
    channel_w = g.op(
        "Constant",
        hint="mask_channel_weights",
        dtype=FLOAT,
        value_floats=_ref_as("value_floats", "mask_channel_weights", floats),
    )
    one = g.initializer(np.array([1], dtype=np.int64), "one")
    k_count = g.op("Shape", channel_w, hint="mask_channels", dtype=TensorProto.INT64)
    box_shape = g.op("Concat", one, k_count, kernel_hw, hint="mask_kernel_shape", axis=0)
    ones = g.op(
        "ConstantOfShape",
        box_shape,
        hint="ones",
        dtype=FLOAT,
        value=helper.make_tensor("one", FLOAT, [1], [1.0]),
    )
    w_shape = g.initializer(np.array([1, -1, 1, 1], dtype=np.int64), "weights_shape")
    box = g.op("Mul", ones, g.op("Reshape", channel_w, w_shape, hint="weights_4d"), hint="mask_kernel")
    mask_sum = g.op("Conv", mask, box, hint="mask_sum", **conv_refs)
    taps = g.op(
        "Cast", g.op("ReduceProd", kernel_hw, hint="taps_i", keepdims=0), hint="taps", to=FLOAT, dtype=FLOAT
    )
    window = g.op("Mul", g.op("ReduceSum", channel_w, hint="channels", keepdims=0), taps, hint="window_size")
    ratio, new_mask = formula.mask_ratio(mask_sum, window, ops)
    raw = g.op("Conv", features, weight, hint="conv", **conv_refs)
    axes = g.initializer(np.array([0, 2, 3], dtype=np.int64), "bias_axes")
    bias_4d = g.op("Unsqueeze", bias, axes, hint="bias_4d")
    y = formula.renormalize(raw, ops.cast_like(ratio, raw), ops.cast_like(new_mask, raw), bias_4d, ops)
    # One PRelu with slope = activation_alpha covers none/relu/leaky_relu. (LeakyRelu with a
    # referenced `alpha` is the same math, but onnx.reference cannot run unary ops with attribute
    # references, and the function must run there unmodified.)
    slope = g.op(
        "Constant", hint="slope", dtype=FLOAT, value_float=_ref_as("value_float", "activation_alpha", flt)
    )
    out = g.op("PRelu", y, ops.cast_like(slope, y), hint="activate")
    rename_value(g.nodes, out, plugin_fields.OUTPUTS[0])
    rename_value(g.nodes, new_mask, plugin_fields.OUTPUTS[1])
    attribute_names = [f.name for f in plugin_fields.FIELDS] + list(plugin_fields.PARSER_ATTRIBUTES)
    return helper.make_function(
        plugin_fields.PLUGIN_DOMAIN,
        plugin_fields.PLUGIN_NAME,
        list(plugin_fields.INPUTS),
        list(plugin_fields.OUTPUTS),
        g.nodes,
        [helper.make_opsetid("", opset)],
        attributes=attribute_names,
        doc_string="Partial convolution (Liu et al. 2018): masked conv, renormalise, bias, mask, activate.",
    )


def emit_plugin_node(
    g: GraphBuilder, layer: FoldedLayer, features: str, mask: str, precision: FloatPrecision
) -> tuple[str, str]:
    """One ``pconv::PartialConv2d`` node for the layer (weights and bias as initializers)."""
    w_name = g.initializer(layer.weight.astype(_NP[precision]), "weight")
    b_name = g.initializer(layer.bias.astype(_NP[precision]), "bias")
    attrs = dict(plugin_fields.attributes_for(layer.spec))
    attrs.update(plugin_fields.PARSER_ATTRIBUTES)
    out, new_mask = g.node(
        plugin_fields.PLUGIN_NAME,
        [features, mask, w_name, b_name],
        hint="pconv",
        outputs=2,
        domain=plugin_fields.PLUGIN_DOMAIN,
        **attrs,
    )
    g.dtypes[out] = _ELEM[precision]
    g.dtypes[new_mask] = FLOAT
    return out, new_mask


# -- the whole network ------------------------------------------------------------------------
def _dims(batch: int | None, height: int | None, width: int | None) -> tuple[Any, Any, Any]:
    return (batch or "N", height or "H", width or "W")


def build_model(
    model: PConvUNet,
    *,
    form: Form = "explicit",
    precision: Precision = "fp32",
    io: FloatPrecision = "fp32",
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    height: int | None = None,
    width: int | None = None,
    decoder: Decoder = "subpixel",
    int8: Int8Options | None = None,
) -> onnx.ModelProto:
    """The ONNX model of ``model`` (eval-mode statistics), checked by ``onnx.checker``.

    ``precision="int8"`` calibrates on ``int8`` (default :class:`Int8Options`: the builtin photos)
    and QDQ-quantizes the feature convolutions (:mod:`pconv.export.quantize`).
    """
    config: ModelConfig = model.config
    _validate_options(config, form, precision, io, opset, batch, height, width)
    if precision != "int8":
        return _build_graph(model, form, precision, io, opset, batch, height, width, decoder)[0]
    from pconv.export.quantize import (
        calibration_record,
        calibration_samples,
        calibration_shape,
        fp32_layers,
        quantize_feature_convs,
        quantized_nodes,
    )

    options = int8 or Int8Options()
    keep_fp32 = fp32_layers(options, [spec.name for spec in model.specs])
    feeds = calibration_samples(config, options, height, width)  # validates the options first
    float_model, tagged = _build_graph(
        model, form, "fp32", io, opset, batch, height, width, decoder, fp32_layers=keep_fp32
    )
    nodes = quantized_nodes(tagged, keep_fp32)
    quantized = quantize_feature_convs(float_model, nodes, feeds, options.target)
    quantized.doc_string = float_model.doc_string.replace("fp32", "int8 (QDQ feature convolutions)")
    quantized.producer_name, quantized.producer_version = float_model.producer_name, __version__
    props = {p.key: p.value for p in float_model.metadata_props}
    props[META_PRECISION] = "int8"
    props[META_INT8_ACTIVATIONS] = options.activation_type
    shape = calibration_shape(config, options, height, width)
    props[META_CALIBRATION] = calibration_record(options, shape, keep_fp32)
    del quantized.metadata_props[:]
    helper.set_model_props(quantized, props)
    return quantized


@dataclass(frozen=True)
class _Upsampled:
    """A nearest ×2 upsampling not emitted yet: the decoder layer reading it decides how to emit it."""

    source: str


#: A value of the network walk: an ONNX value name, or a deferred upsampling of one.
_Value = str | _Upsampled


def _name(value: _Value) -> str:
    if isinstance(value, _Upsampled):
        raise TypeError(f"upsampled {value.source!r} must be read by a decoder layer")
    return value


class _OnnxNetwork:
    """:class:`pconv.network.NetworkOps` that writes the graph's nodes, one scope per layer.

    Upsampling is deferred into the decoder layer that reads it, so the explicit subpixel form
    convolves the low-resolution features directly (no Resize of them at all) and every node lands
    in its layer's scope (mask Resize and Concat first, then the features). Masks are FP32 and
    concatenated into one (N, 2, H, W) input per decoder layer; features are masked at the input,
    then stay masked (every layer multiplies its output by its new mask).
    """

    def __init__(
        self,
        g: GraphBuilder,
        config: ModelConfig,
        folded: list[FoldedLayer],
        form: Form,
        precision: FloatPrecision,
        decoder: Decoder,
        fp32_layers: tuple[str, ...] | None,
    ) -> None:
        self.g, self.form, self.precision = g, form, precision
        self.layers = {layer.spec.name: layer for layer in folded}
        self.decoder, self.fp32_layers = decoder, fp32_layers
        g.scope = "input"  # the FP32 normalisation constants, and the Resize scales every layer shares
        self.mean = g.initializer(np.asarray(config.mean, dtype=np.float32).reshape(1, 3, 1, 1), "mean")
        self.std = g.initializer(np.asarray(config.std, dtype=np.float32).reshape(1, 3, 1, 1), "std")
        self.scales = g.shared_initializer(np.array([1.0, 1.0, 2.0, 2.0], dtype=np.float32), "up_scales")

    def normalize(self, image: _Value, mask: _Value) -> tuple[_Value, _Value]:
        """Mask path in FP32; normalisation in FP32, then one cast to the feature precision."""
        g = self.g
        g.scope = "input"
        mask32 = g.cast(_name(mask), FLOAT)
        image32 = g.cast(_name(image), FLOAT)
        normalized = g.op(
            "Div", g.op("Sub", image32, self.mean, hint="centered"), self.std, hint="normalized"
        )
        x0 = g.cast(g.op("Mul", normalized, mask32, hint="masked"), _ELEM[self.precision])
        return x0, mask32

    def upsample2x(self, x: _Value) -> _Value:
        return _Upsampled(_name(x))

    def _resized(self, value: _Value, hint: str) -> str:
        """``value`` as a graph value: a deferred upsampling becomes a nearest Resize here."""
        if isinstance(value, _Upsampled):
            return self.g.op("Resize", value.source, "", self.scales, hint=hint, **_RESIZE_NEAREST)
        return value

    def _concat(self, parts: Sequence[_Value], up_hint: str, hint: str) -> str:
        if len(parts) == 1:
            return self._resized(parts[0], up_hint)
        return self.g.op("Concat", *(self._resized(p, up_hint) for p in parts), hint=hint, axis=1)

    def layer(
        self, spec: LayerSpec, features: Sequence[_Value], masks: Sequence[_Value]
    ) -> tuple[_Value, _Value]:
        g, layer = self.g, self.layers[spec.name]
        g.scope = spec.name
        mask = self._concat(masks, "up_mask", "concat_mask")
        if self.form == "plugin":
            return emit_plugin_node(g, layer, self._concat(features, "up", "concat"), mask, self.precision)
        if len(features) == 1:
            return emit_partial_conv(g, layer, _name(features[0]), mask, self.precision)
        up, skip = features
        if not isinstance(up, _Upsampled):
            raise TypeError(f"{spec.name}: the first decoder part must be the upsampled features")
        return emit_partial_conv(
            g,
            layer,
            up.source,
            mask,
            self.precision,
            skip=_name(skip),
            decoder=self.decoder,
            phases_only=self.fp32_layers is not None and spec.name not in self.fp32_layers,
        )

    def denormalize(self, y: _Value) -> _Value:
        self.g.scope = "output"
        y32 = self.g.cast(_name(y), FLOAT)
        return self.g.op("Add", self.g.op("Mul", y32, self.std, hint="scaled"), self.mean, hint="output32")


def _build_graph(
    model: PConvUNet,
    form: Form,
    precision: FloatPrecision,
    io: FloatPrecision,
    opset: int,
    batch: int | None,
    height: int | None,
    width: int | None,
    decoder: Decoder,
    *,
    fp32_layers: tuple[str, ...] | None = None,
) -> tuple[onnx.ModelProto, dict[str, list[str]]]:
    """The float graph and its tagged node names.

    ``fp32_layers`` (INT8 exports): every other layer is written without ConvTranspose, which ONNX
    Runtime has no integer kernel for; those stay as in FP32 (narrow ones are faster transposed).
    """
    config: ModelConfig = model.config
    io_t = _ELEM[io]
    g = GraphBuilder()
    n, h, w = _dims(batch, height, width)
    image = g.reserve("image", io_t)
    mask = g.reserve("mask", io_t)
    out_name = g.reserve("output", io_t)
    comp_name = g.reserve("composite", io_t)

    folded = fold_layers(model)
    net = _OnnxNetwork(g, config, folded, form, precision, decoder, fp32_layers)
    out32 = _name(unet_forward([layer.spec for layer in folded], image, mask, net))
    if io_t == FLOAT:
        rename_value(g.nodes, out32, out_name)
    else:
        g.node("Cast", [out32], outputs=[out_name], to=io_t, dtype=io_t)
    # composite = M·image + (1 − M)·output, in I/O precision (exactly the input where M = 1).
    keep = g.op("Mul", mask, image, hint="kept")
    hole = g.op("Sub", g.scalar(1.0, io_t), mask, hint="hole")
    filled = g.op("Mul", hole, out_name, hint="filled")
    g.node("Add", [keep, filled], outputs=[comp_name])

    def value(name: str, channels: int) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, io_t, [n, channels, h, w])

    graph = helper.make_graph(
        g.nodes,
        "pconv_unet",
        [value(image, 3), value(mask, 1)],
        [value(out_name, 3), value(comp_name, 3)],
        initializer=g.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    functions = []
    if form == "plugin":
        opsets.append(helper.make_opsetid(plugin_fields.PLUGIN_DOMAIN, PCONV_DOMAIN_VERSION))
        functions.append(build_plugin_function(opset))
    ir_version = max(8, helper.find_min_ir_version_for(opsets, ignore_unknown=True))
    onnx_model = helper.make_model(
        graph,
        opset_imports=opsets,
        functions=functions,
        ir_version=ir_version,
        producer_name="pconv",
        producer_version=__version__,
        doc_string=f"Partial-convolution U-Net (depth {config.depth}), {form} form, {precision}",
    )
    helper.set_model_props(
        onnx_model,
        {
            META_FORMAT: ONNX_FORMAT,
            META_CONFIG: config.to_json(),
            META_VERSION: __version__,
            META_MULTIPLE: str(config.size_multiple),
            META_MASK: MASK_CONVENTION,
            META_FORM: form,
            META_PRECISION: precision,
            META_IO: io,
        },
    )
    return onnx_model, g.tagged


def _validate_options(
    config: ModelConfig,
    form: str,
    precision: str,
    io: str,
    opset: int,
    batch: int | None,
    height: int | None,
    width: int | None,
) -> None:
    if form not in ("explicit", "plugin"):
        raise ExportError(f"form must be 'explicit' or 'plugin', got {form!r}")
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if io not in IO_TYPES:
        raise ExportError(f"io must be one of {', '.join(IO_TYPES)}, got {io!r}")
    if precision == "int8" and form == "plugin":
        raise ExportError(
            "--precision int8 needs --form explicit: the PartialConv2d plugin runs FP16/FP32 only "
            "(export the plugin form with --precision fp16)"
        )
    if precision == "int8" and io != "fp32":
        raise ExportError("--precision int8 keeps FP32 inputs and outputs: drop --io fp16")
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ExportError(
            f"opset {opset} is too old: the export uses CastLike (opset 15) in the plugin function and "
            f"Resize/Clip/Unsqueeze with tensor inputs (opset 13); use --opset {MIN_OPSET} or newer "
            f"(default {DEFAULT_OPSET})"
        )
    if opset > newest:
        raise ExportError(f"opset {opset} is newer than this onnx package supports ({newest})")
    if batch is not None and batch < 1:
        raise ExportError(f"batch must be >= 1, got {batch}")
    m = config.size_multiple
    for label, size in (("height", height), ("width", width)):
        if size is not None and (size <= 0 or size % m):
            raise ExportError(
                f"{label} {size} is not a positive multiple of 2^depth = {m} (depth {config.depth}); "
                f"pick e.g. {max(m, (size // m) * m) if size > 0 else m}, or leave it dynamic"
            )


def load_source(source: PConvUNet | str | Path) -> PConvUNet:
    """A model in eval mode, from a model object or a checkpoint path or ``"default"`` (the shipped
    checkpoint, as ``pconv train --finetune default``); a clear error otherwise."""
    from pconv.training.unet import PConvUNet

    if isinstance(source, PConvUNet):
        return source
    if isinstance(source, str | Path):
        from pconv.models import resolve_checkpoint
        from pconv.training.checkpoint import load_checkpoint

        return load_checkpoint(resolve_checkpoint(source))
    raise ExportError(f"expected a PConvUNet, a checkpoint path or 'default', got {type(source).__name__}")


def export_onnx(
    source: PConvUNet | str | Path,
    output: str | Path,
    *,
    form: Form = "explicit",
    precision: Precision = "fp32",
    io: FloatPrecision = "fp32",
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    height: int | None = None,
    width: int | None = None,
    decoder: Decoder = "subpixel",
    int8: Int8Options | None = None,
) -> Path:
    """Export ``source`` (a model or a checkpoint path) to ``output``, written atomically.

    The model is exported with its eval-mode BatchNorm statistics whatever its current mode.
    The graph passes ``onnx.checker.check_model(full_check=True)`` before it is written.
    """
    from pconv.fileio import atomic_write

    model = load_source(source)
    onnx_model = build_model(
        model,
        form=form,
        precision=precision,
        io=io,
        opset=opset,
        batch=batch,
        height=height,
        width=width,
        decoder=decoder,
        int8=int8,
    )
    try:
        onnx.checker.check_model(onnx_model, full_check=True)
    except onnx.checker.ValidationError as exc:  # a bug in the exporter, not a user error
        raise RuntimeError(f"exported graph failed onnx.checker: {exc}") from exc
    output = Path(output)
    atomic_write(output, lambda tmp: onnx.save_model(onnx_model, tmp))
    return output


def summarize(path: str | Path) -> dict[str, Any]:
    """What ``pconv export`` prints: form, precision, node counts, size, dynamic dims."""
    m = onnx.load(str(path), load_external_data=False)
    props = read_onnx_metadata(path)
    ops: dict[str, int] = {}
    for node in m.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    image = m.graph.input[0].type.tensor_type.shape.dim
    dims = [d.dim_param for d in image if d.dim_param]  # in N, C, H, W order
    return {
        "form": props.get(META_FORM),
        "precision": props.get(META_PRECISION),
        "io": props.get(META_IO),
        "opset": next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")),
        "nodes": len(m.graph.node),
        "ops": dict(sorted(ops.items())),
        "size_bytes": Path(path).stat().st_size,
        "input_shape": [d.dim_param or d.dim_value for d in image],
        "dynamic_dims": dims,
        "config": json.loads(props.get(META_CONFIG, "{}")),
        "int8_activations": props.get(META_INT8_ACTIVATIONS),
        "calibration": props.get(META_CALIBRATION),
    }
