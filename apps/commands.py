"""``pconv doctor`` and ``pconv demo``: the commands that span several stages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    d = sub.add_parser(
        "doctor",
        help="check what is installed and usable (torch, ONNX Runtime, TensorRT, GPU, plugin, VGG weights)",
        description="Report each piece pconv can use and, for each missing one, the exact command that fixes "
        "it. Exit code 0 when the CPU runtime (numpy + onnxruntime) works and --model (if given) opens, 1 "
        "otherwise.",
    )
    d.add_argument(
        "--vgg-weights",
        default=None,
        metavar="FILE",
        help="VGG-16 weights to check (else $PCONV_VGG_WEIGHTS)",
    )
    d.add_argument(
        "--plugin-library", default=None, metavar="SO", help="plugin library to check (else the default)"
    )
    d.add_argument("--model", default=None, metavar="M", help="also try opening this model")
    d.add_argument("--json", action="store_true", help="print the checks as JSON")
    d.set_defaults(func=run_doctor)

    from pconv.apps.demo import DemoOptions  # numpy only at import time

    defaults = DemoOptions()  # the one place the demo's defaults are written
    m = sub.add_parser(
        "demo",
        help="the shipped model vs OpenCV on held-out photos, in seconds (--train: the whole pipeline)",
        description="Inpaint held-out photos (never used in training) with the model that ships with pconv "
        "and with OpenCV's Telea and Navier-Stokes methods, and write OUT/grid.png, OUT/report.md and "
        "OUT/report.json (PSNR/SSIM of each method, whole image and in the holes). Seconds on a CPU; needs "
        "pconv[eval] for OpenCV. With --train, first train a small model on the photos bundled with "
        "scikit-image, export it to ONNX and check ONNX-vs-PyTorch parity, then compare that model "
        "(about a minute on 2 CPU cores; needs pconv[train,export,eval]).",
    )
    m.add_argument(
        "--out",
        default=defaults.out,
        metavar="DIR",
        help="output folder; with --train, its train/ subfolder from an earlier demo is replaced "
        "(default: %(default)s)",
    )
    m.add_argument(
        "--train",
        action="store_true",
        help="train, export and check a small model first, and compare it instead of the shipped one",
    )
    m.add_argument(
        "--steps", type=int, default=defaults.steps, help="--train: training steps (default: %(default)s)"
    )
    m.add_argument(
        "--size",
        type=int,
        default=defaults.size,
        help="--train: training crop size, a multiple of 2^depth (default: %(default)s)",
    )
    m.add_argument(
        "--depth", type=int, default=defaults.depth, help="--train: U-Net depth (default: %(default)s)"
    )
    m.add_argument(
        "--width",
        type=float,
        default=defaults.width,
        help="--train: channel width multiplier (default: %(default)s)",
    )
    m.add_argument(
        "--batch",
        type=int,
        default=defaults.batch,
        help="--train: training batch size (default: %(default)s)",
    )
    m.add_argument(
        "--crops", type=int, default=defaults.crops, help="held-out views to inpaint (default: %(default)s)"
    )
    m.add_argument(
        "--crop-size", type=int, default=defaults.crop_size, help="held-out view size (default: %(default)s)"
    )
    m.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seed for training, crops and masks (default: %(default)s)",
    )
    m.add_argument(
        "--threads",
        type=int,
        default=defaults.threads,
        help="--train: torch CPU threads for training (0 = torch's default); the demo model is tiny, so one "
        "thread is nearly as fast and does not slow down on a busy machine (default: %(default)s)",
    )
    m.set_defaults(func=run_demo)


def run_doctor(args: argparse.Namespace) -> int:
    from pconv.apps.doctor import format_checks, run_checks

    checks = run_checks(vgg_weights=args.vgg_weights, plugin_library=args.plugin_library, model=args.model)
    if args.json:
        print(json.dumps([c.to_dict() for c in checks], indent=2))
    else:
        print(format_checks(checks))
    ok = all(c.ok for c in checks if c.required or c.asked)  # the CPU runtime, and a --model asked for
    return 0 if ok else 1


def run_demo(args: argparse.Namespace) -> int:
    from pconv.apps.demo import DemoOptions
    from pconv.apps.demo import run_demo as demo

    report = demo(
        DemoOptions(
            out=args.out,
            train=args.train,
            steps=args.steps,
            size=args.size,
            depth=args.depth,
            width=args.width,
            batch=args.batch,
            crops=args.crops,
            crop_size=args.crop_size,
            seed=args.seed,
            threads=args.threads,
        )
    )
    print(f"demo done in {report['timings_s']['total']:.1f} s: see {Path(args.out) / 'report.md'}")
    return 0
