"""The one interface every inference backend implements (ONNX Runtime, TensorRT, and yours).

Modelled on Polygraphy's runners: a backend is opened from a model file, says what the graph
accepts (:class:`ModelInfo`), runs padded NCHW batches and is closed once (also as a context
manager). Everything above it (padding, batching, the crop strategy, type conversion) lives in
:mod:`pconv.runtime.inpainter` and is backend-independent.

A new backend subclasses :class:`Backend`, sets ``name`` and ``info`` and implements :meth:`run`
and :meth:`close`; a backend that takes GPU arrays zero-copy also sets ``supports_device = True``
and overrides :meth:`run_device`. Callers never probe for optional methods: the defaults here
say what a backend without that feature does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pconv.errors import DeviceInputError, ModelLoadError
from pconv.metadata import Origin, parse_metadata

_B = TypeVar("_B", bound="Backend")


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs to know about a model, read from its metadata."""

    size_multiple: int
    mask_convention: str  # pconv.contract.MASK_CONVENTION
    io_dtype: np.dtype[Any]  # dtype of the `image`/`mask` inputs and outputs (float32 or float16)
    config: dict[str, Any] = field(default_factory=dict)  # the ModelConfig as a dict
    # Shape limits, (N, H, W) inclusive; None = unbounded (ONNX Runtime) or from the TRT profile.
    min_shape: tuple[int, int, int] | None = None
    max_shape: tuple[int, int, int] | None = None
    fixed_shape: tuple[int, int, int] | None = None  # set when the graph has static N, H, W


def model_info_from_metadata(
    meta: Mapping[str, str],
    source: str | Path,
    io_dtype: np.dtype[Any] | type = np.float32,
    *,
    origin: Origin = "onnx",
    min_shape: tuple[int, int, int] | None = None,
    max_shape: tuple[int, int, int] | None = None,
    fixed_shape: tuple[int, int, int] | None = None,
) -> ModelInfo:
    """:class:`ModelInfo` from pconv metadata (checked by :func:`pconv.metadata.parse_metadata`).

    The metadata comes from the ONNX itself (ONNX Runtime) or from an engine's sidecar (TensorRT,
    ``origin="engine"``, which words the fix as a rebuild); a file that is not ours raises
    :class:`ModelLoadError`.
    """
    facts = parse_metadata(meta, source, origin=origin)
    return ModelInfo(
        size_multiple=facts.size_multiple,
        mask_convention=facts.mask_convention,
        io_dtype=np.dtype(io_dtype),
        config=facts.config,
        min_shape=min_shape,
        max_shape=max_shape,
        fixed_shape=fixed_shape,
    )


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


class Backend(ABC):
    """Runs the exported graph. Inputs are NCHW ``image`` and N1HW ``mask`` (1 = valid).

    ``name``: short identifier (``"onnxruntime"``, ``"tensorrt"``). ``info``: the model's
    :class:`ModelInfo`, set by the constructor. ``providers``: the execution providers in use,
    for backends that have them (empty otherwise). ``supports_device``: whether
    :meth:`run_device` takes GPU arrays.
    """

    name: str = "backend"
    supports_device: bool = False
    info: ModelInfo
    providers: tuple[str, ...] = ()

    @abstractmethod
    def run(self, image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Return ``{"output": ..., "composite": ...}`` as host arrays (NCHW)."""

    def run_device(
        self, image: Any, mask: Any, stream: Any = None, out: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Zero-copy run on GPU arrays (``__cuda_array_interface__``), refused unless ``supports_device``.

        ``stream``: a CUDA stream to enqueue on (return at once); ``out``: preallocated device
        arrays for ``"output"``/``"composite"``. Returns device arrays.
        """
        raise DeviceInputError(
            f"the {self.name} backend cannot take GPU arrays; pass numpy arrays / PIL images, "
            "or use a TensorRT engine (.engine) for zero-copy GPU inputs"
        )

    @abstractmethod
    def close(self) -> None:
        """Release the session / engine and its memory; calling it again does nothing."""

    def describe(self) -> str:
        """``name`` plus the providers in use, for one-line reports: ``onnxruntime (CPU...)``."""
        return self.name + (f" ({', '.join(self.providers)})" if self.providers else "")

    def __enter__(self: _B) -> _B:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
