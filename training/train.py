"""Training: :func:`train` = :func:`start_run` (set-up: device, run folder, model, optimizer, loss, data)
then :func:`loop` (one readable loop), driven by :class:`TrainOptions`.

Stages (paper, Sec. 4): train from scratch with Adam at lr 2e-4, then fine-tune at lr 5e-5 with the
encoder BatchNorm frozen (eval mode, no gradient), because BN statistics are skewed by holes.

Run folder ``RUN`` (``--out``)::

    RUN/checkpoint.safetensors   model weights + config (training.checkpoint.load_checkpoint rebuilds it)
    RUN/train_state.pt           optimizer state, step, RNG, options (torch.save of tensors and
                                 plain containers; read back with weights_only=True)
    RUN/log.csv                  one row per --log-every steps
    RUN/samples/step_XXXXXXX.png input | mask (white = hole) | output | composite | ground truth

    RUN/steps/step_XXXXXXX/      the two checkpoint files of one saved step (pconv.training.runfolder)

Both checkpoint files are committed together (a new step folder appears by one rename; the top-level
files are links to the latest) by rank 0 only; SIGINT/SIGTERM saves the current step before stopping.

Stages and resuming:

* ``train(TrainOptions(out=RUN))`` starts a run; it refuses a RUN that already holds one.
* ``resume=True`` continues RUN at the exact step it stopped (same stage, same options for the
  model; ``steps`` is the total to reach). The data options (data, masks, size, seed, hole ratio,
  mask polarity) must match the run's (a clear error names any that differ); without ``lr`` the
  run's own learning rate is kept. Data sample ``i`` is a pure function of (seed, i), so a
  resumed run sees exactly the samples an uninterrupted run would have.
* ``finetune=CKPT`` starts a fine-tuning run in RUN from CKPT's weights (model config from CKPT,
  fresh Adam at lr 5e-5 unless ``lr`` is given, encoder BN frozen, steps counted from 0).
  ``finetune=CKPT, resume=True`` continues that fine-tuning run (the state file remembers the
  stage, so BN stays frozen).

Distributed: launch with ``torchrun --nproc_per_node N -m pconv train ...``; RANK, WORLD_SIZE and
LOCAL_RANK come from the environment; NCCL on CUDA, gloo on CPU. ``batch`` is per process; each
rank draws its own disjoint global sample indices.
"""

from __future__ import annotations

import csv
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import Tensor, nn

from pconv.config import ModelConfig
from pconv.errors import PconvError
from pconv.fileio import atomic_write
from pconv.models import resolve_checkpoint
from pconv.training.augment import check_level
from pconv.training.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from pconv.training.dataset import StepIndexSampler, make_dataset
from pconv.training.losses import LOSS_TERMS, InpaintingLoss, build_loss
from pconv.training.options import TrainOptions
from pconv.training.runfolder import commit_step, has_run, latest_step_dir
from pconv.training.unet import PConvUNet, composite

PAPER_LR = 2e-4
PAPER_FINETUNE_LR = 5e-5
CHECKPOINT_NAME = "checkpoint.safetensors"
STATE_NAME = "train_state.pt"
LOG_NAME = "log.csv"
STEP_META = "pconv_step"  # checkpoint metadata: the step its weights belong to
LOG_FIELDS = ("step", "total", *LOSS_TERMS, "lr", "sec_per_step")
#: The files of one saved step (committed together: pconv.training.runfolder).
RUN_FILES = (CHECKPOINT_NAME, STATE_NAME)
#: Values of --data / --masks that are not folders (compared as they are, not as paths).
NOT_A_FOLDER = ("builtin", "procedural")


@dataclass
class TrainResult:
    checkpoint: Path
    steps: int  # the step the run stopped at (total, including resumed steps)
    history: list[dict[str, float]] = field(default_factory=list)  # the rows logged by this call


DEFAULT_DEPTH = 4
DEFAULT_WIDTH = 0.25


