"""Stage 4, inference without torch: :class:`Inpainter` over ONNX Runtime or TensorRT.

Importing this package needs numpy only; the backend library (``onnxruntime`` or ``tensorrt``) is
imported when a model is opened. torch and onnx are never imported.

>>> from pconv.runtime import Inpainter
>>> result = Inpainter("model.onnx")(image, mask)   # mask: non-zero = hole

Modules: ``backend`` (the :class:`Backend` base class every backend subclasses, and
:class:`ModelInfo`), ``loader`` (:func:`open_backend`, which imports a backend only when chosen),
``onnxruntime_backend`` and ``tensorrt_backend`` (the two backends), ``sidecar`` (the TensorRT
engine sidecar policy), ``device_arrays`` (``__cuda_array_interface__`` views, owned GPU memory),
``imageio``, ``strategy``, ``inpainter``, ``options`` (the inpaint/bench options) and ``cli``.
"""

from __future__ import annotations

from pconv.errors import (
    BackendUnavailableError,
    DeviceInputError,
    EngineIncompatibleError,
    ImageFileError,
    InputError,
    MissingDependencyError,
    ModelLoadError,
    PconvError,
    PluginLibraryError,
)
from pconv.runtime.backend import Backend, ModelInfo
from pconv.runtime.inpainter import Inpainter, NoHoleWarning
from pconv.runtime.loader import open_backend
from pconv.runtime.triton_backend import ServerBusyError, ServerUnavailableError

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "DeviceInputError",
    "EngineIncompatibleError",
    "ImageFileError",
    "Inpainter",
    "InputError",
    "MissingDependencyError",
    "ModelInfo",
    "ModelLoadError",
    "NoHoleWarning",
    "PconvError",
    "PluginLibraryError",
    "ServerBusyError",
    "ServerUnavailableError",
    "open_backend",
]
