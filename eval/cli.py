"""``pconv masks`` (binned test mask sets) and ``pconv eval`` (model vs. baselines per hole ratio).

Only the standard library is imported here; numpy, OpenCV, matplotlib and the runtime are imported
inside the commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pconv.cliopts import add_options, from_args
from pconv.eval.options import MASK_THRESHOLD, EvalOptions, MasksOptions

__all__ = ["MASK_THRESHOLD", "eval_command", "lpips_weights_command", "masks_command", "register"]

_BINS_TEXT = "(0.01,0.1], (0.1,0.2], ..., (0.5,0.6]"
_MARGIN_TEXT = "border margin: 1/32 of the shorter side, 16 px at 512"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``masks`` and ``eval`` (options from :mod:`pconv.eval.options`) and ``lpips-weights``."""
    masks = sub.add_parser(
        "masks",
        help="write a binned test mask set (hole-ratio bins x border flag), or bin an existing folder",
        description=(
            f"Write a test mask set organised like NVIDIA's irregular-mask test set: six hole-ratio bins "
            f"{_BINS_TEXT}, each with masks that keep holes away from the border and masks whose holes "
            f"touch it ({_MARGIN_TEXT}). Masks are PNG, white = hole, under OUT/<bin>/<border|no_border>/; "
            "OUT/index.csv lists file, bin, border flag and exact hole ratio. Deterministic for a seed. "
            "With --from DIR, the mask files in DIR are binned instead (by measured hole ratio and border "
            "contact; nothing is copied, the index points at them) and files outside every bin are listed "
            "in OUT/outside_bins.csv."
        ),
    )
    add_options(masks, MasksOptions)
    masks.set_defaults(func=masks_command)

    ev = sub.add_parser(
        "eval",
        help="score a model (via the runtime) and classical baselines per hole-ratio bin",
        description=(
            "Run the model through pconv.runtime (any backend) and the baselines on the same image/mask "
            "pairs and score the composites: L1, PSNR, SSIM over the whole image (as the paper reports) "
            "and over hole pixels only. Writes OUT/results.csv (one row per image, mask and method; "
            "rows are appended as they finish, and a rerun with the same --out skips them), "
            "OUT/summary.md and OUT/summary.csv (means per bin x border x method, also printed), "
            "OUT/metrics_vs_hole_ratio.png and OUT/examples_<bin>.png. Images are scaled (aspect kept) "
            "to cover each mask and centre-cropped to its size. Needs no torch."
        ),
    )
    add_options(ev, EvalOptions, groups={"source": ev.add_mutually_exclusive_group(required=True)})
    ev.set_defaults(func=eval_command)

    lp = sub.add_parser(
        "lpips-weights",
        help="pack local AlexNet + LPIPS checkpoints into the .npz that `pconv eval --lpips-weights` reads",
        description=(
            "Combine torchvision's ImageNet AlexNet checkpoint (alexnet-owt-7be5be79.pth, e.g. from "
            "~/.cache/torch/hub/checkpoints) and the LPIPS linear layers (weights/v0.1/alex.pth inside "
            "the `lpips` package) into one numpy .npz, so evaluation computes LPIPS without torch. "
            "Needs torch to read the .pth files. Nothing is downloaded."
        ),
    )
    lp.add_argument("--alexnet", type=Path, required=True, help="torchvision AlexNet checkpoint (.pth)")
    lp.add_argument("--lpips", type=Path, required=True, help="lpips' weights/v0.1/alex.pth")
    lp.add_argument("--out", type=Path, required=True, help="output .npz file")
    lp.set_defaults(func=lpips_weights_command)


def masks_command(args: argparse.Namespace) -> int:
    opts = from_args(MasksOptions, args)
    from pconv.eval import masksets

    if opts.from_dir is not None:
        binned = masksets.bin_folder(
            opts.from_dir,
            index_dir=opts.out,
            white_is_hole=opts.white_is_hole,
            per_bin=opts.per_bin,
            progress=opts.progress,
            threshold=opts.mask_threshold,
        )
        masksets.write_binned_folder(binned, opts.out)
        print(masksets.describe_counts(binned.entries))
        print(f"indexed {len(binned.entries)} masks in {opts.out / masksets.INDEX_NAME}")
        if binned.outside or binned.unreadable:
            print(
                f"{len(binned.outside)} file(s) outside every bin and {len(binned.unreadable)} unreadable: "
                f"listed in {opts.out / masksets.OUTSIDE_NAME}"
            )
        return 0
    assert opts.per_bin is not None  # MasksOptions requires it without --from
    entries = masksets.generate_mask_set(opts.out, opts.per_bin, opts.size, opts.seed, opts.progress)
    print(masksets.describe_counts(entries))
    print(
        f"wrote {len(entries)} masks ({opts.size}x{opts.size}, seed {opts.seed}) "
        f"and {opts.out / masksets.INDEX_NAME}"
    )
    return 0


def eval_command(args: argparse.Namespace) -> int:
    opts = from_args(EvalOptions, args)
    from pconv.eval.evaluate import run_evaluation

    result = run_evaluation(opts)
    print(result.markdown)
    if result.resumed_rows:
        print(f"(resumed: {result.resumed_rows} result(s) were already in {result.files['results']})")
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return 0


def lpips_weights_command(args: argparse.Namespace) -> int:
    from pconv.eval.lpips import convert_weights

    path = convert_weights(args.alexnet, args.lpips, args.out)
    print(f"wrote {path}; use it with `pconv eval --lpips-weights {path}`")
    return 0
