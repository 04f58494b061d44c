"""``pconv train``: the training stage's command line (stdlib-only imports at module level)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from pconv.training.options import AUGMENT_LEVELS, SCHEDULES, TrainOptions

PAPER_NOTE = (
    "Paper settings: --size 512 --depth 8 --width 1 --batch 6 --vgg-weights vgg16.pth, then a second "
    "run with --finetune RUN/checkpoint.safetensors (lr 5e-5, encoder BatchNorm frozen). "
    "Multi-GPU: torchrun --nproc_per_node N -m pconv train ... (--batch is per process)."
)


def _hole_ratio(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected LO,HI such as 0.1,0.5; got {text!r}") from exc
    if not 0.0 <= lo <= hi <= 1.0:
        raise argparse.ArgumentTypeError(f"need 0 <= LO <= HI <= 1; got {text!r}")
    return lo, hi


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show real defaults only: options whose default depends on the run say so in their help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        if isinstance(action.default, tuple):
            return f"{action.help} (default: {','.join(str(v) for v in action.default)})"
        return super()._get_help_string(action)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train (or resume / fine-tune) the partial-convolution U-Net",
        description="Train the partial-convolution U-Net of Liu et al. (2018). The defaults are a quick "
        "CPU run on the photos bundled with scikit-image. " + PAPER_NOTE,
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "--data",
        default="builtin",
        metavar="DIR|builtin",
        help="folder of training images (recursive; jpg/jpeg/png/webp), or 'builtin' for the "
        "photos bundled with scikit-image (chelsea is held out)",
    )
    p.add_argument(
        "--masks",
        default="procedural",
        metavar="DIR|procedural",
        help="folder of mask images (e.g. NVIDIA irregular masks; binarised at 0.6, randomly "
        "dilated 9-49 px, rotated, translated, cropped), or 'procedural' for generated masks",
    )
    p.add_argument(
        "--masks-black-is-hole",
        action="store_true",
        help="mask files mark holes in black (default: white = hole)",
    )
    p.add_argument(
        "--hole-ratio",
        type=_hole_ratio,
        default=(0.1, 0.5),
        metavar="LO,HI",
        help="hole-area range of the procedural masks",
    )
    p.add_argument("--size", type=int, default=64, help="training crop size (a multiple of 2^depth)")
    p.add_argument(
        "--depth",
        type=int,
        default=None,
        help="encoder levels: 8 = paper 512² model, 7 = 256² variant (default 4; when resuming "
        "or fine-tuning, the checkpoint's)",
    )
    p.add_argument(
        "--width",
        type=float,
        default=None,
        help="channel multiplier, 1 = paper (default 0.25; when resuming or fine-tuning, the checkpoint's)",
    )
    p.add_argument("--batch", type=int, default=4, help="images per step per process (paper: 6)")
    p.add_argument(
        "--steps", type=int, default=200, help="total steps of the run (--resume continues up to it)"
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Adam learning rate (default 2e-4; 5e-5 with --finetune; with --resume, the run's)",
    )
    p.add_argument(
        "--out",
        default="runs/pconv",
        metavar="RUN",
        help="run folder: checkpoint.safetensors, train_state.pt, log.csv, samples/",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out at its saved step (pass the run's --data, --masks, --size, "
        "--seed, --hole-ratio and mask polarity again; a difference is an error)",
    )
    p.add_argument(
        "--finetune",
        default=None,
        metavar="CKPT",
        help="fine-tune from this checkpoint in a new run (encoder BatchNorm frozen, lr 5e-5), or "
        "'default' for the model shipped with pconv; with --resume, continue that fine-tuning run",
    )
    p.add_argument(
        "--vgg-weights",
        default=None,
        metavar="FILE",
        help="local torchvision vgg16 state dict (.pth/.pt/.safetensors) for the perceptual and "
        "style losses; without it those terms are off (a warning says so)",
    )
    p.add_argument(
        "--random-init-vgg",
        action="store_true",
        help="use randomly initialised VGG-16 features for the perceptual/style terms (explicit "
        "opt-in; only for testing the pipeline)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the model init and the data")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--amp",
        choices=("off", "bf16", "fp16"),
        default="off",
        help="mixed precision on CUDA (fp16 uses a gradient scaler)",
    )
    p.add_argument("--log-every", type=int, default=10, metavar="N", help="CSV log row every N steps")
    p.add_argument(
        "--sample-every",
        type=int,
        default=100,
        metavar="N",
        help="PNG grid (input | mask | output | composite | ground truth) every N steps; 0 = never",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=100,
        metavar="N",
        help="checkpoint every N steps (the last step is always saved)",
    )
    p.add_argument(
        "--mask-threshold",
        type=float,
        default=TrainOptions.mask_threshold,
        metavar="T",
        help="mask files: grey level (0-1, alpha applied) above T is white, as in pconv inpaint",
    )
    p.add_argument(
        "--augment",
        choices=AUGMENT_LEVELS,
        default=TrainOptions.augment,
        help="training-crop augmentation: none (random scale and flip only), geometric (+ all flips and "
        "90° turns), full (+ hue rotation, channel permutation, saturation/brightness/contrast jitter; "
        "grey images tinted with random colours)",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=TrainOptions.schedule,
        help="learning-rate schedule: constant, or cosine (linear warm-up, then cosine decay to 1%% of "
        "--lr at --steps)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=TrainOptions.warmup,
        metavar="N",
        help="warm-up steps of --schedule cosine (at most 10%% of --steps)",
    )
    p.add_argument(
        "--tv-weight",
        type=float,
        default=TrainOptions.tv_weight,
        metavar="W",
        help="weight of the total-variation loss over the holes (the paper's 0.1; larger = smoother fills)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch CPU threads (default: torch's choice; on a busy machine fewer can be much faster)",
    )
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from pconv.training.train import TrainOptions, train

    opts = TrainOptions(
        data=args.data,
        masks=args.masks,
        size=args.size,
        depth=args.depth,
        width=args.width,
        batch=args.batch,
        steps=args.steps,
        lr=args.lr,
        out=args.out,
        resume=args.resume,
        finetune=args.finetune,
        vgg_weights=args.vgg_weights,
        random_init_vgg=args.random_init_vgg,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        log_every=args.log_every,
        sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every,
        workers=args.workers,
        hole_ratio=args.hole_ratio,
        mask_white_is_hole=not args.masks_black_is_hole,
        mask_threshold=args.mask_threshold,
        augment=args.augment,
        schedule=args.schedule,
        warmup=args.warmup,
        tv_weight=args.tv_weight,
        threads=args.threads,
        progress=not args.no_progress,
    )
    result = train(opts)  # warnings print as one line: pconv.apps.cli installs that for every command

    if int(os.environ.get("RANK", "0")) == 0:
        last = result.history[-1] if result.history else None
        summary = f"; last loss {last['total']:.4f}" if last else ""
        print(f"trained to step {result.steps}{summary}; checkpoint: {result.checkpoint}")
    return 0
