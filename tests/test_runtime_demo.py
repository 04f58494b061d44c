"""``pconv demo``: the shipped model vs OpenCV in seconds, and ``--train``'s whole pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pconv.apps.cli import main
from pconv.apps.demo import RUN_MARKER, _remove_demo_run
from pconv.errors import PconvError
from pconv.models import DEFAULT_ONNX


def _check_comparison(out: Path, crops: int, size: int) -> dict:
    report = json.loads((out / "report.json").read_text())
    assert len(report["crops"]) == crops and all(c["valid_pixels_exact"] for c in report["crops"])
    for crop in report["crops"]:
        for method in ("pconv", "telea", "ns"):
            assert 0 < crop[method]["ssim"] <= 1 and np.isfinite(crop[method]["psnr"])
    assert set(report["means"]) == {"pconv", "telea", "ns"}
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (crops * size + (crops - 1) * 4, 5 * size + 4 * 4, 3)  # input|telea|ns|pconv|gt
    md = (out / "report.md").read_text()
    assert "OpenCV Telea" in md and "OpenCV Navier-Stokes" in md and "held-out" in md
    return report


def test_demo_uses_the_shipped_model_without_training(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--crops", "3", "--crop-size", "64"]) == 0
    assert "demo done" in capsys.readouterr().out
    report = _check_comparison(out, 3, 64)
    assert report["onnx"] == str(DEFAULT_ONNX)
    assert set(report["timings_s"]) == {"verify", "inference", "total"}
    assert not (out / "train").exists() and not (out / "model.onnx").exists()


@pytest.mark.slow
def test_demo_train_runs_the_whole_pipeline(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    tiny = ("--steps", "3", "--size", "32", "--depth", "3", "--width", "0.125", "--batch", "2")
    assert main(["demo", "--train", "--out", str(out), *tiny, "--crops", "2", "--crop-size", "48"]) == 0
    report = _check_comparison(out, 2, 48)
    assert report["model"]["train_steps"] == 3
    assert report["parity"]["passed"] and report["parity"]["max_abs"] <= 1e-4
    assert set(report["timings_s"]) == {"train", "export", "parity", "inference", "total"}
    assert "max-abs" in (out / "report.md").read_text()
    assert (out / "model.onnx").stat().st_size > 0
    # A second run into the same folder replaces the demo's own training run.
    assert main(["demo", "--train", "--out", str(out), *tiny, "--crops", "1", "--crop-size", "48"]) == 0


def test_demo_train_never_deletes_a_folder_it_did_not_write(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    (out / "train").mkdir(parents=True)
    precious = out / "train" / "thesis.txt"
    precious.write_text("mine")
    assert main(["demo", "--train", "--out", str(out), "--steps", "1", "--size", "32", "--depth", "3"]) == 2
    assert "was not written by pconv demo; move it" in capsys.readouterr().err
    assert precious.read_text() == "mine"
    # A demo run folder that a user added a file to is not emptied either.
    (out / "train" / RUN_MARKER).write_text("")
    with pytest.raises(PconvError, match="holds files pconv demo did not write"):
        _remove_demo_run(out / "train")
    assert precious.read_text() == "mine"


def test_demo_and_doctor_flags_come_from_their_options(capsys) -> None:
    """Each flag's default is the dataclass default (stated once); bad values are one line."""
    from pconv.apps.cli import build_parser
    from pconv.apps.options import DemoOptions, DoctorOptions
    from pconv.cliopts import from_args

    parser = build_parser()
    assert from_args(DemoOptions, parser.parse_args(["demo"])) == DemoOptions()
    assert from_args(DoctorOptions, parser.parse_args(["doctor"])) == DoctorOptions()
    assert main(["demo", "--crop-size", "8"]) == 2
    err = capsys.readouterr().err
    assert "--crop-size" in err and len(err.strip().splitlines()) == 1
