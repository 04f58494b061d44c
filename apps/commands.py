"""``pconv doctor`` and ``pconv demo``: the commands that span several stages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from pconv.apps.options import DemoOptions, DoctorOptions
    from pconv.cliopts import add_options

    d = sub.add_parser(
        "doctor",
        help="check what is installed and usable (torch, ONNX Runtime, TensorRT, GPU, plugin, VGG weights)",
        description="Report each piece pconv can use and, for each missing one, the exact command that fixes "
        "it. Exit code 0 when the CPU runtime (numpy + onnxruntime) works and --model (if given) opens, 1 "
        "otherwise.",
    )
    add_options(d, DoctorOptions)
    d.set_defaults(func=run_doctor)

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
    add_options(m, DemoOptions)
    m.set_defaults(func=run_demo)


def run_doctor(args: argparse.Namespace) -> int:
    from pconv.apps.doctor import format_checks, run_checks
    from pconv.apps.options import DoctorOptions
    from pconv.cliopts import from_args

    opts = from_args(DoctorOptions, args)
    checks = run_checks(vgg_weights=opts.vgg_weights, plugin_library=opts.plugin_library, model=opts.model)
    if opts.json:
        print(json.dumps([c.to_dict() for c in checks], indent=2))
    else:
        print(format_checks(checks))
    ok = all(c.ok for c in checks if c.required or c.asked)  # the CPU runtime, and a --model asked for
    return 0 if ok else 1


def run_demo(args: argparse.Namespace) -> int:
    from pconv.apps.demo import run_demo as demo
    from pconv.apps.options import DemoOptions
    from pconv.cliopts import from_args

    opts = from_args(DemoOptions, args)
    report = demo(opts)
    print(f"demo done in {report['timings_s']['total']:.1f} s: see {Path(opts.out) / 'report.md'}")
    return 0
