"""Every ``pconv eval`` and ``pconv masks`` option, stated once: default, flag, help and check.

Standard library only, so ``pconv --help`` builds both parsers from here without numpy (see
:mod:`pconv.cliopts`). A bad value raises :class:`pconv.cliopts.OptionError` naming the flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pconv.cliopts import OptionError, check, comma_list, option
from pconv.contract import BACKENDS, MASK_THRESHOLD, STRATEGIES

#: Baselines ``--baselines`` accepts (:mod:`pconv.eval.baselines`).
BASELINE_NAMES = ("telea", "ns", "mean")
#: OpenCV inpainting radius in px (``--radius``), OpenCV's documented typical value.
DEFAULT_RADIUS = 3
#: ``--pairing``: each mask once (images spread over the bins), or every image with every mask.
PAIRINGS = ("cycle", "all")
#: Runtime strategies for the model: ``resize`` is left out, it would score a resampled image.
EVAL_STRATEGIES = tuple(s for s in STRATEGIES if s != "resize")
#: ``--images builtin``: the held-out views no builtin training run sees.
BUILTIN = "builtin"
#: Side in px of generated masks.
GENERATED_MASK_SIZE = 512


def _baselines(text: str) -> tuple[str, ...]:
    """``"telea,ns"`` -> ``("telea", "ns")``; ``"none"`` -> ``()`` (the names are checked by the options)."""
    return () if text.strip() == "none" else comma_list(text)


def _threshold() -> float:
    return option(
        MASK_THRESHOLD,
        at_least=0.0,
        at_most=1.0,
        metavar="T",
        help="mask files: grey level (0-1, alpha applied) above T is white, as in pconv inpaint",
    )


@dataclass
class EvalOptions:
    """Everything ``pconv eval`` takes (see ``pconv eval --help``); ``masks`` or ``per_bin`` is required."""

    model: Path | None = option(
        None, help="exported model (.onnx, or a TensorRT engine); omit for baselines only"
    )
    images: str = option(
        BUILTIN,
        help="folder of test images (searched recursively), or 'builtin': the held-out set, "
        "13 views (256², whole scene and closer) of each photo no builtin training run sees: chelsea "
        "(scikit-image), grace_hopper (matplotlib), china and flower (scikit-learn, when installed)",
    )
    masks: Path | None = option(
        None,
        metavar="DIR",
        group="source",
        help="mask set: a folder written by `pconv masks` (uses its index.csv) or any folder of mask files",
    )
    per_bin: int | None = option(
        None,
        at_least=1,
        metavar="N",
        group="source",
        help="generate N masks per (bin, border) cell into OUT/masks (deterministic for --seed)",
    )
    baselines: tuple[str, ...] = option(
        BASELINE_NAMES,
        parse=_baselines,
        help="comma-separated baselines: telea (OpenCV Telea), ns (OpenCV Navier-Stokes), mean "
        "(mean colour of the valid pixels); 'none' for the model only",
    )
    out: Path = option(Path("eval_out"), help="output folder")
    size: int | None = option(
        None,
        at_least=1,
        help=f"mask side in px: for --per-bin the generated size (default {GENERATED_MASK_SIZE}); with "
        "--masks, masks are resized to SIZE x SIZE (nearest) and re-binned (default: keep their size). Any "
        "size works with the model: the runtime pads to its size multiple",
    )
    limit: int | None = option(None, at_least=1, metavar="K", help="use only the first K images")
    seed: int = option(0, help="seed of the generated masks")
    pairing: str = option(
        "cycle",
        choices=PAIRINGS,
        help="cycle: each mask once, images spread evenly over the bins; all: every image with every mask",
    )
    backend: str = option(
        "auto", choices=BACKENDS, help="runtime backend for the model (auto: chosen from the model file)"
    )
    strategy: str = option(
        "full",
        choices=EVAL_STRATEGIES,
        help="runtime strategy for the model: full = whole image at once, as the paper; auto "
        "falls back to crops when an engine's shape limits are exceeded",
    )
    radius: int = option(DEFAULT_RADIUS, at_least=1, help="OpenCV inpainting radius in px")
    mask_threshold: float = _threshold()
    white_is_hole: bool = option(
        True, flags=("--black-is-hole",), help="mask files mark holes in black (default: white = hole)"
    )
    lpips_weights: Path | None = option(
        None,
        metavar="FILE",
        help="add an LPIPS column (AlexNet v0.1) using this local .npz (made by `pconv lpips-weights`); "
        "default: $PCONV_LPIPS_WEIGHTS if set, else no LPIPS (weights are never downloaded)",
    )
    progress: bool = option(True, help="hide the progress bars")

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.baselines = tuple(dict.fromkeys(self.baselines))  # each once, in the order given
        check(self)
        if (self.masks is None) == (self.per_bin is None):
            raise OptionError("give exactly one of --masks DIR or --per-bin N")
        unknown = [b for b in self.baselines if b not in BASELINE_NAMES]
        if unknown:
            raise OptionError(
                f"--baselines: unknown baseline(s) {', '.join(unknown)}; "
                f"choose from {', '.join(BASELINE_NAMES)} (or 'none')"
            )


@dataclass
class MasksOptions:
    """Everything ``pconv masks`` takes: generate a binned mask set, or bin the files of ``from_dir``."""

    out: Path = option(help="folder to write the masks and index.csv to")
    per_bin: int | None = option(
        None,
        at_least=1,
        help="masks per (bin, border) cell: required when generating; with --from, keep at most N per cell",
    )
    size: int = option(
        GENERATED_MASK_SIZE, at_least=1, help="side in px of generated masks (not used with --from)"
    )
    seed: int = option(0, help="random seed of the generated set")
    from_dir: Path | None = option(
        None,
        flags=("--from",),
        metavar="DIR",
        help="bin the existing mask files under DIR (e.g. the NVIDIA test set) instead of generating",
    )
    mask_threshold: float = _threshold()
    white_is_hole: bool = option(
        True,
        flags=("--black-is-hole",),
        help="with --from: the files mark holes in black (default: white = hole)",
    )
    progress: bool = option(True, help="hide the progress bar")

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        check(self)
        if self.from_dir is None and self.per_bin is None:
            raise OptionError("pass --per-bin N to generate masks (or --from DIR to bin an existing folder)")
