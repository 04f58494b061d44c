"""``pconv demo``: held-out photos inpainted by the shipped model, against OpenCV, in seconds.

Default: the model that ships with pconv (:mod:`pconv.models`, sha256-checked) inpaints views of
the held-out photos (never training data) with :class:`pconv.runtime.Inpainter`, and OpenCV's
Telea and Navier-Stokes inpaint the same image/mask pairs. Writes ``grid.png`` (masked input |
Telea | Navier-Stokes | pconv | original), ``report.md`` and ``report.json`` (PSNR/SSIM of each
method, whole image and in the holes).

``--train`` first runs the whole pipeline: train a small model on the builtin photos
(``pconv.training.train``), export it (``pconv.export.onnx_export.export_onnx``), check ONNX Runtime against
PyTorch, then the same comparison. Torch is imported only then.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pconv.apps.options import DemoOptions
from pconv.contract import round_up

#: ONNX Runtime vs PyTorch raw-output tolerance for an FP32 graph.
PARITY_TOLERANCE = 1e-4
#: Written into the demo's training folder: only a folder holding it is ever replaced.
RUN_MARKER = ".pconv-demo-run"
METHODS = ("telea", "ns", "pconv")
METHOD_TITLES = {"telea": "OpenCV Telea", "ns": "OpenCV Navier-Stokes", "pconv": "pconv"}
SCORES = ("psnr", "ssim", "psnr_hole", "ssim_hole")
#: Held-out views and their hole masks (True = hole).
Pairs = tuple[list[np.ndarray], list[np.ndarray]]


def _parity(
    checkpoint: Path, onnx_path: Path, images: list[np.ndarray], holes: list[np.ndarray]
) -> dict[str, Any]:
    """Max |ONNX Runtime - PyTorch| on raw outputs for the demo's own inputs (padded as the runtime does)."""
    import torch

    from pconv.runtime import open_backend
    from pconv.training.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint)
    backend = open_backend(onnx_path, backend="onnxruntime", providers=["CPUExecutionProvider"])
    m = backend.info.size_multiple
    worst = 0.0
    for image, hole in zip(images, holes):
        h, w = hole.shape
        ph, pw = round_up(h, m), round_up(w, m)
        x = np.zeros((1, 3, ph, pw), np.float32)
        mask = np.zeros((1, 1, ph, pw), np.float32)
        valid = (~hole).astype(np.float32)
        x[0, :, :h, :w] = (image.astype(np.float32) / 255.0 * valid[..., None]).transpose(2, 0, 1)
        mask[0, 0, :h, :w] = valid
        ort_out = backend.run(x, mask)["output"]
        with torch.no_grad():
            ref = model(torch.from_numpy(x), torch.from_numpy(mask)).numpy()
        worst = max(worst, float(np.abs(ort_out.astype(np.float32) - ref).max()))
    backend.close()
    return {"max_abs": worst, "tolerance": PARITY_TOLERANCE, "passed": worst <= PARITY_TOLERANCE}


def _export_check(checkpoint: Path, onnx_path: Path) -> dict[str, Any] | None:
    """The export stage's own parity check, if this build has it (recorded as reported)."""
    try:
        from pconv.export.check import check_onnx
    except (ImportError, AttributeError):
        return None
    report = check_onnx(onnx_path, checkpoint)
    summary: dict[str, Any] = asdict(report) if hasattr(report, "__dataclass_fields__") else {}
    summary["passed"] = bool(getattr(report, "passed", False))
    return summary


