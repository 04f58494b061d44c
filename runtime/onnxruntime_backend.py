"""ONNX Runtime backend: the portable one (CPU everywhere; CUDA / TensorRT execution providers if present).

Providers are taken in order of preference among those installed: TensorRT EP, CUDA EP, CPU. The
choice is logged once per process (logger ``pconv.runtime``). The model's pconv metadata is read
through ``InferenceSession.get_modelmeta().custom_metadata_map`` -- the ``onnx`` package is never
imported, so a runtime install needs only ``onnxruntime`` (or ``onnxruntime-gpu``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pconv.errors import BackendUnavailableError, InputError, ModelLoadError, PconvError
from pconv.runtime.backend import Backend, ModelInfo, check_model_file, model_info_from_metadata

logger = logging.getLogger("pconv.runtime")

#: Execution providers in order of preference.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_logged: set[tuple[str, ...]] = set()
_log_lock = threading.Lock()
_ORT_DTYPES = {"tensor(float)": np.dtype(np.float32), "tensor(float16)": np.dtype(np.float16)}


def choose_providers(available: Sequence[str], requested: Sequence[str] | None) -> list[str]:
    """The providers to use: ``requested`` (checked), else the preferred ones that are available."""
    if requested is not None:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ModelLoadError(
                f"ONNX Runtime execution provider(s) {missing} are not available here (available: "
                f"{list(available)}); for CUDA/TensorRT install `pip install 'pconv[gpu]'` "
                "(onnxruntime-gpu) instead of onnxruntime"
            )
        return list(requested)
    return [p for p in PREFERRED_PROVIDERS if p in available] or list(available)


class OnnxRuntimeBackend(Backend):
    """Runs a pconv ONNX model with ONNX Runtime (host arrays only: ``run_device`` is refused)."""

    name = "onnxruntime"

    def __init__(
        self,
        model_path: str | Path,
        device: int = 0,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError(
                "ONNX Runtime is not installed: run `pip install onnxruntime` (CPU) or "
                f"`pip install 'pconv[gpu]'` (CUDA / TensorRT execution providers) ({exc})"
            ) from exc
        path = check_model_file(model_path)
        chosen = choose_providers(ort.get_available_providers(), providers)
        provider_args: list[Any] = [
            (p, {"device_id": str(device)}) if p in _GPU_PROVIDERS else p for p in chosen
        ]
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; pconv reports its own problems
        if threads is not None:
            # One session's intra-op pool; inter-op stays 1 (the graph is one chain). Several sessions
            # with 1 thread each (Triton instances) beat one session with many on a small CPU.
            if int(threads) < 1:
                raise ModelLoadError(f"threads must be >= 1 (ONNX Runtime intra-op threads); got {threads}")
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.threads = threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=provider_args)
        except Exception as exc:  # ORT raises its own pybind exception types (InvalidProtobuf, Fail, ...)
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"{path} could not be loaded as an ONNX model ({first_line}); is the file truncated or "
                "not ONNX? Re-export it with `pconv export`"
            ) from exc
        self.providers: tuple[str, ...] = tuple(self.session.get_providers())
        key = self.providers
        with _log_lock:
            if key not in _logged:
                _logged.add(key)
                logger.info("ONNX Runtime providers: %s", ", ".join(self.providers))
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if set(inputs) != {"image", "mask"} or "output" not in outputs:
            # Check the metadata first: a foreign model gets the clearer "not a pconv model" message.
            model_info_from_metadata(meta, path)
            raise ModelLoadError(
                f"{path}: inputs {sorted(inputs)} / outputs {outputs} are not the pconv contract "
                "(inputs image, mask; outputs output, composite); re-export the model"
            )
        image_input = inputs["image"]
        io_dtype = _ORT_DTYPES.get(image_input.type)
        if io_dtype is None:
            raise ModelLoadError(f"{path}: unsupported input type {image_input.type} for 'image'")
        self.output_names = [n for n in ("output", "composite") if n in outputs]
        self.info: ModelInfo = model_info_from_metadata(
            meta, path, io_dtype, **_shape_limits(image_input.shape)
        )
        self.metadata = meta

    def run(self, image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Run one padded batch: ``image`` (N, 3, H, W) in [0, 1], ``mask`` (N, 1, H, W), 1 = valid."""
        if image.ndim != 4 or image.shape[1] != 3 or mask.shape != (image.shape[0], 1, *image.shape[2:]):
            raise InputError(
                f"backend inputs must be image (N,3,H,W) and mask (N,1,H,W); got {image.shape}, {mask.shape}"
            )
        if self.session is None:
            raise PconvError("this ONNX Runtime backend was closed; open a new one")
        feeds = {
            "image": np.ascontiguousarray(image, dtype=self.info.io_dtype),
            "mask": np.ascontiguousarray(mask, dtype=self.info.io_dtype),
        }
        try:
            results = self.session.run(self.output_names, feeds)
        except Exception as exc:
            detail = " ".join(str(exc).split())  # ORT's message spans lines; the CLI prints one
            raise InputError(f"ONNX Runtime failed on inputs of shape {image.shape}: {detail}") from exc
        return dict(zip(self.output_names, results))

    def close(self) -> None:
        self.session = None  # ORT frees the session when the last reference goes


def _shape_limits(shape: Sequence[Any]) -> dict[str, tuple[int, int, int] | None]:
    """Static dims of the ``image`` input as ModelInfo limits (symbolic dims are unbounded).

    Each static dim is its own minimum and maximum, so a graph with only H (or only W) fixed is
    honoured too: images are padded to it in that dimension (or cropped into tiles when larger).
    """
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    n, h, w = dims[0], dims[2], dims[3]
    if n is not None and h is not None and w is not None:
        return {"fixed_shape": (n, h, w)}
    if n is None and h is None and w is None:
        return {}
    big = 1 << 30
    return {"min_shape": (n or 1, h or 1, w or 1), "max_shape": (n or big, h or big, w or big)}
