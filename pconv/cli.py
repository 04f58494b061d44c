"""``pconv`` command line. Each pipeline stage registers its own subcommands.

Stage CLI modules import only argparse at module level; the heavy libraries (torch, onnx,
TensorRT) are imported inside each command, so ``pconv --help`` is instant and works on a
runtime-only install.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from pconv._version import __version__
from pconv.errors import PconvError

#: Modules with a ``register(subparsers)`` function, in pipeline order.
STAGE_CLI_MODULES = (
    "pconv.training.cli",
    "pconv.export.cli",
    "pconv.export.engine_cli",
    "pconv.plugins.cli",
    "pconv.runtime.cli",
    "pconv.eval.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pconv",
        description="Partial-convolution inpainting: train, export to ONNX, build TensorRT engines, run.",
    )
    parser.add_argument("--version", action="version", version=f"pconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in STAGE_CLI_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that stage has no CLI in this build
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except PconvError as exc:
        if os.environ.get("PCONV_DEBUG"):
            raise
        print(f"pconv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pconv {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
