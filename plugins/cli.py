"""``pconv build-plugin``: compile the fused PartialConv2d TensorRT plugin (stdlib-only imports here)."""

from __future__ import annotations

import argparse
from typing import Any

from pconv.cliopts import add_options, from_args
from pconv.plugins.build import PluginBuildOptions


def register(sub: Any) -> None:
    """Add ``build-plugin`` to the ``pconv`` command line (options: :class:`PluginBuildOptions`)."""
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
    add_options(p, PluginBuildOptions)
    p.set_defaults(func=run_build_plugin)


def run_build_plugin(args: argparse.Namespace) -> int:
    from pconv.plugins.build import build_plugin

    result = build_plugin(from_args(PluginBuildOptions, args))
    archs = ",".join(f"sm_{a}" for a in result.archs)
    if result.library is None:
        print(f"built the CUDA kernels for {archs} in {result.seconds:.1f} s: {result.kernels_archive}")
        if result.host_check is not None:
            print(f"CPU check of the kernel logic: {result.host_check} cases < cases.txt")
        return 0
    print(
        f"built against TensorRT {result.tensorrt_version} headers ({result.tensorrt_include}) "
        f"for {archs} in {result.seconds:.1f} s"
    )
    print(result.library)
    return 0
