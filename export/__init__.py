"""Stage 2, ONNX: build the graph from the layer specs (explicit or plugin form), check parity.

Attributes load lazily so that :mod:`pconv.export.plugin_fields` (pure Python) can be imported by
the plugin build without onnx or torch installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "export_onnx": "pconv.export.onnx_export",
    "build_model": "pconv.export.onnx_export",
    "ExportError": "pconv.export.onnx_export",
    "MIN_OPSET": "pconv.export.onnx_export",
    "DEFAULT_OPSET": "pconv.export.onnx_export",
    "check_onnx": "pconv.export.check",
    "CheckReport": "pconv.export.check",
}

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "CheckReport",
    "ExportError",
    "build_model",
    "check_onnx",
    "export_onnx",
]

if TYPE_CHECKING:
    from pconv.export.check import CheckReport, check_onnx
    from pconv.export.onnx_export import DEFAULT_OPSET, MIN_OPSET, ExportError, build_model, export_onnx


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pconv.export' has no attribute {name!r}")
