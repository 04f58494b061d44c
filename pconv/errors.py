"""pconv's one error hierarchy: every class is a :class:`PconvError`, which the CLI prints as one line.

Callers catch the specific class (bad input vs. bad model vs. missing dependency) or just
``PconvError``. Every message says what was wrong and what to do about it. All stages raise these;
:mod:`pconv.runtime` re-exports the ones its users catch.
"""


class PconvError(Exception):
    """A problem the user can fix (bad input, missing file or dependency); the message says how."""


class MissingDependencyError(PconvError, ImportError):
    """An optional dependency is not installed; the message names the exact install command."""


def require(module: str, extra: str, what: str | None = None) -> object:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``pip install 'pconv[extra]'``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        need = what or module
        raise MissingDependencyError(
            f"{need} is not installed: run `pip install 'pconv[{extra}]'` (needed: {module}; {exc})"
        ) from exc


class ModelLoadError(PconvError, ValueError):
    """A model file that is missing, truncated, not ONNX / not an engine, or not a pconv model."""


class BackendUnavailableError(MissingDependencyError):
    """The requested backend's library is not installed (the message names the pip command)."""


class PluginLibraryError(ModelLoadError):
    """The engine needs the pconv TensorRT plugin library and it cannot be found or loaded."""


class EngineIncompatibleError(ModelLoadError):
    """A TensorRT engine built for another GPU or another TensorRT version: rebuild it here."""


class CudaError(PconvError, RuntimeError):
    """A CUDA runtime call failed (no GPU, driver too old, out of memory, ...)."""


class OptionError(PconvError, ValueError):
    """An option with a bad value, or options that do not go together; the message names the flag."""


class InputError(PconvError, ValueError):
    """An image or mask the runtime cannot use (shape, channels, dtype, NaN/Inf, size mismatch)."""


class ImageFileError(InputError):
    """An image or mask file that is missing, empty or not a readable image."""


class DeviceInputError(PconvError, TypeError):
    """GPU-resident inputs given to a backend (or with options) that cannot take them zero-copy."""
