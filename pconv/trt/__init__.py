"""TensorRT support shared by the engine builder (:mod:`pconv.engine`) and the runtime, below both.

Submodules: :mod:`~pconv.trt.cuda` (checked CUDA runtime calls), :mod:`~pconv.trt.sidecar` (the
engine's JSON sidecar), :mod:`~pconv.trt.registry` (where the plugin library is and loading it),
:mod:`~pconv.trt.log` (TensorRT's logger into Python logging). Importing any of them needs the standard
library only; ``tensorrt`` and ``cuda-python`` are imported when a function needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from pconv.errors import BackendUnavailableError

#: The one command that installs everything TensorRT support needs (on a machine with an NVIDIA GPU).
INSTALL_HINT = "pip install 'pconv[trt]'"


def import_tensorrt() -> Any:
    """The real ``tensorrt`` module, or :class:`BackendUnavailableError` naming the install command.

    ``tensorrt-stubs`` alone installs a ``tensorrt`` folder with only ``.pyi`` files, which
    Python imports as an empty namespace package; that is not TensorRT, so we check for ``Builder``.
    """
    try:
        module = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise BackendUnavailableError(
            f"TensorRT is not installed: run `{INSTALL_HINT}` on a machine with an NVIDIA GPU and "
            f"driver ({exc})"
        ) from exc
    if not hasattr(module, "Builder") or not hasattr(module, "__version__"):
        raise BackendUnavailableError(
            "TensorRT is not installed (only type stubs, e.g. tensorrt-stubs, were found): run "
            f"`{INSTALL_HINT}` on a machine with an NVIDIA GPU and driver"
        )
    return module


def tensorrt_available() -> bool:
    """Whether a real TensorRT (not just its type stubs) can be imported."""
    try:
        import_tensorrt()
    except BackendUnavailableError:
        return False
    return True


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.13.0.35"`` -> ``(10, 13, 0, 35)``; non-numeric tails (``"11.0.0rc1"``) are dropped."""
    parts: list[int] = []
    for piece in text.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts)
