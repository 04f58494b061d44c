"""CPU inference speed: reference formulation vs our PyTorch model vs ONNX Runtime on the export.

One run, 512x512, batch 1, FP32, the same thread count for every path:

(a) ``pconv.training.reference.reference_forward``: NVIDIA's formulation (full C_out x C_in
    ones-convolutions for the mask sums), PyTorch eager;
(b) our ``PConvUNet`` (single-channel mask sums), PyTorch eager;
(c) ONNX Runtime (CPU) on our explicit-form export, ORT_ENABLE_ALL (NCHWc layout transformer),
    sequential execution, graph optimised once and saved to a file that the timed session loads.

The paths run interleaved (a, b, c, a, b, c, ...) so background load hits them alike; the
median of ``--iterations`` runs after ``--warmup`` runs is reported (min too). Prints JSON.

    python benchmarks/cpu_inference.py [--threads N] [--iterations 7] [--checkpoint CKPT] [--out FILE]
"""

from __future__ import annotations

import argparse
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

    from pconv.training import PConvUNet

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
    args = parser.parse_args(argv)

    import onnx
    import onnxruntime as ort
    import torch

    from pconv.export.onnx_export import export_onnx
    from pconv.training import load_checkpoint
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
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