def _grid(rows: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    h, w = rows[0][0].shape[:2]
    cols = len(rows[0])
    grid = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    return grid


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    """Run the demo and return the report (also written to ``opts.out``)."""
    from pconv.errors import PconvError, require

    require("cv2", "eval", "OpenCV (the demo compares with cv2.inpaint)")
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise PconvError(f"--out {out}: is a file; pass a folder")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    report: dict[str, Any] = {"options": asdict(opts)}
    pairs = _test_pairs(opts)  # the same held-out pairs for the parity check and the comparison
    if opts.train:
        onnx_path = _train_export_check(opts, out, pairs, timings, report)
    else:
        from pconv.models import default_onnx, default_record, verify_default_model

        t0 = time.perf_counter()
        verify_default_model()
        onnx_path = default_onnx()
        report["model"] = {"name": "default", "record": default_record()}
        timings["verify"] = time.perf_counter() - t0
    report["onnx"] = str(onnx_path)
    _compare(opts, out, onnx_path, pairs, timings, report)
    timings["total"] = time.perf_counter() - t_start
    report["timings_s"] = timings
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.md").write_text(_markdown(report))
    return report


def _train_export_check(
    opts: DemoOptions, out: Path, pairs: Pairs, timings: dict[str, float], report: dict[str, Any]
) -> Path:
    """Train a small model, export it, check ORT against PyTorch; returns the ONNX path."""
    from pconv.errors import PconvError, require

    torch: Any = require("torch", "train", "PyTorch (pconv demo --train trains a model)")
    require("onnx", "export", "onnx (pconv demo --train exports the model)")
    from pconv.export.onnx_export import export_onnx
    from pconv.training.train import TrainOptions, train

    if opts.size % (2**opts.depth):
        raise PconvError(f"--size {opts.size} must be a multiple of 2^depth = {2**opts.depth}")
    run_dir = out / "train"
    if run_dir.exists():
        if not (run_dir / RUN_MARKER).is_file():
            raise PconvError(
                f"{run_dir} exists and was not written by pconv demo; move it or choose another --out"
            )
        _remove_demo_run(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / RUN_MARKER).write_text("written by pconv demo --train; replaced by the next run\n")
    previous_threads = torch.get_num_threads()
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="no --vgg-weights given")
            result = train(
                TrainOptions(
                    data="builtin",
                    masks="procedural",
                    size=opts.size,
                    depth=opts.depth,
                    width=opts.width,
                    batch=opts.batch,
                    steps=opts.steps,
                    out=str(run_dir),
                    seed=opts.seed,
                    device="cpu",
                    sample_every=0,
                    checkpoint_every=0,
                    log_every=max(1, opts.steps // 10),
                    progress=opts.progress,
                )
            )
    finally:
        torch.set_num_threads(previous_threads)
    timings["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    onnx_path = export_onnx(result.checkpoint, out / "model.onnx")
    timings["export"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report["parity"] = _parity(result.checkpoint, onnx_path, *pairs)
    report["export_check"] = _export_check(result.checkpoint, onnx_path)
    timings["parity"] = time.perf_counter() - t0
    report["model"] = {
        "name": "trained by this demo",
        "checkpoint": str(result.checkpoint),
        "train_steps": result.steps,
        "final_loss": result.history[-1].get("total") if result.history else None,
    }
    return onnx_path


def _remove_demo_run(run_dir: Path) -> None:
    """Delete the files a previous demo run wrote (the training run folder's layout), nothing else."""
    import shutil

    from pconv.errors import PconvError
    from pconv.training.runfolder import STEPS_DIR
    from pconv.training.train import CHECKPOINT_NAME, LOG_NAME, STATE_NAME

    for name in (CHECKPOINT_NAME, STATE_NAME, LOG_NAME, RUN_MARKER):
        (run_dir / name).unlink(missing_ok=True)
    for folder in ("samples", STEPS_DIR):
        if (run_dir / folder).is_dir():
            shutil.rmtree(run_dir / folder)
    try:
        run_dir.rmdir()
    except OSError as exc:
        raise PconvError(
            f"{run_dir} holds files pconv demo did not write; move them or choose another --out"
        ) from exc


def _test_pairs(opts: DemoOptions) -> Pairs:
    """``opts.crops`` held-out views spread over the photos, each masked from its own hole-ratio slice."""
    from pconv.data.images import heldout_views
    from pconv.data.masks import generate_irregular_mask

    views = heldout_views(opts.crop_size)
    crops = [views[(i * len(views)) // opts.crops][1] for i in range(opts.crops)]
    rng = np.random.default_rng([opts.seed, 7])
    lo, hi = opts.hole_ratio
    step = (hi - lo) / opts.crops
    holes = [
        generate_irregular_mask(c.shape[0], c.shape[1], rng, hole_ratio=(lo + i * step, lo + (i + 1) * step))
        for i, c in enumerate(crops)
    ]
    return crops, holes


def _compare(
    opts: DemoOptions,
    out: Path,
    onnx_path: Path,
    pairs: Pairs,
    timings: dict[str, float],
    report: dict[str, Any],
) -> None:
    """Inpaint the held-out pairs with pconv and both OpenCV methods; score and draw them."""
    from pconv.eval.baselines import navier_stokes, telea
    from pconv.eval.metrics import score
    from pconv.runtime import Inpainter
    from pconv.runtime.imageio import write_png

    crops, holes = pairs
    t0 = time.perf_counter()
    with Inpainter(onnx_path, backend="onnxruntime") as inpainter:
        fills = inpainter(crops, holes, batch_size=opts.crops)
        providers = list(inpainter.backend.providers)
    timings["inference"] = time.perf_counter() - t0
    results: dict[str, list[np.ndarray]] = {
        "telea": [telea(c, h) for c, h in zip(crops, holes)],
        "ns": [navier_stokes(c, h) for c, h in zip(crops, holes)],
        "pconv": list(fills),
    }
    per_crop: list[dict[str, Any]] = []
    for i, (crop, hole) in enumerate(zip(crops, holes)):
        scores = {m: score(results[m][i], crop, hole).as_dict() for m in METHODS}
        per_crop.append(
            {
                "hole_ratio": float(hole.mean()),
                **{m: {k: scores[m][k] for k in SCORES} for m in METHODS},
                "valid_pixels_exact": bool(np.array_equal(fills[i][~hole], crop[~hole])),
            }
        )
    rows = []
    for i, (crop, hole) in enumerate(zip(crops, holes)):
        shown = crop.copy()
        shown[hole] = 255
        rows.append([shown, *(results[m][i] for m in METHODS), crop])
    report["grid"] = str(write_png(out / "grid.png", _grid(rows)))
    report["inference"] = {
        "backend": "onnxruntime",
        "providers": providers,
        "images": len(crops),
        "ms_per_image": 1e3 * timings["inference"] / len(crops),
    }
    report["crops"] = per_crop
    report["means"] = {
        m: {k: float(np.mean([min(c[m][k], 100.0) for c in per_crop])) for k in SCORES} for m in METHODS
    }


def _markdown(report: dict[str, Any]) -> str:
    o = report["options"]
    means = report["means"]
    model = report["model"]
    if o["train"]:
        p = report["parity"]
        about = [
            f"Model: trained by this demo, depth {o['depth']}, width {o['width']}, {model['train_steps']} "
            f"steps at {o['size']}x{o['size']} on the builtin photos (CPU).",
            "",
            f"ONNX Runtime vs PyTorch, raw output max-abs: {p['max_abs']:.2e} "
            f"(tolerance {p['tolerance']:.0e}: {'pass' if p['passed'] else 'FAIL'}).",
            *(
                [f"`check_onnx`: {'PASS' if report['export_check']['passed'] else 'FAIL'}."]
                if report.get("export_check")
                else []
            ),
        ]
    else:
        record = model["record"]
        about = [
            f"Model: the default model shipped with pconv ({record.get('summary', '')}); sha256 checked.",
        ]
    lines = [
        "# pconv demo",
        "",
        *about,
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.2f} |" for k, v in report["timings_s"].items()],
        "",
        f"{len(report['crops'])} held-out {o['crop_size']}x{o['crop_size']} views (photos never used in "
        "training), holes spread over "
        f"{o['hole_ratio'][0]:.0%}-{o['hole_ratio'][1]:.0%}; metrics on the composite:",
        "",
        "| method | PSNR (dB) | SSIM | PSNR in holes (dB) | SSIM in holes |",
        "|---|---|---|---|---|",
        *[
            f"| {METHOD_TITLES[m]} | {means[m]['psnr']:.2f} | {means[m]['ssim']:.4f} | "
            f"{means[m]['psnr_hole']:.2f} | {means[m]['ssim_hole']:.4f} |"
            for m in METHODS
        ],
        "",
        "Per view (PSNR dB, whole image): "
        + "; ".join(
            f"{c['hole_ratio']:.0%} holes: pconv {c['pconv']['psnr']:.2f}, Telea {c['telea']['psnr']:.2f}, "
            f"NS {c['ns']['psnr']:.2f}"
            for c in report["crops"]
        ),
        "",
        "Every valid pixel of every pconv result is the input pixel: "
        f"{all(c['valid_pixels_exact'] for c in report['crops'])}.",
        "",
        "`grid.png` columns: masked input | OpenCV Telea | OpenCV Navier-Stokes | pconv | original.",
        "The per-bin comparison on the whole held-out set is in the README's quality section.",
        "",
    ]
    return "\n".join(lines)
