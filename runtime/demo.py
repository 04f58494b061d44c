"""``pconv demo``: the whole pipeline on the built-in photos, on a CPU, in a few minutes.

1. train a small model on the photos bundled with scikit-image (``pconv.training.train``);
2. export it to ONNX (``pconv.export.export_onnx``);
3. check ONNX Runtime against PyTorch (``pconv.export.check_onnx`` when available, and a direct
   max-abs on the demo's own held-out inputs);
4. inpaint crops of the held-out photo (never seen in training) with :class:`pconv.runtime.Inpainter`;
5. write ``grid.png`` (masked input | mean-colour fill | pconv | original), ``report.md`` and
   ``report.json`` (timings per stage, parity, PSNR inside the holes vs. a mean-colour fill).

This is the one runtime module that needs torch (it trains); it imports it only when run.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: ONNX Runtime vs PyTorch raw-output tolerance for an FP32 graph.
PARITY_TOLERANCE = 1e-4


@dataclass
class DemoOptions:
    out: str = "demo_out"
    steps: int = 1500
    size: int = 64
    depth: int = 4
    width: float = 0.25
    batch: int = 4
    crops: int = 6
    crop_size: int = 128
    seed: int = 0
    hole_ratio: tuple[float, float] = (0.1, 0.3)
    progress: bool = True
    threads: int = 1  # torch CPU threads while training (restored afterwards)


def _psnr_in(result: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    err = (
        float(np.mean((result[region].astype(np.float64) - target[region].astype(np.float64)) ** 2))
        / 255.0**2
    )
    return math.inf if err == 0 else 10.0 * math.log10(1.0 / err)


def _mean_fill(image: np.ndarray, holes: np.ndarray) -> np.ndarray:
    out = image.copy()
    valid = ~holes
    colour = image[valid].mean(axis=0) if valid.any() else np.full(3, 127.5)
    out[holes] = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return out


def _parity(
    checkpoint: Path, onnx_path: Path, images: list[np.ndarray], holes: list[np.ndarray]
) -> dict[str, Any]:
    """Max |ONNX Runtime - PyTorch| on raw outputs for the demo's own inputs (padded as the runtime does)."""
    import torch

    from pconv.runtime.loader import open_backend
    from pconv.training import load_checkpoint

    model = load_checkpoint(checkpoint)
    backend = open_backend(onnx_path, backend="onnxruntime", providers=["CPUExecutionProvider"])
    m = backend.info.size_multiple
    worst = 0.0
    for image, hole in zip(images, holes):
        h, w = hole.shape
        ph, pw = -(-h // m) * m, -(-w // m) * m
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
        from pconv.export import check_onnx
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
    """Run the demo and return the report (also written to ``opts.out``).

    Training uses ``opts.threads`` torch threads (default 1): the demo model is tiny, so more
    threads gain little, and on a busy machine oversubscribed threads slow training many-fold.
    """
    from pconv.errors import require

    torch: Any = require("torch", "train", "PyTorch (the demo trains a model)")
    require("onnx", "export", "onnx (the demo exports the model)")
    previous_threads = torch.get_num_threads()
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    try:
        return _run_demo(opts)
    finally:
        torch.set_num_threads(previous_threads)


def _run_demo(opts: DemoOptions) -> dict[str, Any]:
    from pconv.errors import PconvError
    from pconv.export import export_onnx
    from pconv.runtime import Inpainter
    from pconv.runtime.imageio import write_png
    from pconv.training.data import heldout_crops
    from pconv.training.masks import generate_irregular_mask
    from pconv.training.train import TrainOptions, train

    if opts.size % (2**opts.depth):
        raise PconvError(f"--size {opts.size} must be a multiple of 2^depth = {2**opts.depth}")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / "train"
    if run_dir.exists():  # the demo's own previous training run: start fresh
        shutil.rmtree(run_dir)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    t0 = time.perf_counter()
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
    timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    onnx_path = export_onnx(result.checkpoint, out / "model.onnx")
    timings["export"] = time.perf_counter() - t0

    rng = np.random.default_rng([opts.seed, 7])
    crops = heldout_crops(opts.crop_size, count=opts.crops, seed=opts.seed)
    holes = [generate_irregular_mask(c.shape[0], c.shape[1], rng, hole_ratio=opts.hole_ratio) for c in crops]

    t0 = time.perf_counter()
    parity = _parity(result.checkpoint, onnx_path, crops, holes)
    export_check = _export_check(result.checkpoint, onnx_path)
    timings["parity"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with Inpainter(onnx_path, backend="onnxruntime") as inpainter:
        results = inpainter(crops, holes, batch_size=opts.crops)
        providers = getattr(inpainter.backend, "providers", None)
    timings["inference"] = time.perf_counter() - t0

    rows, per_crop = [], []
    for crop, hole, res in zip(crops, holes, results):
        baseline = _mean_fill(crop, hole)
        shown = crop.copy()
        shown[hole] = 255
        rows.append([shown, baseline, res, crop])
        per_crop.append(
            {
                "hole_ratio": float(hole.mean()),
                "psnr_pconv": _psnr_in(res, crop, hole),
                "psnr_mean_fill": _psnr_in(baseline, crop, hole),
                "valid_pixels_exact": bool(np.array_equal(res[~hole], crop[~hole])),
            }
        )
    grid_path = write_png(out / "grid.png", _grid(rows))
    timings["total"] = time.perf_counter() - t_start

    mean_pconv = float(np.mean([c["psnr_pconv"] for c in per_crop]))
    mean_fill = float(np.mean([c["psnr_mean_fill"] for c in per_crop]))
    report: dict[str, Any] = {
        "options": asdict(opts),
        "checkpoint": str(result.checkpoint),
        "onnx": str(onnx_path),
        "grid": str(grid_path),
        "train_steps": result.steps,
        "final_loss": result.history[-1].get("total") if result.history else None,
        "timings_s": timings,
        "parity": parity,
        "export_check": export_check,
        "inference": {
            "backend": "onnxruntime",
            "providers": providers,
            "images": len(crops),
            "ms_per_image": 1e3 * timings["inference"] / max(1, len(crops)),
        },
        "psnr_in_holes_db": {"pconv": mean_pconv, "mean_fill": mean_fill},
        "crops": per_crop,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.md").write_text(_markdown(report))
    return report


def _markdown(report: dict[str, Any]) -> str:
    t = report["timings_s"]
    p = report["parity"]
    q = report["psnr_in_holes_db"]
    o = report["options"]
    lines = [
        "# pconv demo",
        "",
        f"Model: depth {o['depth']}, width {o['width']}, trained {report['train_steps']} steps at "
        f"{o['size']}x{o['size']} on the built-in photos (CPU); last logged loss "
        f"{report['final_loss'] if report['final_loss'] is None else round(report['final_loss'], 4)}.",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.2f} |" for k, v in t.items()],
        "",
        f"ONNX Runtime vs PyTorch, raw output max-abs: {p['max_abs']:.2e} "
        f"(tolerance {p['tolerance']:.0e}: {'pass' if p['passed'] else 'FAIL'}).",
        *(
            [f"`pconv.export.check_onnx`: {'PASS' if report['export_check']['passed'] else 'FAIL'}."]
            if report.get("export_check")
            else []
        ),
        "",
        f"PSNR inside the holes on {len(report['crops'])} held-out {o['crop_size']}x{o['crop_size']} crops "
        f"(never seen in training): pconv {q['pconv']:.2f} dB vs mean-colour fill {q['mean_fill']:.2f} dB.",
        "Every valid pixel of every result is the input pixel: "
        f"{all(c['valid_pixels_exact'] for c in report['crops'])}.",
        "",
        "`grid.png` columns: masked input | mean-colour fill | pconv | original.",
        "",
        "A demo-sized model trained for minutes on five photos: expect plausible colours and blurry",
        "structure, not the paper's quality (that needs the paper settings and a large dataset).",
        "",
    ]
    return "\n".join(lines)
