"""``pconv train``: the training stage's command line, built from :class:`TrainOptions` (stdlib only)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from pconv.cliopts import add_options, from_args
from pconv.training.options import TrainOptions

PAPER_NOTE = (
    "Paper settings: --size 512 --depth 8 --width 1 --batch 6 --vgg-weights vgg16.pth, then a second "
    "run with --finetune RUN/checkpoint.safetensors (lr 5e-5, encoder BatchNorm frozen). "
    "Multi-GPU: torchrun --nproc_per_node N -m pconv train ... (--batch is per process)."
)


def register(sub: Any) -> None:
    """Add ``train``: every flag, default and check comes from :class:`TrainOptions`."""
    p = sub.add_parser(
        "train",
        help="train (or resume / fine-tune) the partial-convolution U-Net",
        description="Train the partial-convolution U-Net of Liu et al. (2018). The defaults are a quick "
        "CPU run on the photos bundled with scikit-image. " + PAPER_NOTE,
    )
    add_options(p, TrainOptions)
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    opts = from_args(TrainOptions, args)  # a bad value is a one-line PconvError, before torch loads

    from pconv.training.train import train

    result = train(opts)  # warnings print as one line: pconv.apps.cli installs that for every command
    if int(os.environ.get("RANK", "0")) == 0:
        last = result.history[-1] if result.history else None
        summary = f"; last loss {last['total']:.4f}" if last else ""
        print(f"trained to step {result.steps}{summary}; checkpoint: {result.checkpoint}")
    return 0
