"""Every ``pconv train`` option, stated once: default, flag, help and check (stdlib only, so the CLI
builds its parser from here without torch; see :mod:`pconv.cliopts`)."""

from __future__ import annotations

from dataclasses import dataclass

from pconv.cliopts import OptionError, check, option
from pconv.contract import MASK_THRESHOLD

#: ``--augment`` levels: none (random scale + flip); geometric (+ all flips, 90° turns); full (+ colour).
AUGMENT_LEVELS = ("none", "geometric", "full")
#: ``--schedule`` choices.
SCHEDULES = ("constant", "cosine")
#: ``--amp`` choices (CUDA only; fp16 uses a gradient scaler).
AMP_MODES = ("off", "bf16", "fp16")


def _lo_hi(text: str) -> tuple[float, float]:
    """``"0.1,0.5"`` -> ``(0.1, 0.5)`` (the range is checked by :class:`TrainOptions`)."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise OptionError(f"expected LO,HI such as 0.1,0.5; got {text!r}") from None
    return lo, hi


@dataclass
class TrainOptions:
    """Every ``pconv train`` option. Defaults: a quick CPU run on the builtin photos.

    Paper settings: ``size=512, depth=8, width=1.0, batch=6`` (or ``size=256, depth=7``),
    ``vgg_weights`` set, then a second run with ``finetune=<first checkpoint>``.
    A bad value raises :class:`pconv.cliopts.OptionError` (a ``PconvError``) naming the flag.
    """

    data: str = option(
        "builtin",
        metavar="DIR|builtin",
        help="folder of training images (recursive; jpg/jpeg/png/webp), or 'builtin' for the "
        "photos bundled with scikit-image (chelsea is held out)",
    )
    masks: str = option(
        "procedural",
        metavar="DIR|procedural",
        help="folder of mask images (e.g. NVIDIA irregular masks; binarised at --mask-threshold, randomly "
        "dilated 9-49 px, rotated, translated, cropped), or 'procedural' for generated masks",
    )
    mask_white_is_hole: bool = option(
        True, flags=("--masks-black-is-hole",), help="mask files mark holes in black (default: white = hole)"
    )
    hole_ratio: tuple[float, float] = option(
        (0.1, 0.5), parse=_lo_hi, metavar="LO,HI", help="hole-area range of the procedural masks"
    )
    size: int = option(64, at_least=1, help="training crop size (a multiple of 2^depth)")
    depth: int | None = option(
        None,
        help="encoder levels: 8 = paper 512² model, 7 = 256² variant (default 4; when resuming "
        "or fine-tuning, the checkpoint's)",
    )
    width: float | None = option(
        None,
        help="channel multiplier, 1 = paper (default 0.25; when resuming or fine-tuning, the checkpoint's)",
    )
    batch: int = option(4, at_least=1, help="images per step per process (paper: 6)")
    steps: int = option(200, at_least=0, help="total steps of the run (--resume continues up to it)")
    lr: float | None = option(
        None, help="Adam learning rate (default 2e-4; 5e-5 with --finetune; with --resume, the run's)"
    )
    out: str = option(
        "runs/pconv",
        metavar="RUN",
        help="run folder: checkpoint.safetensors, train_state.pt, log.csv, samples/",
    )
    resume: bool = option(
        False,
        help="continue the run in --out at its saved step (pass the run's --data, --masks, --size, "
        "--seed, --hole-ratio and mask polarity again; a difference is an error)",
    )
    finetune: str | None = option(
        None,
        metavar="CKPT",
        help="fine-tune from this checkpoint in a new run (encoder BatchNorm frozen, lr 5e-5), or "
        "'default' for the model shipped with pconv; with --resume, continue that fine-tuning run",
    )
    int8_aware: bool = option(
        False,
        help="with --finetune: simulate the INT8 export's 8-bit rounding in the forward pass (all "
        "BatchNorm frozen), so `pconv export --precision int8` of the result stays close to FP32 quality "
        "(assumes the export's default --int8-keep-fp32 and the onnxruntime target)",
    )
    vgg_weights: str | None = option(
        None,
        metavar="FILE",
        help="local torchvision vgg16 state dict (.pth/.pt/.safetensors) for the perceptual and "
        "style losses; without it those terms are off (a warning says so)",
    )
    random_init_vgg: bool = option(
        False,
        help="use randomly initialised VGG-16 features for the perceptual/style terms (explicit "
        "opt-in; only for testing the pipeline)",
    )
    seed: int = option(0, help="seed for the model init and the data")
    device: str = option("auto", help="auto, cpu, cuda or cuda:N")
    amp: str = option("off", choices=AMP_MODES, help="mixed precision on CUDA (fp16 uses a gradient scaler)")
    log_every: int = option(10, at_least=1, metavar="N", help="CSV log row every N steps")
    sample_every: int = option(
        100,
        at_least=0,
        metavar="N",
        help="PNG grid (input | mask | output | composite | ground truth) every N steps; 0 = never",
    )
    checkpoint_every: int = option(
        100,
        at_least=0,
        metavar="N",
        help="checkpoint every N steps (the last step is always saved; 0 = only the last)",
    )
    mask_threshold: float = option(
        MASK_THRESHOLD,
        at_least=0.0,
        at_most=1.0,
        metavar="T",
        help="mask files: grey level (0-1, alpha applied) above T is white, as in pconv inpaint",
    )
    augment: str = option(
        "full",
        choices=AUGMENT_LEVELS,
        help="training-crop augmentation: none (random scale and flip only), geometric (+ all flips and "
        "90° turns), full (+ hue rotation, channel permutation, saturation/brightness/contrast jitter; "
        "grey images tinted with random colours)",
    )
    schedule: str = option(
        "cosine",
        choices=SCHEDULES,
        help="learning-rate schedule: constant, or cosine (linear warm-up, then cosine decay to 1% of "
        "--lr at --steps)",
    )
    warmup: int = option(
        100, at_least=0, metavar="N", help="warm-up steps of --schedule cosine (at most 10% of --steps)"
    )
    tv_weight: float = option(
        0.1,
        at_least=0.0,
        metavar="W",
        help="weight of the total-variation loss over the holes (the paper's 0.1; larger = smoother fills)",
    )
    threads: int | None = option(
        None,
        at_least=1,
        metavar="N",
        help="torch CPU threads (default: torch's choice; on a busy machine fewer can be much faster)",
    )
    workers: int = option(0, at_least=0, help="data-loading worker processes")
    progress: bool = option(True, help="no progress bar")

    def __post_init__(self) -> None:
        self.hole_ratio = (float(self.hole_ratio[0]), float(self.hole_ratio[1]))
        check(self)
        lo, hi = self.hole_ratio
        if not 0.0 <= lo <= hi <= 1.0:
            raise OptionError(f"--hole-ratio needs 0 <= LO <= HI <= 1; got {lo},{hi}")
        if self.int8_aware and not self.finetune:
            raise OptionError("--int8-aware fine-tunes a trained model: pass --finetune CKPT (or default)")
        if self.lr is not None and not self.lr > 0:
            raise OptionError(f"--lr must be > 0; got {self.lr}")
