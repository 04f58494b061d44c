"""``pconv eval`` end to end on the tiny exported model and bundled photos: outputs, resume, no torch."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pconv.apps.cli import main
from pconv.errors import PconvError
from pconv.eval import evaluate, masksets, report
from pconv.eval.evaluate import EvalOptions, run_evaluation
from pconv.eval.metrics import METRIC_NAMES


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # ~6 s on 2 cores: four evaluation runs with plots and grids
def test_eval_writes_table_plot_grids_and_resumes(tiny_onnx_factory, tmp_path: Path) -> None:
    model = tiny_onnx_factory()
    out = tmp_path / "eval"
    opts = EvalOptions(
        out=out, model=model, per_bin=1, size=64, limit=2, baselines=("telea", "mean"), progress=False
    )
    result = run_evaluation(opts)
    methods = ["pconv", "telea", "mean"]
    assert result.methods == methods

    rows = _rows(out / "results.csv")
    assert len(rows) == 12 * 3  # 12 cells x 1 mask, each with one image, 3 methods
    assert {r["method"] for r in rows} == set(methods)
    heldout = {ref.key for ref in evaluate.resolve_images("builtin", limit=2)}
    assert {r["image"] for r in rows} == heldout and all(k.startswith("heldout:") for k in heldout)
    for r in rows:
        # composites keep valid pixels, so the whole-image L1 is the hole L1 diluted by the hole ratio
        assert float(r["l1"]) == pytest.approx(float(r["l1_hole"]) * float(r["hole_ratio"]), abs=2e-5)
        assert 0 < float(r["ssim"]) <= 1

    summary = _rows(out / "summary.csv")
    assert len(summary) == 12 * 3 + 3  # every (bin, border, method) cell plus one "all" row per method
    cell = next(s for s in summary if s["bin"] == "3" and s["border"] == "1" and s["method"] == "pconv")
    (source,) = [r for r in rows if r["bin"] == "3" and r["border"] == "1" and r["method"] == "pconv"]
    for name in METRIC_NAMES:
        assert float(cell[name]) == pytest.approx(float(source[name]), abs=1e-5)

    markdown = (out / "summary.md").read_text()
    assert markdown == result.markdown
    assert "| (0.3, 0.4] | yes | pconv | 1 |" in markdown and "LPIPS" in markdown

    plot = np.asarray(Image.open(out / "metrics_vs_hole_ratio.png"))
    assert plot.shape[0] > 300 and plot.std() > 10  # a real drawing, not a blank canvas
    grids = sorted(out.glob("examples_*.png"))
    assert [g.name for g in grids] == sorted(f"examples_{masksets.bin_slug(b)}.png" for b in range(6))
    grid = np.asarray(Image.open(grids[0]).convert("RGB"))
    assert grid.shape[1] >= 5 * 128  # input, 3 methods, ground truth

    # Rerun: everything is resumed, nothing recomputed or duplicated.
    again = run_evaluation(opts)
    assert again.resumed_rows == 36 and len(_rows(out / "results.csv")) == 36

    # Interrupted run: 10 rows kept, the 11th torn inside its last number (all columns present).
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    (out / "results.csv").write_text("".join(lines[:11]) + lines[11].rstrip("\n")[:-2])
    resumed = run_evaluation(opts)
    assert resumed.resumed_rows == 10
    redone = _rows(out / "results.csv")
    assert len(redone) == 36 + 1  # the torn line stays in the file, ignored on read and recomputed
    key = lambda r: (r["image"], r["mask"], r["method"])  # noqa: E731
    assert {key(r): r for r in rows} == {key(r): r for r in redone}  # later rows win: identical values

    # A run with other settings must not mix into these rows.
    with pytest.raises(PconvError, match="other settings"):
        run_evaluation(EvalOptions(out=out, model=model, per_bin=1, size=64, seed=5, progress=False))


def test_eval_cli_on_a_mask_folder_prints_the_table(
    tiny_onnx_factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    masksets.generate_mask_set(tmp_path / "masks", per_bin=1, size=128, seed=1, progress=False)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (90, 150, 3), dtype=np.uint8)).save(images / "noise.png")
    args = [
        "eval",
        "--model",
        str(tiny_onnx_factory()),
        "--images",
        str(images),
        "--masks",
        str(tmp_path / "masks"),
        "--size",
        "64",  # masks resized to 64 and re-binned
        "--baselines",
        "ns",
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| all | all | pconv |" in printed and "| all | all | ns |" in printed
    rows = _rows(tmp_path / "out" / "results.csv")
    assert {r["image"] for r in rows} == {"noise.png"}
    for r in rows:  # bins are measured on the resized masks
        assert masksets.bin_index(float(r["hole_ratio"])) == int(r["bin"])
    assert json.loads((tmp_path / "out" / "run.json").read_text())["strategy"] == "full"
    assert main([*args[:-3], "--baselines", "nope", *args[-3:]]) == 2
    assert "unknown baseline" in capsys.readouterr().err


def test_fit_to_size_covers_and_centre_crops() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 50:150] = 255  # a white centre band half as wide as the image
    fitted = evaluate.fit_to_size(image, 64, 64)
    assert fitted.shape == (64, 64, 3)
    assert fitted[:, 8:56].min() > 200  # scaled to 64 tall (128 wide), centre 64 columns are mostly the band
    assert evaluate.fit_to_size(image, 100, 200) is image


def test_cycle_pairing_spreads_images_and_is_stable_when_masks_are_added() -> None:
    images = [evaluate.ImageRef(f"img{i}", Path(f"img{i}.png")) for i in range(5)]

    def entries(per_bin: int) -> list[masksets.MaskEntry]:
        return [
            masksets.MaskEntry(f"{b}/{int(f)}/{i}.png", b, f, 0.0, 8, 8)
            for b in range(6)
            for f in (False, True)
            for i in range(per_bin)
        ]

    small = {p.mask.file: p.image.key for p in evaluate.make_pairs(images, entries(2), "cycle")}
    large = {p.mask.file: p.image.key for p in evaluate.make_pairs(images, entries(4), "cycle")}
    assert all(large[m] == img for m, img in small.items())
    counts = np.bincount([int(k[3:]) for k in large.values()], minlength=5)
    assert counts.max() - counts.min() <= 1
    assert len(evaluate.make_pairs(images, entries(1), "all")) == 12 * 5


def test_summary_caps_infinite_psnr(tmp_path: Path) -> None:
    base = {"image": "i", "mask": "m", "bin": "0", "border": "0", "hole_ratio": "0.05"}
    metrics_row = {"l1": "0", "ssim": "1", "l1_hole": "0", "ssim_hole": "1"}
    rows = [
        {**base, **metrics_row, "method": "mean", "psnr": "inf", "psnr_hole": "inf"},
        {**base, **metrics_row, "method": "mean", "psnr": "40", "psnr_hole": "30", "mask": "m2"},
    ]
    (cell, overall) = report.summarise(rows, ["mean"])
    assert cell.means["psnr"] == pytest.approx(70.0) and cell.psnr_inf == 1
    assert overall.n == 2
    assert "2 value(s) were capped" in report.markdown_table([cell, overall])  # whole + hole, cells only


def test_eval_needs_no_torch(tiny_onnx_factory, tmp_path: Path) -> None:
    model = tiny_onnx_factory()  # exported (with torch) here; evaluated in a process where torch is blocked
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from pconv.apps.cli import main\n"
        f"rc = main(['eval', '--model', {str(model)!r}, '--per-bin', '1', '--size', '64', '--limit', '1',"
        f" '--baselines', 'mean', '--out', {str(tmp_path / 'out')!r}, '--no-progress'])\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| all | all | pconv | 12 |" in proc.stdout


def test_rerun_with_other_radius_or_mask_polarity_is_refused(tmp_path: Path) -> None:
    # Both change a row's values but not its (image, mask, method) key, so reusing rows would mix runs.
    opts = EvalOptions(
        out=tmp_path / "out", per_bin=1, size=32, limit=1, baselines=("telea",), progress=False
    )
    run_evaluation(opts)
    for change in ({"radius": 7}, {"white_is_hole": False}):
        with pytest.raises(PconvError, match=f"other settings \\({next(iter(change))} differ"):
            run_evaluation(EvalOptions(**{**opts.__dict__, **change}))
    assert run_evaluation(opts).resumed_rows == 12  # the same settings still resume


def test_builtin_images_are_held_out_views_only() -> None:
    from pconv.data.images import BUILTIN_HELDOUT, BUILTIN_TRAIN

    refs = evaluate.resolve_images("builtin")
    photos = {ref.key.removeprefix("heldout:").split("_s")[0] for ref in refs}
    assert photos <= set(BUILTIN_HELDOUT) and "chelsea" in photos
    assert not photos & set(BUILTIN_TRAIN)
    assert all(ref.load().shape == (256, 256, 3) for ref in refs)
    assert len({ref.key for ref in refs}) == len(refs) == 13 * len(photos)


def test_image_folder_skips_hidden_and_unreadable_files_up_front(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "._ok.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match=r"skipping 1 of 2 files that are not readable images: broken\.jpg"):
        refs = evaluate.resolve_images(str(tmp_path))
    assert [r.key for r in refs] == ["ok.png"] and refs[0].load().shape == (40, 40, 3)
