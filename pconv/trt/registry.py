"""The plugin library: where it lives, and registering its creators with TensorRT once per process.

Where the library is looked for is decided here, in the core, because the engine builder, the
runtime and ``pconv build-plugin`` must agree on it. The default location is next to the plugin's
sources, found with :func:`importlib.util.find_spec` (which locates the ``pconv.plugins`` folder
without importing that stage).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from pconv import plugin_fields
from pconv.errors import PluginLibraryError

logger = logging.getLogger("pconv.tensorrt")

#: File name of the plugin library on Linux.
LIBRARY_NAME = "libpconv_plugin.so"
#: Environment variable that overrides where the library is looked for and written.
LIBRARY_ENV = "PCONV_PLUGIN_LIBRARY"


def user_cache_dir() -> Path:
    """Per-user cache for a library built from a read-only installation."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pconv"


def plugin_package_dir() -> Path | None:
    """The installed ``pconv.plugins`` folder (located, not imported), or None without that stage."""
    spec = importlib.util.find_spec("pconv.plugins")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def default_library_path() -> Path:
    """Where ``pconv build-plugin`` writes the library and where ``pconv build``/the runtime look.

    ``$PCONV_PLUGIN_LIBRARY`` if set; else inside the plugin package (the editable checkout's
    ``plugins/``, git-ignored) when that exists or is writable; else the user cache.
    """
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return Path(override).expanduser()
    package = plugin_package_dir()
    if package is not None:
        packaged = package / LIBRARY_NAME
        if packaged.exists() or os.access(package, os.W_OK):
            return packaged
    return user_cache_dir() / LIBRARY_NAME


def find_library() -> Path | None:
    """The built plugin library if it exists at :func:`default_library_path`, else ``None``."""
    try:
        path = default_library_path()
    except (OSError, ValueError):
        return None
    return path if path.is_file() else None


#: Plugin libraries this process has registered (resolved path -> handle), so loading is idempotent.
_LOADED_LIBRARIES: dict[str, Any] = {}


def plugin_creator_registered(trt_module: Any) -> bool | None:
    """Whether ``pconv::PartialConv2d`` v1 is in TensorRT's registry (None if it cannot tell)."""
    registry = trt_module.get_plugin_registry()
    try:
        creator = registry.get_creator(
            plugin_fields.PLUGIN_NAME, plugin_fields.PLUGIN_VERSION, plugin_fields.PLUGIN_NAMESPACE
        )
    except Exception:  # older bindings raise instead of returning None
        return None
    return creator is not None


def load_plugin_library(trt_module: Any, library: str | Path) -> Any:
    """Register the plugin creators of ``library`` with TensorRT's plugin registry, once per process.

    A library exporting ``getCreators``/``setLoggerFinder`` is loaded through
    ``IPluginRegistry.load_library`` (TensorRT 10+). Registering the same creators twice fails in
    TensorRT, so a library (or creator) already registered in this process is not loaded again.
    Raises :class:`PluginLibraryError`.
    """
    path = Path(library).expanduser()
    if not path.is_file():
        raise PluginLibraryError(
            f"plugin library {path} not found: build it with `pconv build-plugin` or pass the path "
            "of an existing libpconv_plugin .so"
        )
    key = str(path.resolve())
    if key in _LOADED_LIBRARIES:
        return _LOADED_LIBRARIES[key]
    if plugin_creator_registered(trt_module):
        logger.info("pconv::PartialConv2d is already registered; not loading %s again", key)
        _LOADED_LIBRARIES[key] = None
        return None
    registry = trt_module.get_plugin_registry()
    try:
        handle = registry.load_library(key)
    except Exception as exc:  # pybind raises RuntimeError/TypeError depending on the version
        raise PluginLibraryError(f"TensorRT could not load the plugin library {path}: {exc}") from exc
    if handle is None:
        raise PluginLibraryError(
            f"TensorRT could not load the plugin library {path} (see the TensorRT log above); was "
            "it built for this TensorRT major version and CUDA? Rebuild with `pconv build-plugin`"
        )
    if plugin_creator_registered(trt_module) is False:
        raise PluginLibraryError(
            f"{path} loaded but registers no pconv::PartialConv2d version 1 creator: is it the pconv "
            "plugin, built from this pconv version? Rebuild with `pconv build-plugin`"
        )
    _LOADED_LIBRARIES[key] = handle
    return handle
