"""The one interface every inference backend implements (ONNX Runtime, TensorRT).

Modelled on Polygraphy's runners: a backend is created from a model file, reports what the
graph accepts, and runs padded NCHW batches. Everything above it (padding, batching, the crop
strategy, type conversion) lives in :mod:`pconv.runtime.inpainter` and is backend-independent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


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


class Backend(Protocol):
    """Runs the exported graph. Inputs are NCHW ``image`` and N1HW ``mask`` (1 = valid)."""

    name: str
    info: ModelInfo

    def run(self, image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Return ``{"output": ..., "composite": ...}`` as host arrays (NCHW)."""
        ...

    def close(self) -> None: ...
