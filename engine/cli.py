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
from typing import Any

from pconv.cliopts import add_options, from_args
from pconv.engine.options import PLUGIN_GROUP, PROFILE_GROUP, EngineBuildOptions

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
    """Add ``pconv build`` to the top-level subparsers (options: :class:`EngineBuildOptions`)."""
    p = sub.add_parser(
        "build",
        help="build a TensorRT engine from an exported ONNX model (needs TensorRT and a GPU)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    shapes = p.add_argument_group(
        "profile",
        "NxHxW (batch x height x width) of the image/mask inputs; H and W must be multiples of the "
        "model's size multiple (2^depth). A missing --min/--max takes --opt; with none given, static "
        "ONNX dims are used and dynamic ones get 1xMxM .. 1x512x512 .. 1x1024x1024 (M = multiple).",
    )
    groups = {PROFILE_GROUP: shapes, PLUGIN_GROUP: p.add_mutually_exclusive_group()}
    add_options(p, EngineBuildOptions, groups=groups)
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
    from pconv.engine.build import build

    opts = from_args(EngineBuildOptions, args)
    logging.basicConfig(
        level=logging.DEBUG if opts.verbose else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    with step_bar(wanted=not opts.json) as progress:
        report = build(opts.onnx, opts.engine_path, opts, verbose=opts.verbose, progress=progress)
    if opts.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
    return 0
