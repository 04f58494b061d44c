"""Stage 3b, the fused ``pconv::PartialConv2d`` TensorRT plugin: sources, build, where the library is.

Pure Python and stdlib only at import time (no torch, no TensorRT). Where the built library lives is
decided in the core (:mod:`pconv.trt.registry`, re-exported here), so the engine builder and the
runtime find it without importing this stage.

Files of ``csrc/``: ``pconv_kernels.cu``/``.cuh`` (CUDA kernels, plain C launcher API),
``pconv_tile.h`` (the kernel's block body as host+device C++, also run by the CPU check
``tests/cpp/pconv_host_check.cpp``), ``pconv_plugin.cpp`` (TensorRT IPluginV3 glue), ``CMakeLists.txt``; here,
:mod:`pconv.plugins.build` (``pconv build-plugin``) and :mod:`pconv.plugins.torch_harness`
(the same kernels as a PyTorch extension, for GPU tests and benchmarks).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from pconv.errors import PconvError
from pconv.trt.registry import LIBRARY_ENV, LIBRARY_NAME, default_library_path, find_library, user_cache_dir

#: Headers a TensorRT include directory must have for the plugin (IPluginV3 exists since 10.0; its
#: interfaces moved to NvInferPluginBase.h only in 10.6, and NvInferRuntime.h includes it when it exists).
TENSORRT_HEADERS = ("NvInferRuntime.h", "NvInferRuntimePlugin.h", "NvInferVersion.h")
#: Include directories tried after --tensorrt-include and TENSORRT_ROOT (pip wheels ship no headers).
SYSTEM_TENSORRT_INCLUDES = (
    "/usr/include/x86_64-linux-gnu",
    "/usr/include/aarch64-linux-gnu",
    "/usr/include",
    "/usr/local/TensorRT/include",
    "/opt/tensorrt/include",
    "/usr/local/tensorrt/include",
)


class TensorRTHeadersNotFound(PconvError):
    """No directory with the TensorRT headers the plugin needs; the message lists what was tried."""


def plugin_source_dir() -> Path:
    """The folder holding the plugin's C++/CUDA sources and ``CMakeLists.txt``."""
    return Path(__file__).resolve().parent / "csrc"


def _candidate_includes(explicit: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    candidates: list[tuple[str, Path]] = []
    if explicit is not None:
        candidates.append(("--tensorrt-include", Path(explicit).expanduser()))
        return candidates  # an explicit choice is never silently replaced by another directory
    root = os.environ.get("TENSORRT_ROOT")
    if root:
        candidates.append(("TENSORRT_ROOT", Path(root).expanduser() / "include"))
    candidates += [("system", Path(p)) for p in SYSTEM_TENSORRT_INCLUDES]
    return candidates


def _missing(directory: Path, headers: Iterable[str]) -> list[str]:
    return [h for h in headers if not (directory / h).is_file()]


def find_tensorrt_include(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The TensorRT include directory: ``explicit``, else ``$TENSORRT_ROOT/include``, else system paths.

    Raises :class:`TensorRTHeadersNotFound` naming each directory tried and the headers missing there.
    """
    tried: list[str] = []
    for origin, directory in _candidate_includes(explicit):
        missing = _missing(directory, TENSORRT_HEADERS)
        if not missing:
            return directory.resolve()
        what = "does not exist" if not directory.is_dir() else "lacks " + ", ".join(missing)
        tried.append(f"{directory} ({origin}: {what})")
    raise TensorRTHeadersNotFound(
        "TensorRT headers not found; tried " + "; ".join(tried) + ". Install TensorRT's development "
        "headers (the tar/deb 'dev' package; the pip wheel has none) or clone "
        "https://github.com/NVIDIA/TensorRT and pass --tensorrt-include <clone>/include (or set "
        "TENSORRT_ROOT). Use --kernels-only to build the CUDA kernels without TensorRT."
    )


def tensorrt_header_version(include_dir: Path) -> str:
    """``major.minor.patch.build`` read from ``NvInferVersion.h`` (TensorRT 10 and 11 spellings)."""
    import re

    text = (include_dir / "NvInferVersion.h").read_text(errors="replace")
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH", "BUILD"):
        match = re.search(rf"#define\s+(?:NV_TENSORRT_|TRT_){part}(?:_ENTERPRISE)?\s+(\d+)", text)
        if match is None:
            return "unknown"
        parts.append(match.group(1))
    return ".".join(parts)


__all__ = [
    "LIBRARY_ENV",
    "LIBRARY_NAME",
    "TensorRTHeadersNotFound",
    "default_library_path",
    "find_library",
    "find_tensorrt_include",
    "plugin_source_dir",
    "tensorrt_header_version",
    "user_cache_dir",
]