# -- distributed ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank)


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise PconvError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PconvError("--device cuda: no CUDA GPU is available here (use --device cpu)")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


# -- run folder -------------------------------------------------------------------------------


def resolve_config(
    opts: TrainOptions, state: dict[str, Any] | None, source: ModelConfig | None = None
) -> ModelConfig:
    """The model config: the resumed run's, the fine-tuned checkpoint's (``source``), or the options'."""
    if state is not None:
        config = ModelConfig.from_json(state["model_config"])
    elif source is not None:
        config = source
    else:
        try:
            config = ModelConfig(
                depth=opts.depth or DEFAULT_DEPTH,
                width=opts.width if opts.width is not None else DEFAULT_WIDTH,
            )
        except ValueError as exc:
            raise PconvError(str(exc)) from exc
    for name, given, have in (("depth", opts.depth, config.depth), ("width", opts.width, config.width)):
        if given is not None and given != have:
            raise PconvError(
                f"--{name} {given} conflicts with the model being {'resumed' if state else 'fine-tuned'} "
                f"({name}={have}); drop --{name}"
            )
    try:
        config.check_size(opts.size, opts.size)
    except ValueError as exc:
        raise PconvError(f"--size {opts.size}: {exc}") from exc
    return config


#: Options that decide which samples a run sees, or what it trains (``int8_aware``): a resumed run
#: must keep them, or it would not continue the run it claims to continue (batch, lr, logging and the
#: device may change). A resumed ``--int8-aware`` run re-estimates its activation ranges from its
#: first batches (they are not part of the saved state).
RUN_DEFINING_OPTIONS = (
    "data",
    "masks",
    "size",
    "seed",
    "hole_ratio",
    "mask_white_is_hole",
    "mask_threshold",
    "augment",
    "int8_aware",
)
#: What runs saved before an option existed used (so resuming one keeps its data).
_OPTION_BEFORE_IT_EXISTED: dict[str, Any] = {"augment": "none", "mask_threshold": 0.6, "int8_aware": False}
#: The cosine schedule ends at this fraction of --lr.
FINAL_LR_FRACTION = 0.01


def learning_rate(step: int, total: int, base: float, schedule: str, warmup: int) -> float:
    """The learning rate for ``step`` (0-based) of a ``total``-step run.

    Why cosine: short CPU runs end far from convergence at a constant rate; decaying it lets the
    last steps settle (measured in benchmarks/results/quality_*.json).
    """
    if schedule == "constant":
        return base
    warmup = min(warmup, total // 10)  # a short run must not spend itself warming up
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return base * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def check_resume_options(opts: TrainOptions, state: dict[str, Any]) -> None:
    """Refuse a resume whose data options differ from the saved run's, naming the flags to pass."""
    saved: dict[str, Any] = state.get("options", {})
    wrong = []
    for key in RUN_DEFINING_OPTIONS:
        if key not in saved and key not in _OPTION_BEFORE_IT_EXISTED:
            continue
        if key == "mask_threshold" and opts.masks == "procedural":
            continue  # generated masks are binary: the threshold changes nothing
        given: Any = getattr(opts, key)
        had: Any = saved[key] if key in saved else _OPTION_BEFORE_IT_EXISTED[key]
        if key == "hole_ratio":
            given, had = list(given), [float(v) for v in had]
        elif key in ("data", "masks"):  # the same folder however it is written (./imgs/, absolute, ...)
            given, had = resolved_folder(given), resolved_folder(had)
        if given == had:
            continue
        if key == "mask_white_is_hole":
            wrong.append(f"--masks-black-is-hole ({'without' if had else 'with'} it in the run)")
        elif key == "hole_ratio":
            wrong.append(f"--hole-ratio (run: {had[0]},{had[1]}; now: {given[0]},{given[1]})")
        else:
            wrong.append(f"--{key.replace('_', '-')} (run: {had}; now: {given})")
    if wrong:
        raise PconvError(
            "--resume: these options differ from the run being resumed: "
            + "; ".join(wrong)
            + ". Pass the run's values again (or start a new --out)"
        )


def resolved_folder(value: str) -> str:
    """A --data/--masks folder as an absolute, resolved path (``builtin``/``procedural`` as they are)."""
    return value if value in NOT_A_FOLDER else str(Path(value).resolve())


def recorded_options(opts: TrainOptions) -> dict[str, Any]:
    """The options saved with a run: plain values, with --data/--masks folders resolved."""
    saved = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items()}
    saved["data"], saved["masks"] = resolved_folder(opts.data), resolved_folder(opts.masks)
    return saved


