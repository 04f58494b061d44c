"""``pconv build-plugin``: compile the fused PartialConv2d TensorRT plugin (stdlib-only imports here)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add ``build-plugin`` to the ``pconv`` command line."""
    p = sub.add_parser(
        "build-plugin",
        help="compile the fused PartialConv2d TensorRT plugin library (needs nvcc, CMake, TensorRT headers)",
        description=(
            "Compile libpconv_plugin.so: the fused partial-convolution CUDA kernels and their TensorRT "
            "IPluginV3 glue (pconv::PartialConv2d, version 1). Needs nvcc and CMake, and TensorRT's C++ "
            "headers (not libnvinfer: the library links only the CUDA runtime). Headers are looked for "
            "in --tensorrt-include, then $TENSORRT_ROOT/include, then the system include paths. The "
            "library goes to --out, or $PCONV_PLUGIN_LIBRARY, or the package folder, where `pconv build` "
            "and the runtime find it. Prints the library path."
        ),
    )
    p.add_argument(
        "--tensorrt-include",
        metavar="DIR",
        help="directory containing NvInferRuntime.h (default: $TENSORRT_ROOT/include, then system paths)",
    )
    p.add_argument(
        "--arch",
        default="80,90",
        metavar="SM,...",
        help="GPU architectures as SM numbers, comma-separated (default 80,90: A100 and H100)",
    )
    p.add_argument("--out", type=Path, metavar="PATH", help="where to write the library (default: see above)")
    p.add_argument(
        "--kernels-only",
        action="store_true",
        help="build only the CUDA kernels and their CPU check (no TensorRT headers needed)",
    )
    p.add_argument("--jobs", "-j", type=int, metavar="N", help="parallel compile jobs (default: CPU count)")
    p.add_argument(
        "--build-dir",
        type=Path,
        metavar="DIR",
        help="CMake build folder (default: plugins/build in a checkout, else ~/.cache/pconv/plugin-build)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run_build_plugin)


def run_build_plugin(args: argparse.Namespace) -> int:
    from pconv.plugins.build import build_plugin

    result = build_plugin(
        tensorrt_include=args.tensorrt_include,
        archs=args.arch,
        out=args.out,
        kernels_only=args.kernels_only,
        jobs=args.jobs,
        build_dir=args.build_dir,
        show_progress=not args.quiet,
    )
    archs = ",".join(f"sm_{a}" for a in result.archs)
    if result.library is None:
        print(f"built the CUDA kernels for {archs} in {result.seconds:.1f} s: {result.kernels_archive}")
        print(f"CPU check of the kernel logic: {result.host_check} cases < cases.txt")
        return 0
    print(
        f"built against TensorRT {result.tensorrt_version} headers ({result.tensorrt_include}) "
        f"for {archs} in {result.seconds:.1f} s"
    )
    print(result.library)
    return 0
