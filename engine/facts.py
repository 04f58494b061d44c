"""Step 1 of ``pconv build``: what the builder needs from the ONNX file, read without TensorRT.

Reading the metadata, the input dims and the plugin nodes with the ``onnx`` package first means a
wrong file or an impossible option fails in one line before TensorRT (slow to import) is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pconv import plugin_fields
from pconv.contract import (
    INPUT_NAMES,
    INT8_TARGETS,
    META_FORM,
    META_INT8_ACTIVATIONS,
    META_IO,
    META_PRECISION,
)
from pconv.engine.errors import BuildError
from pconv.errors import require
from pconv.metadata import parse_metadata


@dataclass(frozen=True)
class OnnxFacts:
    """What the builder needs from the ONNX file, read with the ``onnx`` package (no TensorRT)."""

    path: Path
    metadata: dict[str, str]
    size_multiple: int
    precision: str  # "fp32", "fp16" or "int8": the feature precision of the graph
    io: str  # "fp32" or "fp16": the element type of the inputs/outputs
    form: str  # "explicit" or "plugin"
    fixed_dims: dict[str, int | None]  # "N", "H", "W" -> the static value, or None if dynamic
    plugin_nodes: tuple[str, ...]  # names of the pconv::PartialConv2d nodes
    plugin_nodes_without_namespace: tuple[str, ...]  # those the parser would not map to the plugin
    int8_activations: str | None = None  # int8 exports: "int8" (symmetric) or "uint8" (asymmetric)


def _load(path: Path) -> Any:
    """The ONNX model without its external weights, or a BuildError saying why it is not one."""
    if not path.is_file():
        raise BuildError(f"ONNX file not found: {path}")
    if path.stat().st_size == 0:
        raise BuildError(f"ONNX file is empty: {path}")
    onnx: Any = require("onnx", "export", "the onnx package (needed to read the model's metadata)")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, onnx's own errors: any means "not ONNX"
        raise BuildError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})") from exc


def _fixed_dims(path: Path, graph: Any) -> dict[str, int | None]:
    """``{"N", "H", "W"} -> static value or None`` of the ``image`` input."""
    inputs = {vi.name: vi for vi in graph.input}
    missing = [name for name in INPUT_NAMES if name not in inputs]
    if missing:
        raise BuildError(f"{path} has no input(s) {missing}; re-export it with `pconv export`")
    dims = list(inputs["image"].type.tensor_type.shape.dim)
    if len(dims) != 4:
        raise BuildError(f"{path}: input 'image' must be 4-D (N, 3, H, W), got {len(dims)} dims")
    return {
        axis: int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value > 0 else None
        for axis, dim in zip("NHW", (dims[0], dims[2], dims[3]))
    }


def read_onnx_facts(onnx_path: str | Path) -> OnnxFacts:
    """Check that ``onnx_path`` is a pconv ONNX model and read its metadata, dims and plugin nodes."""
    path = Path(onnx_path)
    model = _load(path)
    checked = parse_metadata({p.key: p.value for p in model.metadata_props}, path, error=BuildError)
    meta, multiple = dict(checked.raw), checked.size_multiple
    fixed = _fixed_dims(path, model.graph)
    plugin_nodes = [
        n
        for n in model.graph.node
        if n.op_type == plugin_fields.PLUGIN_NAME and n.domain == plugin_fields.PLUGIN_DOMAIN
    ]
    without_ns = [n.name for n in plugin_nodes if "plugin_namespace" not in {a.name for a in n.attribute}]
    return OnnxFacts(
        path=path,
        metadata=meta,
        size_multiple=multiple,
        precision=meta.get(META_PRECISION, "fp32"),
        io=meta.get(META_IO, "fp32"),
        form=meta.get(META_FORM, "plugin" if plugin_nodes else "explicit"),
        fixed_dims=fixed,
        plugin_nodes=tuple(n.name for n in plugin_nodes),
        plugin_nodes_without_namespace=tuple(without_ns),
        int8_activations=meta.get(META_INT8_ACTIVATIONS),
    )


def check_precision_facts(facts: OnnxFacts, fp16_flag: bool) -> None:
    """One-line errors for a precision request the ONNX contradicts (no TensorRT needed)."""
    if fp16_flag and facts.precision == "fp16":
        raise BuildError(
            f"{facts.path.name} is already an FP16 ONNX; drop --fp16 (it is built strongly typed)"
        )
    check_int8_facts(facts, fp16_flag)


def check_int8_facts(facts: OnnxFacts, fp16_flag: bool) -> None:
    """One-line errors for an INT8 ONNX TensorRT cannot build as exported (no TensorRT needed)."""
    if facts.precision != "int8":
        return
    if facts.int8_activations != INT8_TARGETS["tensorrt"]:
        raise BuildError(
            f"{facts.path.name} has {facts.int8_activations or 'unknown'} (asymmetric) activations for "
            "ONNX Runtime; TensorRT takes only symmetric int8: re-export with `pconv export CKPT -o "
            "model_int8_trt.onnx --precision int8 --calibration builtin --int8-target tensorrt`"
        )
    if fp16_flag:
        raise BuildError(
            f"{facts.path.name} is an INT8 ONNX: drop --fp16 (it would let TensorRT run the FP32 mask "
            "path in FP16; the INT8 engine keeps it FP32)"
        )