def check_resume_steps(opts: TrainOptions, state: dict[str, Any]) -> None:
    """``--resume --steps N`` with N below the run's step would do nothing: say so."""
    at = int(state.get("step", 0))
    if opts.steps < at:
        raise PconvError(
            f"--resume: the run is already at step {at}, beyond --steps {opts.steps}; --steps is the total "
            f"to reach, so pass --steps {at + 1} or more to train further"
        )


def load_train_state(run: Path) -> tuple[dict[str, Any], Path]:
    """The saved state to resume and the weights that belong to it (the last complete step)."""
    step_dir = latest_step_dir(run, RUN_FILES)
    if step_dir is None:  # a run folder from before step folders: the two top-level files
        return _load_state_files(run), run / CHECKPOINT_NAME
    return _load_state_files(step_dir), step_dir / CHECKPOINT_NAME


def _load_state_files(run: Path) -> dict[str, Any]:
    path = run / STATE_NAME
    if not (path.is_file() and (run / CHECKPOINT_NAME).is_file()):
        raise PconvError(f"--resume: no run to resume in {run} (needs {CHECKPOINT_NAME} and {STATE_NAME})")
    try:
        state: dict[str, Any] = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PconvError(f"--resume: cannot read {path} ({exc})") from exc
    try:
        weights_step = read_metadata(run / CHECKPOINT_NAME).get(STEP_META)
    except CheckpointError as exc:
        raise PconvError(f"--resume: {exc}") from exc
    if weights_step is not None and int(weights_step) != int(state.get("step", -1)):
        # save_run writes the weights, then the state: a crash in between leaves them apart.
        raise PconvError(
            f"--resume: {run / CHECKPOINT_NAME} is at step {weights_step} but {STATE_NAME} at step "
            f"{state.get('step')} (the last save was interrupted); the weights alone can still seed a "
            "new run with --finetune"
        )
    return state


