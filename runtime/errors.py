"""The runtime's error types: each is a :class:`pconv.errors.PconvError`, so the CLI prints one line.

Callers can catch the specific class (bad input vs. bad model vs. missing dependency) or just
``PconvError``. Every message says what was wrong and what to do about it.
"""

from __future__ import annotations

from pconv.errors import MissingDependencyError, PconvError

__all__ = [
    "BackendUnavailableError",
    "DeviceInputError",
    "EngineIncompatibleError",
    "ImageFileError",
    "InputError",
    "MissingDependencyError",
    "ModelLoadError",
    "PconvError",
    "PluginLibraryError",
]


class InputError(PconvError, ValueError):
    """An image or mask the runtime cannot use (shape, channels, dtype, NaN/Inf, size mismatch)."""


class ImageFileError(InputError):
    """An image or mask file that is missing, empty or not a readable image."""


class ModelLoadError(PconvError, ValueError):
    """A model file that is missing, truncated, not ONNX / not an engine, or not a pconv model."""


class EngineIncompatibleError(ModelLoadError):
    """A TensorRT engine built for another GPU or another TensorRT version: rebuild it here."""


class PluginLibraryError(ModelLoadError):
    """The engine needs the pconv TensorRT plugin library and it cannot be found or loaded."""


class BackendUnavailableError(MissingDependencyError):
    """The requested backend's library is not installed (the message names the pip command)."""


class DeviceInputError(PconvError, TypeError):
    """GPU-resident inputs given to a backend (or with options) that cannot take them zero-copy."""
