"""CPU inference speed: reference formulation vs our PyTorch model vs ONNX Runtime on the export.

One run, 512x512, batch 1, FP32, the same thread count for every path:

(a) ``pconv.training.reference.reference_forward``: NVIDIA's formulation (full C_out x C_in
    ones-convolutions for the mask sums), PyTorch eager;
(b) our ``PConvUNet`` (single-channel mask sums), PyTorch eager;
(c) ONNX Runtime (CPU) on our explicit-form export, ORT_ENABLE_ALL (NCHWc layout transformer),
    sequential execution, graph optimised once and saved to a file that the timed session loads.

The paths run interleaved (a, b, c, a, b, c, ...) so background load hits them alike; the
median of ``--iterations`` runs after ``--warmup`` runs is reported (min too). Prints JSON.

INT8 rows (``int8``, skip with ``--no-int8``), in the same run: ONNX Runtime FP32 vs the INT8 export
(``pconv export --precision int8 --calibration builtin``) of the same model, for the 512² paper net
above and a small model (``--small-checkpoint``, default: the shipped ``pconv/models/default``
when present), 1 and 2 threads, batch 1 and 4, FP32 and INT8 interleaved; inputs are held-out photos
with irregular holes. Accuracy in the same run: max-abs / PSNR / SSIM of INT8 against FP32, and for
a trained small model the held-out PSNR / SSIM against the ground truth of both (the issue-14 goal:
within 0.3 dB and 0.005), plus which ops ONNX Runtime runs as integer kernels.

    python benchmarks/cpu_inference.py [--threads N] [--iterations 7] [--checkpoint CKPT] [--out FILE]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))
    except OSError:
        pass
    return []


def hole_mask(size: int, hole_fraction: float, seed: int) -> np.ndarray:
    """A (1, 1, size, size) mask (1 = valid) with random rectangular holes covering ~hole_fraction."""
    rng = np.random.default_rng(seed)
    mask = np.ones((size, size), dtype=np.float32)
    while 1.0 - mask.mean() < hole_fraction:
        h, w = rng.integers(size // 16, size // 4, size=2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        mask[y : y + h, x : x + w] = 0.0
    return mask[None, None]


def calibrated_model(seed: int, size: int, hole_fraction: float) -> Any:
    """A seeded untrained depth-8 ``PConvUNet`` whose BatchNorm statistics come from 2 forward passes.

    An untrained net with default statistics (mean 0, var 1) has outputs in the hundreds, which
    makes any absolute error bound meaningless; with calibrated statistics (what training gives)
    activations and outputs have image scale, as with a real checkpoint.
    """
    import torch

    from pconv.training.unet import PConvUNet

    torch.manual_seed(seed)
    model = PConvUNet(depth=8)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration passes
            module.reset_running_stats()
    model.train()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for i in range(2):
            image = torch.rand(1, 3, size, size, generator=generator)
            model(image, torch.from_numpy(hole_mask(size, hole_fraction, seed + 100 + i)))
    return model.eval()


def optimized_session(path: Path, threads: int) -> Any:
    """An ORT session on ``path`` optimised once (ORT_ENABLE_ALL) into a file, loaded unoptimised."""
    import onnxruntime as ort

    opt_path = path.with_suffix(".opt.onnx")
    if not opt_path.exists():
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(opt_path)
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    timed = ort.SessionOptions()
    timed.intra_op_num_threads = threads
    timed.inter_op_num_threads = 1
    timed.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    timed.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    timed.log_severity_level = 3
    return ort.InferenceSession(str(opt_path), timed, providers=["CPUExecutionProvider"])


def interleaved(fns: dict[str, Callable[[], Any]], iterations: int, warmup: int) -> dict[str, list[float]]:
    """Run every function ``warmup`` times, then ``iterations`` timed rounds (a, b, a, b, ...)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(iterations):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def _nhwc(x: np.ndarray) -> list[np.ndarray]:
    return [np.clip(img.transpose(1, 2, 0), 0.0, 1.0) for img in x]


