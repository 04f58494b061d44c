"""Prepare NVIDIA's ``tensorrt-stubs`` for mypy: type-check TensorRT code where TensorRT cannot be installed.

The wheel puts ``tensorrt/`` and ``tensorrt_bindings/`` ``.pyi`` files into site-packages without a
``py.typed`` marker, so mypy silently ignores them, and a few signatures are not valid Python
(parameters named ``in``, a required parameter after defaulted ones). This copies them into a
folder for ``MYPYPATH``, repairs those lines, and then proves mypy really reads them: a canary
that uses a non-existent ``trt.Builder`` attribute must be rejected.

Usage: ``python scripts/trt_stubs.py build/trt-stubs`` (needs ``pip install --no-deps tensorrt-stubs``).
"""

from __future__ import annotations

import ast
import re
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

PACKAGES = ("tensorrt", "tensorrt_bindings")


def installed_stub_root() -> Path:
    try:
        dist = metadata.distribution("tensorrt-stubs")
    except metadata.PackageNotFoundError:
        sys.exit("tensorrt-stubs is not installed: pip install --no-deps 'tensorrt-stubs==10.13.0.35.1'")
    return Path(str(dist.locate_file("")))


def repair(source: str) -> str:
    source = re.sub(r"\(self(: \w+)?, in: ", r"(self\1, in_: ", source)
    # add_scale_nd: a required `channel_axis` after defaulted parameters.
    return re.sub(r"(power: Weights = None, )channel_axis: int\)", r"\1channel_axis: int = 0)", source)


def prepare(out: Path) -> None:
    root = installed_stub_root()
    if out.exists():
        shutil.rmtree(out)
    for package in PACKAGES:
        shutil.copytree(root / package, out / package, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for stub in out.rglob("*.pyi"):
        text = repair(stub.read_text())
        ast.parse(text, filename=str(stub))  # fails loudly if a new stub version breaks differently
        stub.write_text(text)


def canary(out: Path) -> None:
    from mypy import api

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.py"
        probe.write_text("import tensorrt as trt\nx = trt.Builder(trt.Logger()).no_such_attribute\n")
        stdout, _, status = api.run([str(probe), "--no-incremental", "--follow-imports=silent"])
    if status == 0 or "no_such_attribute" not in stdout:
        sys.exit(f"mypy did not use the TensorRT stubs in {out}:\n{stdout}")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/trt-stubs").resolve()
    prepare(out)
    import os

    os.environ["MYPYPATH"] = str(out)
    canary(out)
    print(f"TensorRT stubs ready for mypy in {out}")


if __name__ == "__main__":
    main()
