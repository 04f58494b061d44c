"""``open_backend``: pick and open the backend for a model file, and read pconv's model metadata.

``.onnx`` opens with ONNX Runtime, ``.engine``/``.plan`` with TensorRT (imported only then). The
metadata check lives here so both backends reject a file that is not a pconv model the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard

import numpy as np

from pconv.contract import (
    BACKENDS,
    CHECKPOINT_SUFFIXES,
    ENGINE_SUFFIXES,
    MASK_CONVENTION,
    META_CONFIG,
    META_FORMAT,
    META_MASK,
    META_MULTIPLE,
    ONNX_FORMAT,
    ONNX_SUFFIXES,
)
from pconv.errors import BackendUnavailableError, ModelLoadError
from pconv.runtime.backend import Backend, ModelInfo
from pconv.trt import tensorrt_available

logger = logging.getLogger("pconv.runtime")

#: Model strings that name a model on a Triton server instead of a file (pconv.runtime.triton_backend).
SERVER_SCHEMES = ("grpc://", "http://")


def check_model_file(path: str | Path) -> Path:
    """The path, after checking it names a non-empty file (the first thing that goes wrong)."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"model file is empty: {path} (an interrupted download or export?)")
    return path


@dataclass(frozen=True)
class _MetadataWording:
    """How metadata errors name the file and the fix, for one kind of model file."""

    not_ours: str  # what the file is not, after its name
    where: str  # where the metadata was read from, for "damaged" errors
    fix: str  # what the user runs to get a usable file


MetadataOrigin = Literal["onnx", "engine"]
_WORDING: dict[str, _MetadataWording] = {
    "onnx": _MetadataWording(
        not_ours="is not a pconv model",
        where="",
        fix="(re-)export the model with `pconv export` (pconv.export.onnx_export.export_onnx)",
    ),
    "engine": _MetadataWording(
        not_ours="was not built from a pconv ONNX model",
        where=" in the sidecar",
        fix="(re-)export the model with `pconv export` and rebuild the engine with `pconv build`",
    ),
}


def model_info_from_metadata(
    meta: Mapping[str, str],
    source: str | Path,
    io_dtype: np.dtype[Any] | type = np.float32,
    *,
    expected_format: str = ONNX_FORMAT,
    origin: MetadataOrigin = "onnx",
    min_shape: tuple[int, int, int] | None = None,
    max_shape: tuple[int, int, int] | None = None,
    fixed_shape: tuple[int, int, int] | None = None,
) -> ModelInfo:
    """Build :class:`ModelInfo` from pconv metadata, or raise :class:`ModelLoadError` if not ours.

    The one check of pconv's ONNX metadata, whether it comes from the ONNX itself (ONNX Runtime)
    or from an engine's sidecar (TensorRT, ``origin="engine"``, which words the fix as a rebuild).
    """
    wording = _WORDING[origin]
    if meta.get(META_FORMAT) != expected_format:
        found = meta.get(META_FORMAT)
        detail = f"its '{META_FORMAT}' is {found!r}" if found else f"it has no '{META_FORMAT}' metadata"
        raise ModelLoadError(f"{source} {wording.not_ours} ({detail}); {wording.fix}")
    try:
        multiple = int(meta[META_MULTIPLE])
        config = json.loads(meta.get(META_CONFIG, "{}"))
    except (KeyError, ValueError) as exc:
        raise ModelLoadError(
            f"{source}: damaged pconv metadata{wording.where} ({exc}); {wording.fix}"
        ) from exc
    convention = meta.get(META_MASK, MASK_CONVENTION)
    if convention != MASK_CONVENTION:
        raise ModelLoadError(
            f"{source} uses mask convention {convention!r}; this runtime expects {MASK_CONVENTION!r} "
            f"(the model comes from another pconv version): {wording.fix}"
        )
    return ModelInfo(
        size_multiple=multiple,
        mask_convention=convention,
        io_dtype=np.dtype(io_dtype),
        config=config if isinstance(config, dict) else {},
        min_shape=min_shape,
        max_shape=max_shape,
        fixed_shape=fixed_shape,
    )


def is_server_url(model: object) -> TypeGuard[str]:
    """True for ``grpc://host:port/MODEL`` or ``http://host:port/MODEL`` (a model on a Triton server)."""
    return isinstance(model, str) and model.lower().startswith(SERVER_SCHEMES)


def open_backend(
    path: str | Path,
    backend: str = "auto",
    device: int = 0,
    providers: Sequence[str] | None = None,
    plugin_library: str | Path | None = None,
    threads: int | None = None,
) -> Backend:
    """Open ``path`` with the right backend (``auto`` decides by file suffix or URL scheme).

    ``threads``: ONNX Runtime intra-op threads (None = ONNX Runtime's default, one per core).
    """
    if is_server_url(path) or backend == "triton":
        from pconv.runtime.triton_backend import TritonBackend

        return TritonBackend(str(path))
    if backend not in BACKENDS:
        raise ModelLoadError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    path = check_model_file(path)
    suffix = path.suffix.lower()
    if backend == "auto":
        if suffix in ONNX_SUFFIXES:
            backend = "onnxruntime"
        elif suffix in ENGINE_SUFFIXES:
            backend = "tensorrt"
        elif suffix in CHECKPOINT_SUFFIXES:
            raise ModelLoadError(
                f"{path.name} looks like a training checkpoint; the runtime runs exported models: "
                f"`pconv export {path} -o model.onnx` (then `pconv build` for a TensorRT engine)"
            )
        else:
            raise ModelLoadError(
                f"cannot tell the model type of {path.name}: use a .onnx file (ONNX Runtime) or a "
                f"{'/'.join(ENGINE_SUFFIXES)} TensorRT engine, or pass backend='onnxruntime'|'tensorrt' "
                "(--backend on the command line)"
            )
    if backend == "onnxruntime":
        from pconv.runtime.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, device=device, providers=providers, threads=threads)
    return _open_tensorrt(path, device, plugin_library)


def _open_tensorrt(path: Path, device: int, plugin_library: str | Path | None) -> Backend:
    if not tensorrt_available():
        raise BackendUnavailableError(
            f"{path.name} is a TensorRT engine but TensorRT is not installed: run "
            "`pip install 'pconv[trt]'` on a machine with an NVIDIA GPU (or use the .onnx model "
            "with ONNX Runtime)"
        )
    try:
        from pconv.runtime.tensorrt_backend import TensorRTBackend
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise BackendUnavailableError(
            f"the TensorRT backend cannot be imported ({missing} missing): run "
            f"`pip install 'pconv[trt]'` ({exc})"
        ) from exc
    backend: Backend = TensorRTBackend(path, device=device, plugin_library=plugin_library)
    return backend
