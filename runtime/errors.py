"""The runtime's error types: each is a :class:`pconv.errors.PconvError`, so the CLI prints one line.

Callers can catch the specific class (bad input vs. bad model vs. missing dependency) or just
``PconvError``. Every message says what was wrong and what to do about it. ``ModelLoadError`` and
``BackendUnavailableError`` are defined in :mod:`pconv.errors` and ``PluginLibraryError`` in
:mod:`pconv.tensorrt_common` (the engine builder raises them too); they are re-exported here.
"""

from __future__ import annotations

from pconv.errors import BackendUnavailableError, MissingDependencyError, ModelLoadError, PconvError
from pconv.tensorrt_common import PluginLibraryError

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


class EngineIncompatibleError(ModelLoadError):
    """A TensorRT engine built for another GPU or another TensorRT version: rebuild it here."""


class DeviceInputError(PconvError, TypeError):
    """GPU-resident inputs given to a backend (or with options) that cannot take them zero-copy."""
