"""Build the plugin library (or only the CUDA kernels) with CMake: what ``pconv build-plugin`` runs.

Steps: write ``generated_fields.h`` from :mod:`pconv.plugin_fields`, configure CMake with
the TensorRT include directory and the GPU architectures, build, and copy the library atomically
to its destination (:func:`pconv.plugins.default_library_path` unless told otherwise).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pconv.cliopts import OptionError, check, comma_list, option
from pconv.errors import PconvError
from pconv.fileio import atomic_copy
from pconv.plugins import (
    LIBRARY_NAME,
    default_library_path,
    find_tensorrt_include,
    plugin_source_dir,
    tensorrt_header_version,
    user_cache_dir,
)
from pconv.plugins.gen_header import write_header

DEFAULT_ARCHS = ("80", "90")
_ARCH = re.compile(r"^\d{2,3}[a-z]?$")


@dataclass(frozen=True)
class BuildResult:
    """What a build produced."""

    build_dir: Path
    library: Path | None  # None for --kernels-only
    kernels_archive: Path
    host_check: Path | None  # the kernel's CPU emulator run (built only from a checkout: tests/cpp)
    plugin_check: Path | None  # loads the library and drives its creator on the CPU
    tensorrt_include: Path | None
    tensorrt_version: str | None
    archs: tuple[str, ...]
    seconds: float


def parse_archs(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"80,90"`` -> ``("80", "90")``; raises :class:`OptionError` on anything but SM numbers."""
    items = [a.strip() for a in (text.split(",") if isinstance(text, str) else text) if a.strip()]
    bad = [a for a in items if not _ARCH.match(a)]
    if not items or bad:
        shown = text if isinstance(text, str) else ",".join(text)
        raise OptionError(f"--arch takes SM numbers such as 80,90 (A100, H100); got {shown!r}")
    return tuple(items)


@dataclass
class PluginBuildOptions:
    """Every ``pconv build-plugin`` option (the keyword arguments of :func:`build_plugin`), stated once."""

    tensorrt_include: Path | None = option(
        None,
        metavar="DIR",
        help="directory containing NvInferRuntime.h (default: $TENSORRT_ROOT/include, then system paths)",
    )
    archs: tuple[str, ...] = option(
        DEFAULT_ARCHS,
        flags=("--arch",),
        parse=comma_list,
        metavar="SM,...",
        help="GPU architectures as SM numbers, comma-separated (80: A100, 90: H100)",
    )
    out: Path | None = option(None, metavar="PATH", help="where to write the library (default: see above)")
    kernels_only: bool = option(
        False, help="build only the CUDA kernels and their CPU check (no TensorRT headers needed)"
    )
    jobs: int | None = option(
        None,
        flags=("--jobs", "-j"),
        at_least=1,
        metavar="N",
        help="parallel compile jobs (default: CPU count)",
    )
    build_dir: Path | None = option(
        None,
        metavar="DIR",
        help="CMake build folder (default: plugins/build in a checkout, else ~/.cache/pconv/plugin-build)",
    )
    show_progress: bool = option(True, flags=("--quiet", "-q"), help="no progress bar")

    def __post_init__(self) -> None:
        self.archs = parse_archs(self.archs)
        check(self)


def find_nvcc() -> Path:
    """The CUDA compiler: ``$CUDACXX``, ``nvcc`` on PATH, ``$CUDA_HOME/bin`` or /usr/local/cuda/bin."""
    candidates = [os.environ.get("CUDACXX"), shutil.which("nvcc")]
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            candidates.append(str(Path(home) / "bin" / "nvcc"))
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise PconvError(
        "nvcc (the CUDA toolkit compiler) not found on PATH, in $CUDA_HOME/bin or /usr/local/cuda/bin: "
        "install the CUDA toolkit (12.x or newer) or set CUDACXX=/path/to/nvcc"
    )


def check_programs_dir() -> Path | None:
    """``tests/cpp`` of a source checkout (the C++ check programs), or None for a wheel install."""
    candidate = plugin_source_dir().parent.parent / "tests" / "cpp"
    return candidate if (candidate / "pconv_host_check.cpp").is_file() else None