def int8_section(
    models: list[tuple[str, Any, int, bool, tuple[str, ...] | None]],
    threads: list[int],
    batches: list[int],
    iterations: int,
    warmup: int,
    calibration_count: int,
    seed: int,
    tmp: Path,
) -> dict[str, Any]:
    """FP32 vs INT8 ONNX Runtime rows and accuracy for ``(label, model, size, trained, keep_fp32)``."""
    from pconv.contract import META_CALIBRATION
    from pconv.data.images import heldout_views
    from pconv.data.masks import generate_irregular_mask
    from pconv.eval.metrics import psnr, ssim
    from pconv.export.check import photo_inputs
    from pconv.export.onnx_export import export_onnx
    from pconv.export.quantize import CALIBRATION_HOLE_RATIO, Int8Options, optimized_op_counts
    from pconv.metadata import read_onnx_metadata

    section: dict[str, Any] = {"rows": [], "models": {}, "iterations": iterations}
    for label, model, size, trained, keep_fp32 in models:
        fp32_path = tmp / f"{label.split('+')[0]}_fp32.onnx"
        if not fp32_path.exists():
            export_onnx(model, fp32_path, form="explicit")
        t0 = time.perf_counter()
        int8_path = export_onnx(
            model,
            tmp / f"{label}_int8.onnx",
            precision="int8",
            int8=Int8Options(count=calibration_count, seed=seed, size=size, keep_fp32=keep_fp32),
        )
        export_s = time.perf_counter() - t0
        fp32_ops, int8_ops = optimized_op_counts(fp32_path), optimized_op_counts(int8_path)
        info: dict[str, Any] = {
            "size": size,
            "depth": model.config.depth,
            "width": model.config.width,
            "trained": trained,
            "int8_export_s (calibration + quantization)": round(export_s, 2),
            "calibration": f"builtin, {calibration_count} samples of {size}x{size}, seed {seed}",
            "fp32_layers": json.loads(read_onnx_metadata(int8_path)[META_CALIBRATION])["fp32_layers"],
            "ort_optimized_ops_fp32": fp32_ops,
            "ort_optimized_ops_int8": int8_ops,
            "int8_kernels": {k: v for k, v in int8_ops.items() if k.startswith("QLinear")},
            "float_convs_left": {k: int8_ops.get(k, 0) for k in ("Conv", "ConvTranspose")},
        }
        # Accuracy: INT8 vs FP32 on held-out photos with irregular holes (batch 4, same inputs).
        feeds = photo_inputs(max(batches), size, size, seed)
        s32, s8 = optimized_session(fp32_path, max(threads)), optimized_session(int8_path, max(threads))
        ref, got = s32.run(None, feeds), s8.run(None, feeds)
        out8, out32, comp8, comp32 = _nhwc(got[0]), _nhwc(ref[0]), _nhwc(got[1]), _nhwc(ref[1])
        valid = np.broadcast_to(feeds["mask"] > 0, got[1].shape)
        info["int8_vs_fp32"] = {
            "max_abs_output": float(np.abs(got[0] - ref[0]).max()),
            "mean_abs_output": float(np.abs(got[0] - ref[0]).mean()),
            "output_abs_max": float(np.abs(ref[0]).max()),
            "psnr_output_db": round(float(np.mean([psnr(a, b) for a, b in zip(out8, out32)])), 2),
            "psnr_composite_db": round(float(np.mean([psnr(a, b) for a, b in zip(comp8, comp32)])), 2),
            "ssim_output": round(float(np.mean([ssim(a, b) for a, b in zip(out8, out32)])), 5),
            "ssim_composite": round(float(np.mean([ssim(a, b) for a, b in zip(comp8, comp32)])), 5),
            "valid_pixels_bit_exact": bool(np.array_equal(got[1][valid], feeds["image"][valid])),
        }
        if trained:  # held-out quality against the ground truth, FP32 and INT8 (the goal)
            scores: dict[str, list[tuple[float, float]]] = {"fp32": [], "int8": []}
            view_size = max(model.config.size_multiple, 256)
            for i, (_, view) in enumerate(heldout_views(view_size)):
                rng = np.random.default_rng([seed, i])
                hole = generate_irregular_mask(view_size, view_size, rng, hole_ratio=CALIBRATION_HOLE_RATIO)
                image = view.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
                mask = (~hole).astype(np.float32)[None, None]
                truth = view.astype(np.float64) / 255.0
                for name, sess in (("fp32", s32), ("int8", s8)):
                    comp = sess.run(["composite"], {"image": image, "mask": mask})[0]
                    filled = _nhwc(comp)[0]
                    scores[name].append((psnr(filled, truth), ssim(filled, truth)))
            mean = {k: np.mean(np.asarray(v), axis=0) for k, v in scores.items()}
            info["heldout_vs_ground_truth"] = {
                "views": len(scores["fp32"]),
                "view_size": view_size,
                "psnr_fp32_db": round(float(mean["fp32"][0]), 3),
                "psnr_int8_db": round(float(mean["int8"][0]), 3),
                "ssim_fp32": round(float(mean["fp32"][1]), 5),
                "ssim_int8": round(float(mean["int8"][1]), 5),
                "psnr_drop_db": round(float(mean["fp32"][0] - mean["int8"][0]), 3),
                "ssim_drop": round(float(mean["fp32"][1] - mean["int8"][1]), 5),
            }
            drop = info["heldout_vs_ground_truth"]
            info["quality_goal"] = {
                "target": "held-out PSNR within 0.3 dB and SSIM within 0.005 of FP32",
                "met": bool(drop["psnr_drop_db"] <= 0.3 and drop["ssim_drop"] <= 0.005),
            }
        section["models"][label] = info
        for n_threads in threads:
            s32, s8 = optimized_session(fp32_path, n_threads), optimized_session(int8_path, n_threads)
            for batch in batches:
                batch_feeds = {k: np.ascontiguousarray(v[:batch]) for k, v in feeds.items()}
                load_before = os.getloadavg()
                runs: dict[str, Callable[[], Any]] = {
                    "fp32": functools.partial(s32.run, ["output"], batch_feeds),
                    "int8": functools.partial(s8.run, ["output"], batch_feeds),
                }
                times = interleaved(runs, iterations, warmup)
                load_after = os.getloadavg()
                med = {k: statistics.median(v) for k, v in times.items()}
                section["rows"].append(
                    {
                        "model": label,
                        "threads": n_threads,
                        "batch": batch,
                        "fp32_median_s": round(med["fp32"], 4),
                        "int8_median_s": round(med["int8"], 4),
                        "fp32_min_s": round(min(times["fp32"]), 4),
                        "int8_min_s": round(min(times["int8"]), 4),
                        "int8_speedup": round(med["fp32"] / med["int8"], 2),
                        "int8_speedup_min": round(min(times["fp32"]) / min(times["int8"]), 2),
                        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
                    }
                )
                print(json.dumps(section["rows"][-1]), flush=True)
    return section


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every path")
    parser.add_argument("--iterations", type=int, default=7, help="timed runs per path (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per path first")
    parser.add_argument("--size", type=int, default=512, help="image height and width")
    parser.add_argument("--hole-fraction", type=float, default=0.25, help="fraction of hole pixels")
    parser.add_argument(
        "--checkpoint",
        help="pconv checkpoint (default: seeded untrained depth-8 model, BatchNorm statistics calibrated)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decoder", choices=("subpixel", "resize"), default="subpixel", help="export option")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--no-int8", action="store_true", help="skip the INT8 rows")
    parser.add_argument(
        "--small-checkpoint",
        type=Path,
        default=None,
        help="small model of the INT8 rows (default: pconv/models/default.safetensors if present, else "
        "a seeded untrained depth-6 width-0.25 model with calibrated BatchNorm statistics)",
    )
    parser.add_argument(
        "--extra-checkpoint",
        type=Path,
        action="append",
        default=[],
        help="another trained small model for the INT8 rows (repeatable), e.g. one without INT8-aware "
        "fine-tuning for contrast",
    )
    parser.add_argument("--int8-threads", default="1,2", help="thread counts of the INT8 rows")
    parser.add_argument("--int8-batches", default="1,4", help="batch sizes of the INT8 rows")
    parser.add_argument("--int8-iterations", type=int, default=5, help="timed runs per INT8 row")
    parser.add_argument("--calibration-count", type=int, default=16, help="INT8 calibration samples")
    args = parser.parse_args(argv)

    import onnx
    import onnxruntime as ort
    import torch

    from pconv.export.onnx_export import export_onnx
    from pconv.training.checkpoint import load_checkpoint
    from pconv.training.reference import reference_forward

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = (
        load_checkpoint(args.checkpoint)
        if args.checkpoint
        else calibrated_model(args.seed, args.size, args.hole_fraction)
    )
    rng = np.random.default_rng(args.seed)
    image_np = rng.random((1, 3, args.size, args.size), dtype=np.float32)
    mask_np = hole_mask(args.size, args.hole_fraction, args.seed)
    image, mask = torch.from_numpy(image_np), torch.from_numpy(mask_np)

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", form="explicit", decoder=args.decoder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(Path(tmp) / "model.opt.onnx")
        t0 = time.perf_counter()
        ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        optimize_s = time.perf_counter() - t0
        timed = ort.SessionOptions()
        timed.intra_op_num_threads = args.threads
        timed.inter_op_num_threads = 1
        timed.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        timed.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # already optimised
        session = ort.InferenceSession(
            options.optimized_model_filepath, timed, providers=["CPUExecutionProvider"]
        )
        opt_ops = sorted({n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node})

        feeds = {"image": image_np, "mask": mask_np}

        def run_reference() -> np.ndarray:
            with torch.inference_mode():
                return reference_forward(model, image, mask).numpy()

        def run_model() -> np.ndarray:
            with torch.inference_mode():
                return model(image, mask).numpy()

        def run_ort() -> np.ndarray:
            return session.run(["output"], feeds)[0]

        paths: dict[str, Callable[[], np.ndarray]] = {
            "a_reference_pytorch": run_reference,
            "b_pconv_pytorch": run_model,
            "c_onnxruntime_explicit": run_ort,
        }
        results = {name: fn() for name, fn in paths.items()}
        for _ in range(max(0, args.warmup - 1)):
            for fn in paths.values():
                fn()
        times: dict[str, list[float]] = {name: [] for name in paths}
        load_before = os.getloadavg()
        for _ in range(args.iterations):
            for name, fn in paths.items():
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        load_after = os.getloadavg()

        int8 = None
        if not args.no_int8:
            label, small, small_trained = small_model(args)
            paper_trained = bool(args.checkpoint)
            int8 = int8_section(
                [
                    ("paper_512", model, args.size, paper_trained, None),  # default: enc1, dec1 FP32
                    ("paper_512+keep_dec1_only", model, args.size, paper_trained, ("dec1",)),
                    (label, small, args.size, small_trained, None),
                    *[
                        (f"small:{Path(path).stem}", load_checkpoint(path), args.size, True, None)
                        for path in args.extra_checkpoint
                    ],
                ],
                [int(t) for t in args.int8_threads.split(",")],
                [int(b) for b in args.int8_batches.split(",")],
                args.int8_iterations,
                max(1, args.warmup - 1),
                args.calibration_count,
                args.seed,
                Path(tmp),
            )
        load_end = os.getloadavg()

    ref_out = results["a_reference_pytorch"]
    base = statistics.median(times["a_reference_pytorch"])
    report: dict[str, Any] = {
        "benchmark": "cpu_inference",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "cpu": cpu_model(),
            "cpu_flags": cpu_flags(),
            "logical_cores": os.cpu_count(),
            "threads": args.threads,
            "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            "load_average_1_5_15_at_end": [round(v, 2) for v in load_end],
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "onnx": onnx.__version__,
        },
        "setup": {
            "size": args.size,
            "batch": 1,
            "precision": "fp32",
            "hole_fraction": round(float(1.0 - mask_np.mean()), 4),
            "model": args.checkpoint
            or "PConvUNet(depth=8), untrained (seeded), BatchNorm statistics calibrated on 2 random inputs",
            "decoder": args.decoder,
            "iterations": args.iterations,
            "warmup": args.warmup,
            "ort_optimize_s": round(optimize_s, 3),
            "ort_optimized_ops": opt_ops,
            "output_abs_max": float(np.abs(ref_out).max()),
        },
        "paths": {
            name: {
                "median_s": round(statistics.median(ts), 4),
                "min_s": round(min(ts), 4),
                "speedup_vs_a": round(base / statistics.median(ts), 2),
                "max_abs_vs_a": float(np.abs(results[name] - ref_out).max()),
            }
            for name, ts in times.items()
        },
    }
    c = report["paths"]["c_onnxruntime_explicit"]
    report["goal"] = {
        "target": "c >= 3.5x faster than a at max-abs <= 1e-4",
        "met": bool(c["speedup_vs_a"] >= 3.5 and c["max_abs_vs_a"] <= 1e-4),
    }
    if int8 is not None:
        report["int8"] = int8
        paper = [r for r in int8["rows"] if r["model"] == "paper_512" and r["batch"] == 1]
        best = max(paper, key=lambda r: r["threads"]) if paper else None
        report["int8_goal"] = {
            "target": "INT8 >= 2.5x FP32 ONNX Runtime, 512x512 paper net, batch 1, most threads",
            "speedup": best["int8_speedup"] if best else None,
            "met": bool(best and best["int8_speedup"] >= 2.5),
            "paper_512_rows_at_or_above_2.5x": [
                f"{r['threads']} thread(s), batch {r['batch']}: {r['int8_speedup']}x"
                for r in int8["rows"]
                if r["model"] == "paper_512" and r["int8_speedup"] >= 2.5
            ],
        }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return report


def small_model(args: argparse.Namespace) -> tuple[str, Any, bool]:
    """The INT8 rows' small model: a checkpoint (trained) or a seeded untrained one."""
    import torch

    from pconv.models import DEFAULT_CHECKPOINT
    from pconv.training.checkpoint import load_checkpoint
    from pconv.training.unet import PConvUNet

    path = args.small_checkpoint or (DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None)
    if path is not None:
        return (f"small:{Path(path).stem}", load_checkpoint(path), True)
    torch.manual_seed(args.seed)
    model = PConvUNet(depth=6, width=0.25)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        for i in range(2):
            image = torch.rand(2, 3, args.size, args.size)
            model(image, torch.from_numpy(np.repeat(hole_mask(args.size, args.hole_fraction, i), 2, axis=0)))
    return ("small_untrained", model.eval(), False)


if __name__ == "__main__":
    main()
