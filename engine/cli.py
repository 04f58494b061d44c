"""``pconv build``: a TensorRT engine (and its ``.json`` sidecar) from an exported ONNX model.

Only the standard library is imported here; TensorRT, onnx and cuda-python are imported when the
command runs, so ``pconv --help`` works on any install.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pconv.contract import nhw_arg

DESCRIPTION = """\
Build a TensorRT engine from a pconv ONNX model (pconv export) on this machine's GPU.

Precision follows the ONNX: an FP16 export (pconv export --precision fp16) gives a strongly typed
FP16 engine (the only FP16 route on TensorRT 11), an FP32 export an FP32 engine; on TensorRT 10.x
--fp16 also builds an FP32 export with the FP16 builder flag. An INT8 export made for TensorRT
(pconv export --precision int8 --int8-target tensorrt: QDQ, symmetric int8) is built with explicit
quantization (10.x: INT8 builder flag; 11.x: strongly typed), its mask path FP32; the plugin form
stays FP16/FP32. For a plugin-form export the
package's PartialConv2d plugin library is loaded before parsing (when built: pconv build-plugin),
so TensorRT >= 10.7 maps each PartialConv2d node to the fused plugin; otherwise the nodes' explicit
ONNX function bodies are used. Writes ENGINE and ENGINE.json (metadata the runtime reads).

Needs TensorRT 10+ and an NVIDIA GPU: pip install 'pconv[trt]'."""

EPILOG = """\
examples:
  pconv build model.onnx -o model.engine
  pconv build model_fp16.onnx -o model.engine --min 1x256x256 --opt 8x512x512 --max 16x1024x1024
  pconv build model.onnx -o model.engine --timing-cache ~/.cache/pconv/timing.cache --verbose"""


def register(sub: Any) -> None:
    """Add ``pconv build`` to the top-level subparsers."""
    p = sub.add_parser(
        "build",
        help="build a TensorRT engine from an exported ONNX model (needs TensorRT and a GPU)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("onnx", type=Path, help="the pconv ONNX model (from `pconv export`)")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="engine file to write (default: the ONNX path with .engine); ENGINE.json is written too",
    )
    shapes = p.add_argument_group(
        "profile",
        "NxHxW (batch x height x width) of the image/mask inputs; H and W must be multiples of the "
        "model's size multiple (2^depth). A missing --min/--max takes --opt; with none given, static "
        "ONNX dims are used and dynamic ones get 1xMxM .. 1x512x512 .. 1x1024x1024 (M = multiple).",
    )
    shapes.add_argument("--min", type=nhw_arg, default=None, metavar="NxHxW", help="smallest shape")
    shapes.add_argument(
        "--opt", type=nhw_arg, default=None, metavar="NxHxW", help="shape to tune kernels for"
    )
    shapes.add_argument("--max", type=nhw_arg, default=None, metavar="NxHxW", help="largest shape")
    plugin = p.add_mutually_exclusive_group()
    plugin.add_argument(
        "--plugin",
        type=Path,
        default=None,
        metavar="LIB",
        help="PartialConv2d plugin library to load before parsing (default: the package's built "
        "library, if present, for plugin-form ONNX)",
    )
    plugin.add_argument(
        "--no-plugin",
        action="store_true",
        help="do not load any plugin library: plugin-form nodes use their explicit function bodies",
    )
    p.add_argument(
        "--timing-cache",
        type=Path,
        default=None,
        metavar="FILE",
        help="tactic timing cache to read (if it exists) and update; speeds up rebuilds",
    )
    p.add_argument(
        "--workspace",
        type=float,
        default=None,
        metavar="GiB",
        help="TensorRT workspace memory limit in GiB (default: 4)",
    )
    p.add_argument(
        "--version-compatible",
        action="store_true",
        help="build an engine that newer TensorRT releases of the same major version can run "
        "(the plugin library is serialized into it)",
    )
    p.add_argument(
        "--fp16",
        action="store_true",
        help="TensorRT 10.x only: build an FP32 ONNX with the FP16 builder flag (weakly typed). "
        "Prefer an FP16 export, which is also the only FP16 route on TensorRT 11",
    )
    p.add_argument(
        "--tf32",
        action="store_true",
        help="allow TF32 tensor cores for FP32 layers (faster on Ampere+, ~1e-3 relative error)",
    )
    p.add_argument("--device", type=int, default=0, help="CUDA device index to build on (default: 0)")
    p.add_argument("--json", action="store_true", help="print the build report as JSON")
    p.add_argument("--verbose", action="store_true", help="print TensorRT's build log")
    p.set_defaults(func=run_build)


@contextmanager
def step_bar(wanted: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A ``progress`` callback drawing a tqdm bar of the build's steps, or None off a terminal."""
    from pconv.terminal import show_progress

    if not show_progress(wanted):
        yield None
        return
    from tqdm import tqdm

    from pconv.engine.build import STEPS

    with tqdm(total=len(STEPS), desc="pconv build", unit="step", leave=False) as bar:

        def update(done: int, total: int, text: str) -> None:
            bar.total, bar.n = total, done
            bar.set_postfix_str(text)  # redraws

        yield update


def run_build(args: argparse.Namespace) -> int:
    """Run ``pconv build``; user-fixable problems raise PconvError (printed as one line)."""
    from pconv.engine.build import DEFAULT_WORKSPACE_GIB, build_engine

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    output = args.output if args.output is not None else args.onnx.with_suffix(".engine")
    with step_bar(wanted=not args.json) as progress:
        report = build_engine(
            args.onnx,
            output,
            min_shape=args.min,
            opt_shape=args.opt,
            max_shape=args.max,
            plugin_library=args.plugin,
            use_default_plugin=not args.no_plugin,
            timing_cache=args.timing_cache,
            workspace_gib=args.workspace if args.workspace is not None else DEFAULT_WORKSPACE_GIB,
            version_compatible=args.version_compatible,
            fp16_flag=args.fp16,
            allow_tf32=args.tf32,
            device=args.device,
            verbose=args.verbose,
            progress=progress,
        )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
    return 0