def find_cuda_include() -> Path:
    """The CUDA toolkit's include directory (``cuda_fp16.h``), for host-compiler builds of the checks."""
    candidates = []
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            candidates.append(Path(home) / "include")
    candidates.append(find_nvcc().resolve().parent.parent / "include")
    for c in candidates:
        if (c / "cuda_fp16.h").is_file():
            return c
    raise PconvError(
        "CUDA headers (cuda_fp16.h) not found in " + ", ".join(map(str, candidates)) + ": set CUDA_HOME"
    )


def find_cmake() -> Path:
    found = shutil.which("cmake")
    if found is None:
        raise PconvError("cmake not found: install CMake >= 3.18 (`pip install cmake` works too)")
    return Path(found)


def default_build_dir() -> Path:
    """``plugins/build`` inside a writable checkout (git-ignored), else the user cache."""
    src = plugin_source_dir()
    return src / "build" if os.access(src, os.W_OK) else user_cache_dir() / "plugin-build"


def _run(cmd: list[str], what: str, env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise PconvError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def build_plugin(options: PluginBuildOptions | None = None, /, **fields_: Any) -> BuildResult:
    """Configure and build with CMake; install ``libpconv_plugin.so`` to ``out`` (or the default path).

    Takes a :class:`PluginBuildOptions`, or its fields as keywords (``archs=("90",), out=...``).
    """
    from tqdm import tqdm

    from pconv import terminal

    opts = options if options is not None else PluginBuildOptions(**fields_)
    archs, kernels_only, out = opts.archs, opts.kernels_only, opts.out
    start = time.perf_counter()
    nvcc = find_nvcc()
    cmake = find_cmake()
    include = None if kernels_only else find_tensorrt_include(opts.tensorrt_include)
    bdir = Path(opts.build_dir) if opts.build_dir is not None else default_build_dir()
    bdir.mkdir(parents=True, exist_ok=True)
    generated = bdir / "generated"
    write_header(generated / "generated_fields.h")

    configure = [
        str(cmake),
        "-S",
        str(plugin_source_dir()),
        "-B",
        str(bdir),
        f"-DCMAKE_CUDA_COMPILER={nvcc}",
        f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(archs)}",
        f"-DPCONV_GENERATED_DIR={generated}",
        f"-DPCONV_KERNELS_ONLY={'ON' if kernels_only else 'OFF'}",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    if include is not None:
        configure.append(f"-DTENSORRT_INCLUDE_DIR={include}")
    if shutil.which("ninja") and not (bdir / "CMakeCache.txt").exists():
        configure += ["-G", "Ninja"]
    # The C++ check programs are test code (tests/cpp in a checkout, absent from a wheel install).
    checks = check_programs_dir()
    if checks is not None:
        configure.append(f"-DPCONV_CHECKS_DIR={checks}")
    targets = ["pconv_kernels"] + (["pconv_host_check"] if checks else [])
    if not kernels_only:
        targets += ["pconv_plugin"] + (["pconv_plugin_check"] if checks else [])
    build = [str(cmake), "--build", str(bdir), "--parallel", str(opts.jobs or os.cpu_count() or 2)]
    build += ["--target", *targets]

    env = dict(os.environ)
    steps = ["configure", "compile", "install"]
    with tqdm(
        total=len(steps),
        desc="pconv build-plugin",
        unit="step",
        disable=not terminal.show_progress(opts.show_progress),
    ) as bar:
        bar.set_postfix_str("cmake configure")
        _run(configure, "CMake configure", env)
        bar.update()
        bar.set_postfix_str("compile " + ",".join(f"sm_{a}" for a in archs))
        _run(build, "CMake build", env)
        bar.update()
        library: Path | None = None
        if not kernels_only:
            bar.set_postfix_str("install")
            built = bdir / LIBRARY_NAME
            if not built.is_file():
                raise PconvError(f"the build finished but {built} is missing")
            library = Path(out) if out is not None else default_library_path()
            atomic_copy(built, library)
        bar.update()
    return BuildResult(
        build_dir=bdir,
        library=library,
        kernels_archive=bdir / "libpconv_kernels.a",
        host_check=bdir / "pconv_host_check" if checks else None,
        plugin_check=None if kernels_only or not checks else bdir / "pconv_plugin_check",
        tensorrt_include=include,
        tensorrt_version=tensorrt_header_version(include) if include is not None else None,
        archs=archs,
        seconds=time.perf_counter() - start,
    )
