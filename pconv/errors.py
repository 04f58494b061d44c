"""The one exception type the CLI turns into a clear message instead of a traceback."""


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
    """A model file that is missing, truncated, not ONNX / not an engine, or not a pconv model.

    It lives here, not in :mod:`pconv.runtime.errors` (which re-exports it), because the TensorRT
    helpers shared by the engine builder and the runtime (:mod:`pconv.tensorrt_common`) raise it too.
    """


class BackendUnavailableError(MissingDependencyError):
    """The requested backend's library is not installed (the message names the pip command).

    Shared with :mod:`pconv.tensorrt_common` for the same reason as :class:`ModelLoadError`.
    """
