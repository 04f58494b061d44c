"""``pconv inpaint``, ``pconv bench`` and ``pconv doctor`` end to end in a temporary directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pconv.apps.cli import main

SIZES = {"a": (37, 61), "b": (50, 40), "c": (64, 64)}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    (tmp_path / "mask").mkdir()
    for stem, (h, w) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            tmp_path / "img" / f"{stem}.png"
        )
        mask = np.zeros((h, w), np.uint8)
        mask[5:20, 8:30] = 255
        name = f"{stem}_mask.png" if stem == "b" else f"{stem}.png"  # both pairing rules
        Image.fromarray(mask).save(tmp_path / "mask" / name)
    return tmp_path


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_inpaint_folder_pairs_masks_by_stem_and_keeps_valid_pixels(
    files: Path, tiny_onnx_factory, capsys
) -> None:
    out = files / "out"
    rc = main(
        [
            "inpaint",
            "--model",
            str(tiny_onnx_factory()),
            "--image",
            str(files / "img"),
            "--mask",
            str(files / "mask"),
            *("--out", str(out), "--concat", "--batch", "2", "--strategy", "full"),
        ]
    )
    assert rc == 0
    assert f"wrote 3 image(s) to {out} with onnxruntime (CPUExecutionProvider)" in capsys.readouterr().out
    for stem, (h, w) in SIZES.items():
        image = _png(files / "img" / f"{stem}.png")
        result = _png(out / f"{stem}.png")
        holes = np.zeros((h, w), bool)
        holes[5:20, 8:30] = True
        assert result.shape == (h, w, 3)
        assert np.array_equal(result[~holes], image[~holes])
        concat = _png(out / f"{stem}_concat.png")
        assert concat.shape == (h, 3 * w, 3)
        assert np.array_equal(concat[:, :w], image) and np.array_equal(concat[:, 2 * w :], result)
        assert (concat[:, w : 2 * w][holes] == 255).all() and (concat[:, w : 2 * w][~holes] == 0).all()


def test_inpaint_one_valid_mask_for_a_single_image(files: Path, tiny_onnx_factory) -> None:
    image = files / "img" / "c.png"
    valid = np.full((64, 64), 255, np.uint8)
    valid[30:40, 30:40] = 0  # --mask-is-valid: black = hole
    Image.fromarray(valid).save(files / "valid.png")
    out = files / "out2"
    rc = main(
        [
            "inpaint",
            "--model",
            str(tiny_onnx_factory()),
            "--image",
            str(image),
            "--mask",
            str(files / "valid.png"),
            *("--out", str(out), "--mask-is-valid", "--strategy", "crop"),
        ]
    )
    assert rc == 0
    result, original = _png(out / "c.png"), _png(image)
    assert np.array_equal(result[valid != 0], original[valid != 0])


def test_inpaint_errors_are_one_line(files: Path, tiny_onnx_factory, capsys) -> None:
    model = str(tiny_onnx_factory())
    (files / "mask" / "a.png").unlink()
    rc = main(
        [
            "inpaint",
            "--model",
            model,
            "--image",
            str(files / "img"),
            "--mask",
            str(files / "mask"),
            "--out",
            str(files / "o"),
        ]
    )
    err = capsys.readouterr().err
    # a folder run goes on past the image without a mask, says why, and exits non-zero
    assert rc == 1 and "skipped a.png: no mask in" in err and "Traceback" not in err
    assert sorted(p.name for p in (files / "o").iterdir()) == ["b.png", "c.png"]
    rc = main(
        [
            "inpaint",
            "--model",
            model,
            "--image",
            str(files / "img"),
            "--mask",
            str(files / "nowhere"),
            "--out",
            str(files / "o"),
        ]
    )
    assert rc == 2 and "mask file or folder not found" in capsys.readouterr().err
    (files / "empty.png").write_bytes(b"")
    empty = str(files / "empty.png")
    rc = main(["inpaint", "--model", model, "--image", empty, "--mask", empty, "--out", str(files / "o")])
    assert rc == 2 and "empty" in capsys.readouterr().err
    image_b, mask_c = str(files / "img" / "b.png"), str(files / "mask" / "c.png")
    rc = main(["inpaint", "--model", model, "--image", image_b, "--mask", mask_c, "--out", str(files / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "must match" in err and len(err.strip().splitlines()) == 1


def test_bench_table_and_json(tmp_path: Path, tiny_onnx_factory, capsys) -> None:
    model = str(tiny_onnx_factory())
    assert main(["bench", "--model", model, "--shape", "2x30x50", "--iterations", "5", "--warmup", "1"]) == 0
    table = capsys.readouterr().out
    assert "median" in table and "p99" in table and "img/s" in table and "2x32x56" in table
    out = tmp_path / "bench.json"
    assert (
        main(["bench", "--model", model, "--shape", "1x40x40", "--iterations", "6", "--json", str(out)]) == 0
    )
    assert f"wrote {out}" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["network_shape"] == [1, 40, 40] and data["iterations"] == 6
    assert data["min_ms"] <= data["median_ms"] <= data["p90_ms"] <= data["p99_ms"] <= data["max_ms"]
    assert data["throughput_img_s"] > 0
    assert (
        main(["bench", "--model", model, "--shape", "1x16x16", "--iterations", "3", "--end-to-end", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["mode"] == "end-to-end"
    with pytest.raises(SystemExit) as refused:  # argparse's one-line usage error, exit status 2
        main(["bench", "--model", model, "--shape", "512x512"])
    assert refused.value.code == 2
    assert "expected NxHxW" in capsys.readouterr().err
    # The same parser as `pconv build --opt`: the × sign is accepted too.
    assert main(["bench", "--model", model, "--shape", "1×24×24", "--iterations", "2", "--warmup", "0"]) == 0


def test_doctor_reports_each_piece_with_fixes(tmp_path: Path, tiny_onnx_factory, capsys, monkeypatch) -> None:
    weights = tmp_path / "vgg16.pth"
    weights.write_bytes(b"0" * 1024)
    monkeypatch.setenv("PCONV_VGG_WEIGHTS", str(weights))
    rc = main(["doctor", "--model", str(tiny_onnx_factory()), "--plugin-library", str(tmp_path / "nope.so")])
    text = capsys.readouterr().out
    assert rc == 0
    assert "[ok  ] onnxruntime" in text and "CPU runtime: usable" in text
    assert "VGG-16 weights" in text and str(weights) in text
    assert "TensorRT plugin" in text and "pconv build-plugin" in text
    assert "opens with onnxruntime" in text
    assert main(["doctor", "--json"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["onnxruntime"]["ok"] and checks["numpy"]["ok"]
    for check in checks.values():
        assert check["ok"] or check["fix"], check  # every missing piece says how to fix it
    from pconv.apps.doctor import check_vgg

    monkeypatch.delenv("PCONV_VGG_WEIGHTS")
    missing = check_vgg(None)
    assert not missing.ok and "pconv train --vgg-weights vgg16.pth" in missing.fix  # what training reads
    assert "not found" in check_vgg(str(tmp_path / "none.pth")).detail


def test_console_script_help_lists_runtime_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pconv", "--help"], check=True, capture_output=True, text=True
    ).stdout
    for command in ("inpaint", "bench", "doctor", "demo"):
        assert command in out


def test_inpaint_one_folder_with_img_mask_pairs_and_one_mask_for_all(files: Path, tiny_onnx_factory) -> None:
    model = str(tiny_onnx_factory())
    both = files / "both"
    both.mkdir()
    image = _png(files / "img" / "c.png")
    hole = np.zeros((64, 64), np.uint8)
    hole[10:20, 30:50] = 255
    for stem in ("p", "q"):
        Image.fromarray(image).save(both / f"{stem}.png")
        Image.fromarray(hole).save(both / f"{stem}_mask.png")
    out = files / "out_both"
    rc = main(["inpaint", "--model", model, "--image", str(both), "--mask", str(both), "--out", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["p.png", "q.png"]  # masks are not inpainted
    for stem in ("p", "q"):
        result = _png(out / f"{stem}.png")
        assert np.array_equal(result[hole == 0], image[hole == 0])
        assert not np.array_equal(result[hole != 0], image[hole != 0])  # the holes were filled
    # one mask file for a whole folder of images
    same_size = files / "same_size"
    same_size.mkdir()
    for stem in ("r", "s"):
        Image.fromarray(image).save(same_size / f"{stem}.png")
    out = files / "out_one"
    rc = main(
        [
            *("inpaint", "--model", model, "--image", str(same_size)),
            *("--mask", str(both / "p_mask.png"), "--out", str(out)),
        ]
    )
    assert rc == 0
    for stem in ("r", "s"):
        assert np.array_equal(_png(out / f"{stem}.png"), _png(files / "out_both" / "p.png"))


def test_inpaint_refuses_to_overwrite_inputs(files: Path, tiny_onnx_factory, capsys) -> None:
    model = str(tiny_onnx_factory())
    img = files / "img"
    before = {p.name: p.read_bytes() for p in img.iterdir()}
    rc = main(
        [
            *("inpaint", "--model", model, "--image", str(img), "--mask", str(files / "mask")),
            "--out",
            str(img),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "would overwrite the input file" in err
    assert {p.name: p.read_bytes() for p in img.iterdir()} == before
    Image.fromarray(_png(img / "a.png")).save(img / "a.jpg")  # a.png and a.jpg -> both a.png
    rc = main(
        [
            *("inpaint", "--model", model, "--image", str(img), "--mask", str(files / "mask")),
            "--out",
            str(files),
        ]
    )
    assert rc == 2 and "would both be written as a.png" in capsys.readouterr().err


def test_bench_pads_to_a_static_model_shape_and_names_its_limits(tiny_onnx_factory, capsys) -> None:
    fixed = str(tiny_onnx_factory(batch=1, height=64, width=64))
    assert main(["bench", "--model", fixed, "--shape", "1x40x40", "--iterations", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["network_shape"] == [1, 64, 64]
    assert main(["bench", "--model", fixed, "--shape", "2x64x64", "--iterations", "2"]) == 2
    err = capsys.readouterr().err
    assert "batches of 1 image(s)" in err and len(err.strip().splitlines()) == 1
    assert main(["bench", "--model", fixed, "--shape", "1x100x100", "--iterations", "2"]) == 2
    assert "(64x64 max)" in capsys.readouterr().err
    assert main(["bench", "--model", fixed, "--shape", "3x40x40", "--iterations", "2", "--end-to-end"]) == 0


def test_inpaint_no_hole_mask_warns_in_one_line_and_copies_the_image(
    files: Path, tiny_onnx_factory, capsys
) -> None:
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(files / "zero.png")
    out = files / "out_zero"
    image = str(files / "img" / "c.png")
    model = str(tiny_onnx_factory())
    rc = main(
        ["inpaint", "--model", model, "--image", image, "--mask", str(files / "zero.png"), "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert rc == 0 and np.array_equal(_png(out / "c.png"), _png(files / "img" / "c.png"))
    assert err.strip().splitlines() == [
        "pconv inpaint: warning: mask zero.png marks no hole pixels, so c.png is the input unchanged "
        "(try --mask-is-valid)"
    ]
