"""The distribution installs one top-level package, `pconv`, with the stage folders as subpackages."""

from __future__ import annotations

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
    for stage in ("training", "export", "runtime", "plugins", "eval"):
        assert f"pconv/{stage}/__init__.py" in names
    assert "pconv/plugins/CMakeLists.txt" in names or not (ROOT / "plugins" / "CMakeLists.txt").exists()


def test_installed_stages_resolve_to_the_repository_folders() -> None:
    import pconv.export
    import pconv.runtime
    import pconv.training

    for module, folder in (
        (pconv.training, "training"),
        (pconv.export, "export"),
        (pconv.runtime, "runtime"),
    ):
        assert module.__file__ is not None
        assert Path(module.__file__).parent.name in (folder, module.__name__.split(".")[-1])


def test_console_script_help_lists_stage_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pconv", "--help"], check=True, capture_output=True, text=True
    ).stdout
    assert "train" in out
