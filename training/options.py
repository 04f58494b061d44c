"""Every ``pconv train`` option, stated once (stdlib only, so the CLI reads defaults without torch)."""

from __future__ import annotations

from dataclasses import dataclass

#: ``--augment`` levels: none (random scale + flip); geometric (+ all flips, 90° turns); full (+ colour).
AUGMENT_LEVELS = ("none", "geometric", "full")
#: ``--schedule`` choices.
SCHEDULES = ("constant", "cosine")


@dataclass
class TrainOptions:
    """Every ``pconv train`` option. Defaults: a quick CPU run on the builtin photos.

    Paper settings: ``size=512, depth=8, width=1.0, batch=6`` (or ``size=256, depth=7``),
    ``vgg_weights`` set, then a second run with ``finetune=<first checkpoint>``.
    """

    data: str = "builtin"  # a folder of images, or "builtin" (photos bundled with scikit-image)
    masks: str = "procedural"  # a folder of mask images, or "procedural"
    size: int = 64
    depth: int | None = None  # None: 4 (or the fine-tuned checkpoint's / resumed run's config)
    width: float | None = None  # None: 0.25 (or from the checkpoint)
    batch: int = 4
    steps: int = 200  # total steps of this run (resume continues up to it)
    lr: float | None = None  # None: 2e-4, or 5e-5 with finetune
    out: str = "runs/pconv"
    resume: bool = False
    finetune: str | None = None  # checkpoint to fine-tune from (encoder BN frozen)
    vgg_weights: str | None = None
    random_init_vgg: bool = False
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "off"  # off | bf16 | fp16 (CUDA only)
    log_every: int = 10
    sample_every: int = 100  # 0 = never
    checkpoint_every: int = 100  # a final checkpoint is always written
    workers: int = 0
    hole_ratio: tuple[float, float] = (0.1, 0.5)
    mask_white_is_hole: bool = True
    mask_threshold: float = 0.5  # mask files: grey above this is white (= pconv.imagefiles.MASK_THRESHOLD)
    augment: str = "full"  # none | geometric (flips, 90° turns) | full (geometric + colour, grey tint)
    schedule: str = "cosine"  # constant | cosine (warm-up, then cosine decay to 1% of --lr)
    warmup: int = 100  # linear warm-up steps of the cosine schedule
    tv_weight: float = 0.1  # weight of the total-variation term (the paper's 0.1)
    threads: int | None = None  # torch CPU threads (None: torch's default)
    progress: bool = True

    def __post_init__(self) -> None:
        self.hole_ratio = (float(self.hole_ratio[0]), float(self.hole_ratio[1]))
