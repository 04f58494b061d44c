"""The options of ``pconv demo`` and ``pconv doctor``: each default and check stated once.

Standard library only, so ``pconv --help`` builds their parsers without numpy (see :mod:`pconv.cliopts`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pconv.cliopts import check, option


@dataclass(frozen=True)
class DemoOptions:
    """``pconv demo``: the shipped model (or, with ``train``, a freshly trained one) vs OpenCV."""

    out: str = option(
        "demo_out",
        help="output folder; with --train, its train/ subfolder from an earlier demo is replaced",
        metavar="DIR",
    )
    train: bool = option(
        False, help="train, export and check a small model first, and compare it instead of the shipped one"
    )
    steps: int = option(1500, help="--train: training steps", at_least=1)
    size: int = option(64, help="--train: training crop size, a multiple of 2^depth", at_least=1)
    depth: int = option(4, help="--train: U-Net depth", at_least=1)
    width: float = option(0.25, help="--train: channel width multiplier", at_least=0.01)
    batch: int = option(4, help="--train: training batch size", at_least=1)
    crops: int = option(6, help="held-out views to inpaint", at_least=1)
    crop_size: int = option(256, help="held-out view size", at_least=16)
    seed: int = option(0, help="seed for training, crops and masks")
    threads: int = option(
        1,
        help="--train: torch CPU threads for training (0 = torch's default); the demo model is tiny, so one "
        "thread is nearly as fast and does not slow down on a busy machine",
        at_least=0,
    )
    hole_ratio: tuple[float, float] = (0.1, 0.6)  # spread evenly over the crops (library only)
    progress: bool = True  # library only: the CLI decides by the terminal

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class DoctorOptions:
    """``pconv doctor``: what is installed and usable, each missing piece with its fix."""

    vgg_weights: str | None = option(
        None, help="VGG-16 weights to check (else $PCONV_VGG_WEIGHTS)", metavar="FILE", show_default=False
    )
    plugin_library: str | None = option(
        None, help="plugin library to check (else the default)", metavar="SO", show_default=False
    )
    model: str | None = option(None, help="also try opening this model", metavar="M", show_default=False)
    json: bool = option(False, help="print the checks as JSON")

    def __post_init__(self) -> None:
        check(self)
