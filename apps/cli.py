"""``pconv`` command line: the dispatcher. Each pipeline stage registers its own subcommands.

Stage CLI modules import only argparse at module level; the heavy libraries (torch, onnx,
TensorRT) are imported inside each command, so ``pconv --help`` is instant and works on a
runtime-only install.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TextIO

from pconv._version import __version__
from pconv.errors import PconvError

#: Modules with a ``register(subparsers)`` function, in pipeline order (the order of ``pconv --help``).
STAGE_CLI_MODULES = (
    "pconv.training.cli",
    "pconv.export.cli",
    "pconv.engine.cli",
    "pconv.plugins.cli",
    "pconv.runtime.cli",
    "pconv.eval.cli",
    "pconv.serving.cli",
    "pconv.apps.commands",  # doctor, demo: they span stages
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


#: Which extra installs a module a command may import (top-level import name -> extra).
MODULE_EXTRAS = {
    "torch": "train",
    "safetensors": "train",
    "skimage": "train",
    "onnx": "export",
    "onnxscript": "export",
    "polygraphy": "export",
    "onnxruntime": "runtime",
    "cv2": "eval",
    "matplotlib": "eval",
    "sklearn": "eval",
    "tensorrt": "trt",
    "cuda": "trt",
    "tritonclient": "serve",
}
#: File-system errors a user fixes (space, permissions, a wrong path), printed as one line.
_USER_FS_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EEXIST, errno.ENOTDIR}
    | {errno.EISDIR, errno.ENOENT}
)


def missing_module_message(exc: ModuleNotFoundError) -> str | None:
    """One line naming the pip command for a missing optional dependency, or None if it is not one."""
    top = (exc.name or "").split(".")[0]
    extra = MODULE_EXTRAS.get(top)
    if extra is None:
        return None
    return f"{top} is not installed (part of the {extra} extra): run `pip install 'pconv[{extra}]'`"


def file_error_message(exc: OSError) -> str | None:
    """One line for a file-system error the user can fix (full disk, read-only, a file in the way)."""
    if exc.errno not in _USER_FS_ERRNOS:
        return None
    where = exc.filename if exc.filename is not None else "a file"
    fix = {
        errno.ENOSPC: "free some disk space",
        errno.EDQUOT: "free some space (disk quota exceeded)",
        errno.EEXIST: "a file is in the way: pass another path",
        errno.ENOTDIR: "a file is in the way where a folder is needed: pass another path",
        errno.EISDIR: "a folder is in the way where a file is needed: pass another path",
        errno.ENOENT: "check the path",
    }.get(exc.errno or 0, "choose a writable location")
    return f"cannot use {where}: {exc.strerror or exc} ({fix})"


def _quiet_broken_pipe() -> int:
    """``pconv doctor --json | head``: the reader left; stop quietly (no traceback at exit either)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a killed writer


def _one_line_warnings(command: str) -> Callable[..., None]:
    """``warnings.showwarning`` printing ``pconv COMMAND: warning: MESSAGE`` (no source-line echo)."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        print(f"pconv {command}: warning: {message}", file=file or sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(args.command)
            result = args.func(args)
    except PconvError as exc:
        if os.environ.get("PCONV_DEBUG"):
            raise
        print(f"pconv {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        said = f": {exc}" if str(exc) else ""  # e.g. training: where it saved a resumable checkpoint
        print(f"pconv {args.command}: interrupted{said}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except (ModuleNotFoundError, OSError) as exc:
        # A missing extra or a user file-system fault is one line; anything else stays a traceback.
        message = (
            missing_module_message(exc) if isinstance(exc, ModuleNotFoundError) else file_error_message(exc)
        )
        if message is None or os.environ.get("PCONV_DEBUG"):
            raise
        print(f"pconv {args.command}: error: {message}", file=sys.stderr)
        return 2
    return int(result or 0)
