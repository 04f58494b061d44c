"""The distribution installs one top-level package, `pconv`, with the stage folders as subpackages."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_has_only_the_pconv_top_level_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("pconv-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"pconv"}
    for stage in ("data", "trt", "training", "export", "engine", "plugins", "runtime", "eval", "apps"):
        assert f"pconv/{stage}/__init__.py" in names
    assert "pconv/plugins/csrc/CMakeLists.txt" in names
    # Every kernel/plugin source ships: `pconv build-plugin` and the harness compile from the package.
    csrc = ROOT / "plugins" / "csrc"
    sources = [p.name for ext in ("*.cu", "*.cuh", "*.h", "*.cpp") for p in csrc.glob(ext)]
    assert "pconv_tile_nhwc.h" in sources and "pconv_tile_narrow.h" in sources
    missing = [n for n in sources if f"pconv/plugins/csrc/{n}" not in names and n != "generated_fields.h"]
    assert not missing, missing
    # The C++ check programs are test code: they stay out of the wheel.
    assert not [n for n in names if n.endswith("_check.cpp")]
    # The default model ships, byte for byte what its record's sha256 names.
    from pconv.models import default_record

    wheel_zip = zipfile.ZipFile(wheel)
    for name, digest in default_record()["files"].items():
        assert hashlib.sha256(wheel_zip.read(f"pconv/models/{name}")).hexdigest() == digest, name
    assert "pconv/models/default.json" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "pconv = pconv.apps.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    # A regular (non-editable) install: the unpacked wheel alone, outside the repository, must
    # provide every stage and a working model (the editable install would hide missing files).
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import torch, pconv, pconv.apps.cli, pconv.export, pconv.runtime, pconv.plugins, pconv.eval\n"
        "from pconv.training.unet import PConvUNet\n"
        "assert pconv.__file__.startswith(sys.argv[1]), pconv.__file__\n"
        "out = PConvUNet(depth=2, width=0.125)(torch.rand(1, 3, 8, 8), torch.ones(1, 1, 8, 8))\n"
        "assert out.shape == (1, 3, 8, 8)\n"
        "pconv.apps.cli.build_parser().parse_args(['train', '--help'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(site)], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--vgg-weights" in proc.stdout, proc.stderr[-2000:]


def test_each_package_is_imported_from_its_folder() -> None:
    """pyproject's package-dir is what the checkout runs: a wrong mapping imports another folder."""
    import importlib

    import tomllib

    layout = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in layout.items():
        module = importlib.import_module(package)
        assert module.__file__ is not None
        if not Path(module.__file__).is_relative_to(ROOT):
            pytest.skip("pconv is installed from a wheel here, not from this checkout")
        assert Path(module.__file__).resolve() == (ROOT / folder / "__init__.py").resolve(), package


#: Every command of ``pconv``, in the order of ``pconv --help`` (the pipeline's order).
COMMANDS = (
    "train",
    "export",
    "check",
    "build",
    "build-plugin",
    "inpaint",
    "bench",
    "masks",
    "eval",
    "lpips-weights",
    "serve",
    "triton-repo",
    "doctor",
    "demo",
)


def test_console_script_help_lists_every_command_and_the_readme_documents_each() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pconv", "--help"], check=True, capture_output=True, text=True
    ).stdout
    listed = re.findall(r"^    ([a-z][a-z-]*)\b", out, flags=re.MULTILINE)
    assert tuple(listed) == COMMANDS
    readme = (ROOT / "README.md").read_text()
    undocumented = [c for c in COMMANDS if not re.search(rf"`pconv {c}\b|^pconv {c}\b", readme, re.MULTILINE)]
    assert not undocumented
