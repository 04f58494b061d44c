"""``pconv demo`` end to end with a handful of training steps: every artefact is written and honest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pconv.cli import main


@pytest.mark.slow
def test_demo_runs_end_to_end_with_tiny_settings(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    rc = main(
        [
            *("demo", "--out", str(out), "--steps", "3", "--size", "32", "--depth", "3", "--width", "0.125"),
            *("--crops", "2", "--crop-size", "48", "--batch", "2"),
        ]
    )
    assert rc == 0
    assert "demo done" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["train_steps"] == 3
    assert report["parity"]["passed"] and report["parity"]["max_abs"] <= 1e-4
    assert set(report["timings_s"]) == {"train", "export", "parity", "inference", "total"}
    assert len(report["crops"]) == 2 and all(c["valid_pixels_exact"] for c in report["crops"])
    assert np.isfinite(report["psnr_in_holes_db"]["pconv"]) and np.isfinite(
        report["psnr_in_holes_db"]["mean_fill"]
    )
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (2 * 48 + 4, 4 * 48 + 3 * 4, 3)
    md = (out / "report.md").read_text()
    assert "PSNR inside the holes" in md and "max-abs" in md
    assert (out / "model.onnx").stat().st_size > 0
    # a second run into the same folder starts a fresh training run instead of failing
    assert (
        main(["demo", "--out", str(out), "--steps", "1", "--size", "32", "--depth", "3", "--crops", "1"]) == 0
    )