def save_run(
    run: Path, model: PConvUNet, optimizer: torch.optim.Optimizer, scaler: Any, step: int, opts: TrainOptions
) -> None:
    """Commit weights and state of ``step`` as one (a new step folder, :func:`runfolder.commit_step`)."""
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "torch_rng": torch.get_rng_state(),
        "model_config": model.config.to_json(),
        "finetune": bool(opts.finetune),
        "options": recorded_options(opts),
    }
    commit_step(
        run,
        step,
        {
            CHECKPOINT_NAME: lambda path: save_checkpoint(model, path, metadata={STEP_META: str(step)}),
            STATE_NAME: lambda path: torch.save(state, path),
        },
    )


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers ignore Ctrl-C / SIGTERM (a terminal sends them to every process): the main
    process decides when to stop, saves, and then ends its workers; a dead worker would abort the save.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C / SIGTERM: the run saved a resumable checkpoint at the step it reached, then stopped."""


@contextmanager
def stop_requests(enabled: bool) -> Iterator[list[str]]:
    """While active, SIGINT/SIGTERM only set a flag (the returned list gets the signal's name), so the
    loop can finish its step and save; a second signal stops at once. Main thread only (else a no-op).
    """
    requested: list[str] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum: int, frame: object) -> None:
        if requested:  # asked twice: stop now
            raise KeyboardInterrupt
        requested.append(signal.Signals(signum).name)

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield requested
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def open_log(run: Path, start_step: int) -> None:
    """Create log.csv, or on resume drop rows past the resumed step (written after the last checkpoint)."""
    path = run / LOG_NAME
    rows: list[dict[str, str]] = []
    if start_step > 0 and path.is_file():
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def append_log(run: Path, row: dict[str, float]) -> None:
    with (run / LOG_NAME).open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=LOG_FIELDS).writerow({k: row[k] for k in LOG_FIELDS})


def save_sample_grid(path: Path, image: Tensor, mask: Tensor, output: Tensor, max_rows: int = 4) -> Path:
    """PNG grid, one row per sample: input (holes white) | mask (white = hole) | output | composite | GT."""
    image, mask, output = (
        image.detach().float().cpu(),
        mask.detach().float().cpu(),
        output.detach().float().cpu(),
    )
    mask3 = mask.expand_as(image)
    hole3 = 1.0 - mask3
    columns = [
        image * mask3 + hole3,
        hole3,
        output.clamp(0, 1),
        composite(image, mask3, output).clamp(0, 1),
        image,
    ]
    rows = [torch.cat([c[i] for c in columns], dim=2) for i in range(min(max_rows, image.shape[0]))]
    grid = torch.cat(rows, dim=1)
    array = (grid.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))
    return path


# -- setting up a run ---------------------------------------------------------------------------


@dataclass
class Run:
    """A run ready to train: what :func:`start_run` resolved and :func:`loop` uses."""

    opts: TrainOptions  # ``finetune`` resolved to a file
    folder: Path
    dist: DistInfo
    device: torch.device
    model: PConvUNet
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    criterion: InpaintingLoss
    loader: torch.utils.data.DataLoader[Any]
    lr: float  # the base learning rate the schedule scales
    start_step: int
    amp_dtype: torch.dtype | None


def start_run(opts: TrainOptions) -> Run:
    """Resolve device, run folder (new, resumed or fine-tuning), model, optimizer, loss and data.

    The order of the steps that draw from torch's global RNG (model init, loss, loader) is fixed:
    the same seed gives the same run.
    """
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    if opts.finetune:  # "default": the checkpoint shipped with pconv
        opts = replace(opts, finetune=str(resolve_checkpoint(opts.finetune)))
    dist_info = setup_distributed(_device_kind(opts.device))
    device = pick_device(opts.device, dist_info.local_rank)
    if opts.amp != "off" and device.type != "cuda":
        raise PconvError(f"--amp {opts.amp} needs a CUDA device (this run is on {device}); use --amp off")
    folder = Path(opts.out)
    state, start_weights = open_run_folder(opts, folder)
    model = start_model(opts, state, start_weights).to(device).train()
    start_step = int(state["step"]) if state is not None else 0
    lr = base_learning_rate(opts, state)
    optimizer, scaler = make_optimizer(model, opts, state, lr)
    net: nn.Module = model
    if dist_info.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    criterion = make_loss(opts, quiet=not dist_info.is_main).to(device)
    loader = make_loader(opts, start_step, dist_info, device)
    if dist_info.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        open_log(folder, start_step)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(opts.amp)
    return Run(
        opts=opts,
        folder=folder,
        dist=dist_info,
        device=device,
        model=model,
        net=net,
        optimizer=optimizer,
        scaler=scaler,
        criterion=criterion,
        loader=loader,
        lr=lr,
        start_step=start_step,
        amp_dtype=amp_dtype,
    )


def _device_kind(name: str) -> str:
    """``cuda`` or ``cpu``: which process-group backend the device asks for (before picking it)."""
    cuda = name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())
    return "cuda" if cuda else "cpu"


def open_run_folder(opts: TrainOptions, run: Path) -> tuple[dict[str, Any] | None, Path | None]:
    """The saved state to resume (None for a new run) and the weights the run starts from.

    A new run must not overwrite one; a resumed run must continue the same stage with the same data.
    """
    if run.exists() and not run.is_dir():
        raise PconvError(f"--out {run} is an existing file; pass a folder for the run (it is created)")
    if not opts.resume:
        if has_run(run, RUN_FILES):
            raise PconvError(
                f"{run} already holds a run: pass --resume to continue it, or choose another --out"
            )
        return None, Path(opts.finetune) if opts.finetune else None
    state, weights = load_train_state(run)
    check_resume_steps(opts, state)
    if bool(state.get("finetune")) != bool(opts.finetune):
        stage = "a fine-tuning" if state.get("finetune") else "a from-scratch"
        raise PconvError(
            f"--resume: {run} holds {stage} run; pass --finetune CKPT exactly when resuming a fine-tuning run"
        )
    check_resume_options(opts, state)
    return state, weights


def start_model(opts: TrainOptions, state: dict[str, Any] | None, weights: Path | None) -> PConvUNet:
    """The model at the first step: the seed's init, then the resumed or fine-tuned weights.

    The checkpoint is read once, after seeding; its model config is checked against the options.
    """
    torch.manual_seed(opts.seed)
    source = load_checkpoint(weights) if weights is not None else None
    config = resolve_config(opts, state, source.config if source is not None else None)
    model = PConvUNet(config=config)
    if source is not None:
        model.load_state_dict(source.state_dict())
    if state is not None:
        torch.set_rng_state(state["torch_rng"])
    if opts.finetune:
        model.freeze_encoder_bn()
    if opts.int8_aware:
        from pconv.training.int8_aware import enable_int8_aware

        enable_int8_aware(model)
    return model


def base_learning_rate(opts: TrainOptions, state: dict[str, Any] | None) -> float:
    """``--lr``; else a resumed run's own; else the paper's (2e-4, or 5e-5 when fine-tuning)."""
    lr = opts.lr
    if lr is None and state is not None:
        lr = state.get("options", {}).get("lr")
    if lr is None:
        lr = PAPER_FINETUNE_LR if opts.finetune else PAPER_LR
    return float(lr)


def make_optimizer(
    model: PConvUNet, opts: TrainOptions, state: dict[str, Any] | None, lr: float
) -> tuple[torch.optim.Optimizer, torch.amp.GradScaler | None]:
    """Adam over the trainable parameters (and the fp16 gradient scaler), restored when resuming."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    scaler = torch.amp.GradScaler("cuda") if opts.amp == "fp16" else None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
    return optimizer, scaler


def make_loss(opts: TrainOptions, quiet: bool) -> InpaintingLoss:
    """The loss; ``quiet`` (ranks other than 0) hides its warnings, which rank 0 already shows."""
    if not quiet:
        return build_loss(opts.vgg_weights, opts.random_init_vgg, opts.tv_weight)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_loss(opts.vgg_weights, opts.random_init_vgg, opts.tv_weight)


def make_loader(
    opts: TrainOptions, start_step: int, dist_info: DistInfo, device: torch.device
) -> torch.utils.data.DataLoader[Any]:
    """Batches from ``start_step`` on: sample ``i`` is a pure function of (seed, i), each rank its own."""
    dataset = make_dataset(
        opts.data,
        opts.size,
        opts.masks,
        seed=opts.seed,
        hole_ratio=opts.hole_ratio,
        white_is_hole=opts.mask_white_is_hole,
        augment=check_level(opts.augment),
        mask_threshold=opts.mask_threshold,
    )
    return torch.utils.data.DataLoader(
        dataset,  # type: ignore[arg-type]  # duck-typed map-style dataset
        batch_size=opts.batch,
        sampler=StepIndexSampler(opts.batch, start_step, dist_info.rank, dist_info.world_size),  # type: ignore[arg-type]
        num_workers=opts.workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        worker_init_fn=ignore_stop_signals if opts.workers > 0 else None,
    )


# -- the loop ---------------------------------------------------------------------------------


def train(opts: TrainOptions) -> TrainResult:
    """Train (or resume / fine-tune) a PConvUNet; returns the checkpoint path, final step and log."""
    return loop(start_run(opts))


def train_step(run: Run, image: Tensor, mask: Tensor, lr: float) -> tuple[Tensor, dict[str, Tensor]]:
    """One optimizer step at learning rate ``lr``; returns the output and the loss terms."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    dtype = run.amp_dtype
    with torch.autocast(device_type=run.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        output = run.net(image, mask)
    losses = run.criterion(image, mask, output)
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(losses["total"]).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        losses["total"].backward()
        run.optimizer.step()
    return output, losses


def loop(run: Run) -> TrainResult:
    """Train from ``run.start_step`` to ``--steps``: log, sample and checkpoint as asked; on Ctrl-C or
    SIGTERM save the step reached and raise :class:`TrainingInterrupted`."""
    from tqdm import tqdm

    from pconv.terminal import show_progress

    opts, folder, is_main = run.opts, run.folder, run.dist.is_main
    shown = ("total", *(t for t in LOSS_TERMS if run.criterion.uses_vgg or t in ("valid", "hole", "tv")))
    history: list[dict[str, float]] = []
    sums = dict.fromkeys(("total", *LOSS_TERMS), 0.0)
    count, window_start = 0, time.perf_counter()
    bar = tqdm(
        total=opts.steps,
        initial=min(run.start_step, opts.steps),
        desc="train" + (" (finetune)" if opts.finetune else ""),
        unit="step",
        disable=not (is_main and show_progress(opts.progress)),
        dynamic_ncols=True,
    )
    step = run.start_step
    batches = iter(run.loader)
    with stop_requests(enabled=run.dist.world_size == 1) as stop:
        while step < opts.steps:
            image, mask = next(batches)
            lr = learning_rate(step, opts.steps, run.lr, opts.schedule, opts.warmup)
            image, mask = image.to(run.device, non_blocking=True), mask.to(run.device, non_blocking=True)
            output, losses = train_step(run, image, mask, lr)
            step += 1

            values = {k: float(v.detach()) for k, v in losses.items()}
            if not math.isfinite(values["total"]):
                raise PconvError(
                    f"loss became {values['total']} at step {step}; lower --lr or use --amp bf16/off"
                )
            for k in sums:
                sums[k] += values[k]
            count += 1
            bar.update(1)
            bar.set_postfix({k: f"{values[k]:.4f}" for k in shown})

            if step % opts.log_every == 0 or step == opts.steps:
                row = {"step": step, **{k: s / count for k, s in sums.items()}}
                row.update(lr=lr, sec_per_step=(time.perf_counter() - window_start) / count)
                history.append(row)
                if is_main:
                    append_log(folder, row)
                sums = dict.fromkeys(sums, 0.0)
                count, window_start = 0, time.perf_counter()
            if is_main and opts.sample_every and step % opts.sample_every == 0:
                save_sample_grid(folder / "samples" / f"step_{step:07d}.png", image, mask, output)
            saved = (opts.checkpoint_every > 0 and step % opts.checkpoint_every == 0) or step == opts.steps
            if is_main and saved:
                save_run(folder, run.model, run.optimizer, run.scaler, step, opts)
            if stop:  # Ctrl-C / SIGTERM during this step: save it (unless just saved), then stop
                if is_main and not saved:
                    save_run(folder, run.model, run.optimizer, run.scaler, step, opts)
                bar.close()
                raise TrainingInterrupted(
                    f"{stop[0]} at step {step}: saved a resumable checkpoint in {folder} "
                    "(continue with the same command and --resume)"
                )
    bar.close()
    if is_main and step == run.start_step and not (folder / CHECKPOINT_NAME).exists():
        save_run(folder, run.model, run.optimizer, run.scaler, step, opts)  # steps=0: still a checkpoint
    if run.dist.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(checkpoint=folder / CHECKPOINT_NAME, steps=step, history=history)
