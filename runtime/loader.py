"""``open_backend``: pick and open the backend for a model file.

``.onnx`` opens with ONNX Runtime, ``.engine``/``.plan`` with TensorRT. The backend modules are
imported only here and only when chosen; they never import this module (the metadata check they
share is :func:`pconv.metadata.parse_metadata`, through :mod:`pconv.runtime.backend`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeGuard

from pconv.contract import BACKENDS, CHECKPOINT_SUFFIXES, ENGINE_SUFFIXES, ONNX_SUFFIXES
from pconv.errors import BackendUnavailableError, ModelLoadError
from pconv.runtime.backend import Backend, check_model_file
from pconv.trt import tensorrt_available

#: Model strings that name a model on a Triton server instead of a file (pconv.runtime.triton_backend).
SERVER_SCHEMES = ("grpc://", "http://")


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
    if is_server_url(path):
        return _open_triton(path, backend, threads)
    if backend not in BACKENDS:
        raise ModelLoadError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    model = check_model_file(path)
    suffix = model.suffix.lower()
    if backend == "auto":
        if suffix in ONNX_SUFFIXES:
            backend = "onnxruntime"
        elif suffix in ENGINE_SUFFIXES:
            backend = "tensorrt"
        elif suffix in CHECKPOINT_SUFFIXES:
            raise ModelLoadError(
                f"{model.name} looks like a training checkpoint; the runtime runs exported models: "
                f"`pconv export {model} -o model.onnx` (then `pconv build` for a TensorRT engine)"
            )
        else:
            raise ModelLoadError(
                f"cannot tell the model type of {model.name}: use a .onnx file (ONNX Runtime) or a "
                f"{'/'.join(ENGINE_SUFFIXES)} TensorRT engine, or pass backend='onnxruntime'|'tensorrt' "
                "(--backend on the command line)"
            )
    if backend == "onnxruntime":
        from pconv.runtime.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, device=device, providers=providers, threads=threads)
    return _open_tensorrt(model, device, plugin_library)


def _open_triton(url: str, backend: str, threads: int | None) -> Backend:
    """A model on a Triton server: the server chooses the backend and the threads, so asking for
    them here is an error rather than silently ignored."""
    if backend != "auto":
        raise ModelLoadError(
            f"{url} is a model on a Triton server, which runs it on its own backend: leave backend "
            f"'auto' (got {backend!r})"
        )
    if threads is not None:
        raise ModelLoadError(
            f"threads= sets ONNX Runtime threads in this process; {url} runs on the server, whose "
            "threads are set there (`pconv serve --threads N --instances M`)"
        )
    from pconv.runtime.triton_backend import TritonBackend

    return TritonBackend(url)


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
        missing = exc.name or str(exc)
        raise BackendUnavailableError(
            f"the TensorRT backend cannot be imported ({missing} missing): run "
            f"`pip install 'pconv[trt]'` ({exc})"
        ) from exc
    return TensorRTBackend(path, device=device, plugin_library=plugin_library)
