"""``pconv export`` and ``pconv check`` end to end, and :func:`check_onnx` catching real mismatches."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from conftest import make_tiny_model

from pconv.apps.cli import main
from pconv.export.check import CheckError, check_onnx
from pconv.export.onnx_export import export_onnx


def test_export_then_check_against_checkpoint(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "model.onnx"
    rc = main(["export", str(tiny_checkpoint), "-o", str(out), "--form", "plugin", "--height", "32"])
    assert rc == 0 and out.is_file()
    text = capsys.readouterr().out
    assert "form: plugin" in text and "precision: fp32" in text and "PartialConv2d x6" in text
    assert "dynamic dims: N, W" in text
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["pconv_form"] == "plugin"

    rc = main(["check", str(out), "--against", str(tiny_checkpoint), "--batch", "2", "--width", "24"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "max-abs" in text and "overall: PASS" in text
    assert "N=2 H=32 W=24" in text


def test_export_resize_decoder_option(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "resize.onnx"
    assert main(["export", str(tiny_checkpoint), "-o", str(out), "--decoder", "resize"]) == 0
    text = capsys.readouterr().out
    assert "DepthToSpace" not in text and "ConvTranspose" not in text and "Resize x6" in text
    assert check_onnx(out, tiny_checkpoint).passed


def test_check_fails_on_a_different_model(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    other = export_onnx(make_tiny_model(seed=7), tmp_path / "other.onnx")
    rc = main(["check", str(other), "--against", str(tiny_checkpoint)])
    text = capsys.readouterr().out
    assert rc == 1 and "FAIL" in text
    report = check_onnx(other, tiny_checkpoint)
    assert not report.passed and report.rows[0].max_abs > 1e-2


def test_check_without_checkpoint_runs_and_says_what_it_checked(tiny_onnx_factory, capsys) -> None:
    path = tiny_onnx_factory("explicit", "fp16")
    rc = main(["check", str(path), "--batch", "3", "--height", "16", "--width", "40"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "self-consistency" in text and "composite == image where mask = 1" in text
    report = check_onnx(path)
    assert report.passed and [r.output for r in report.rows] == ["output", "composite"]
    assert report.rows[1].max_abs == 0.0


def test_check_fp16_against_checkpoint_uses_fp16_tolerance(tiny_onnx_factory, tiny_checkpoint) -> None:
    report = check_onnx(tiny_onnx_factory("explicit", "fp16"), tiny_checkpoint, batch=2)
    assert report.passed and report.atol == pytest.approx(2e-2)
    assert 0.0 < report.rows[0].max_abs <= 1e-2


def test_clear_cli_errors(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    rc = main(["export", str(tiny_checkpoint), "-o", str(tmp_path / "a.onnx"), "--height", "20"])
    assert rc == 2 and "multiple of 2^depth" in capsys.readouterr().err
    rc = main(["export", str(tiny_checkpoint), "-o", str(tmp_path / "b.onnx"), "--opset", "11"])
    assert rc == 2 and "too old" in capsys.readouterr().err
    not_ours = tmp_path / "x.safetensors"
    not_ours.write_text("hello")
    rc = main(["export", str(not_ours), "-o", str(tmp_path / "c.onnx")])
    assert rc == 2 and "checkpoint" in capsys.readouterr().err
    rc = main(["check", str(tmp_path / "missing.onnx")])
    assert rc == 2 and "not found" in capsys.readouterr().err
    foreign = tmp_path / "foreign.onnx"
    graph = onnx.helper.make_graph([], "g", [], [])
    onnx.save(onnx.helper.make_model(graph), str(foreign))
    with pytest.raises(CheckError, match=r"not a pconv model .*no 'pconv_format' metadata"):
        check_onnx(foreign)
    with pytest.raises(CheckError, match="multiples of 2\\^depth"):
        check_onnx(export_onnx(make_tiny_model(), tmp_path / "t.onnx"), height=12)


def test_plugin_fields_and_cli_import_without_onnx_or_torch() -> None:
    """The plugin build reads plugin_fields and `pconv --help` registers this CLI: neither may pull
    in onnx or torch (pconv.export loads its heavy modules lazily)."""
    import subprocess
    import sys

    code = (
        "import sys, pconv.export, pconv.plugin_fields, pconv.export.cli; "
        "heavy = [m for m in ('onnx', 'torch', 'onnxruntime') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_names_the_shipped_checkpoint() -> None:
    from pconv.export.onnx_export import load_source
    from pconv.models import DEFAULT_CHECKPOINT
    from pconv.training.checkpoint import load_checkpoint

    model, shipped = load_source("default"), load_checkpoint(DEFAULT_CHECKPOINT)
    assert model.config == shipped.config
    mine, theirs = model.state_dict(), shipped.state_dict()
    assert list(mine) == list(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)
