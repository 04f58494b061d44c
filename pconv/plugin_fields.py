"""The ``pconv::PartialConv2d`` node: its attributes, inputs and outputs, defined once.

The ONNX exporter writes these attributes on every plugin-form node; the ONNX function body reads
them through attribute references; the C++ TensorRT plugin declares the same list as its
``PluginField``s through the header that :func:`render_header` generates at plugin build time
(``plugins/generated_fields.h``), and a test checks the committed C++ against this list.

Pure Python: imported by the plugin build without torch or onnx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pconv.config import LayerSpec
from pconv.formula import ACTIVATION_CODES, effective_slope

PLUGIN_NAME = "PartialConv2d"
PLUGIN_DOMAIN = "pconv"
PLUGIN_NAMESPACE = "pconv"
PLUGIN_VERSION = "1"

FieldKind = Literal["int", "ints", "float", "floats"]


@dataclass(frozen=True)
class PluginField:
    """One attribute of the ONNX node, which is also one ``nvinfer1::PluginField``."""

    name: str
    kind: FieldKind
    length: int | None  # fixed element count, or None for variable length (>= 1)
    doc: str

    @property
    def trt_type(self) -> str:
        """The ``nvinfer1::PluginFieldType`` the ONNX parser uses for this attribute kind."""
        return "kINT32" if self.kind in ("int", "ints") else "kFLOAT32"


#: The plugin's fields, in declaration order (also the serialisation order of the C++ plugin).
FIELDS: tuple[PluginField, ...] = (
    PluginField("kernel_shape", "ints", 2, "kernel height, width"),
    PluginField("strides", "ints", 2, "stride along height, width"),
    PluginField("pads", "ints", 4, "ONNX order: top, left, bottom, right"),
    PluginField("dilations", "ints", 2, "dilation along height, width"),
    PluginField("activation", "int", 1, "0 = none, 1 = relu, 2 = leaky_relu"),
    PluginField(
        "activation_alpha",
        "float",
        1,
        "slope for negative values: 0 for relu, 1 for none, the LeakyReLU slope otherwise",
    ),
    PluginField(
        "mask_channel_weights",
        "floats",
        None,
        "feature channels each mask channel stands for; window size = sum * kh * kw",
    ),
)

#: String attributes TensorRT's ONNX parser reads to pick the plugin over the local function.
PARSER_ATTRIBUTES: dict[str, str] = {
    "plugin_namespace": PLUGIN_NAMESPACE,
    "plugin_version": PLUGIN_VERSION,
}

#: Node inputs: masked features (FP32/FP16), masks (FP32, one channel per weight), weight, bias.
INPUTS: tuple[str, ...] = ("features", "mask", "weight", "bias")
#: Node outputs: masked, activated features (feature dtype) and the new single-channel mask (FP32).
OUTPUTS: tuple[str, ...] = ("output", "new_mask")

MAX_MASK_CHANNELS = 4  # the network uses 1 (encoder) or 2 (decoder); the kernel supports up to this


def attributes_for(spec: LayerSpec) -> dict[str, Any]:
    """The plugin-node attribute values for one layer of the network."""
    p = spec.padding
    values: dict[str, Any] = {
        "kernel_shape": [spec.kernel, spec.kernel],
        "strides": [spec.stride, spec.stride],
        "pads": [p, p, p, p],
        "dilations": [spec.dilation, spec.dilation],
        "activation": ACTIVATION_CODES[spec.activation],
        "activation_alpha": effective_slope(spec.activation, spec.negative_slope),
        "mask_channel_weights": [float(w) for w in spec.mask_channel_weights],
    }
    validate(values)
    return values


def validate(values: dict[str, Any]) -> None:
    """Check a set of attribute values against :data:`FIELDS` (names, kinds, lengths)."""
    names = [f.name for f in FIELDS]
    if sorted(values) != sorted(names):
        raise ValueError(f"plugin attributes {sorted(values)} != fields {sorted(names)}")
    for f in FIELDS:
        v = values[f.name]
        if f.kind in ("ints", "floats"):
            if not isinstance(v, list | tuple) or (f.length is not None and len(v) != f.length):
                raise ValueError(f"{f.name}: expected {f.length or 'a list of'} values, got {v!r}")
            if not v or len(v) > (f.length or MAX_MASK_CHANNELS):
                raise ValueError(f"{f.name}: bad length {len(v)}")
        elif isinstance(v, list | tuple):
            raise ValueError(f"{f.name}: expected a scalar, got {v!r}")


def render_header() -> str:
    """C++ header declaring the field list, generated from :data:`FIELDS` at plugin build time."""
    lines = [
        "// Generated from pconv/plugin_fields.py by `pconv build-plugin`. Do not edit.",
        "#pragma once",
        "#include <cstdint>",
        "",
        "namespace pconv {",
        f'constexpr char const* kPluginName = "{PLUGIN_NAME}";',
        f'constexpr char const* kPluginNamespace = "{PLUGIN_NAMESPACE}";',
        f'constexpr char const* kPluginVersion = "{PLUGIN_VERSION}";',
        f"constexpr int32_t kMaxMaskChannels = {MAX_MASK_CHANNELS};",
        f"constexpr int32_t kNumFields = {len(FIELDS)};",
        "",
        "// X(name, trt_type, fixed_length or 0 for variable)",
        "#define PCONV_PLUGIN_FIELDS(X) \\",
    ]
    for i, f in enumerate(FIELDS):
        tail = " \\" if i < len(FIELDS) - 1 else ""
        lines.append(f"    X({f.name}, {f.trt_type}, {f.length or 0}){tail}")
    lines += ["", "}  // namespace pconv", ""]
    return "\n".join(lines)
