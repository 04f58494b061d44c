"""The one-line-error promise under faults: missing extras, a closed pipe, crafted models, disk errors."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from pconv.apps.cli import main


def _run_without(modules: list[str], argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``pconv ARGV`` in a fresh interpreter where ``modules`` cannot be imported (a runtime-only install)."""
    code = (
        "import sys\n"
        f"for name in {modules!r}: sys.modules[name] = None\n"
        "from pconv.apps.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["train", "--steps", "0"], "train"),
        (["export", "ckpt.safetensors", "-o", "m.onnx"], "export"),
    ],
)
def test_commands_of_missing_extras_say_what_to_install(tmp_path: Path, argv: list[str], extra: str) -> None:
    argv = [*argv, *(["--out", str(tmp_path / "run")] if argv[0] == "train" else [])]
    done = _run_without(["torch", "onnx"], argv)
    assert done.returncode == 2, done.stderr
    assert f"pip install 'pconv[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_export_without_onnx_names_the_export_extra(tiny_checkpoint: Path, tmp_path: Path) -> None:
    done = _run_without(["onnx"], ["export", str(tiny_checkpoint), "-o", str(tmp_path / "m.onnx")])
    assert done.returncode == 2 and "pip install 'pconv[export]'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_doctor_into_a_closed_pipe_is_quiet() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pconv", "doctor", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head` that has already exited
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 141


def test_check_on_a_model_without_composite_is_one_line(tiny_onnx_factory, tmp_path: Path, capsys) -> None:
    model = onnx.load(str(tiny_onnx_factory()))
    kept = [o for o in model.graph.output if o.name != "composite"]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    crafted = tmp_path / "no_composite.onnx"
    onnx.save(model, str(crafted))
    assert main(["check", str(crafted)]) == 2
    err = capsys.readouterr().err
    assert "lacks the graph output 'composite'" in err and len(err.strip().splitlines()) == 1


def test_doctor_with_a_bad_model_fails(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert main(["doctor", "--model", str(bad)]) == 1
    assert "[FAIL] model" in capsys.readouterr().out


def test_disk_errors_of_any_command_are_one_line(
    monkeypatch, capsys, tiny_checkpoint: Path, tmp_path
) -> None:
    import pconv.export.onnx_export as onnx_export

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "m.onnx"))

    monkeypatch.setattr(onnx_export, "export_onnx", full)
    assert main(["export", str(tiny_checkpoint), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "free some disk space" in err
    assert len(err.strip().splitlines()) == 1


def test_out_naming_an_existing_file_is_one_line(tmp_path: Path, capsys) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    argv = ["train", "--size", "32", "--depth", "3", "--width", "0.125", "--batch", "1", "--steps", "0"]
    assert main([*argv, "--out", str(mine), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--out {mine} is an existing file; pass a folder" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("pconv train: error:") and mine.read_text() == "mine"


def test_warnings_of_any_command_are_one_line(tmp_path: Path, tiny_onnx_factory, capsys) -> None:
    import numpy as np
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(images / "ok.png")
    (images / "broken.png").write_bytes(b"junk")
    argv = ["eval", "--model", str(tiny_onnx_factory()), "--images", str(images), "--per-bin", "1"]
    assert (
        main([*argv, "--size", "64", "--baselines", "mean", "--out", str(tmp_path / "o"), "--no-progress"])
        == 0
    )
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    said = f"--images {images}: skipping 1 of 2 files that are not readable images: broken.png"
    assert warned == [f"pconv eval: warning: {said}"]
