"""``pconv masks`` (binned test mask sets) and ``pconv eval`` (model vs. baselines per hole ratio).

Only the standard library is imported here; numpy, OpenCV, matplotlib and the runtime are imported
inside the commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path

_BINS_TEXT = "(0.01,0.1], (0.1,0.2], ..., (0.5,0.6]"
_MARGIN_TEXT = "border margin: 1/32 of the shorter side, 16 px at 512"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


#: Mirrors pconv.imagefiles.MASK_THRESHOLD (a test checks), so building the parser stays import-light.
MASK_THRESHOLD = 0.5


def _add_threshold(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mask-threshold",
        type=float,
        default=MASK_THRESHOLD,
        metavar="T",
        help="mask files: grey level (0-1, alpha applied) above T is white, as in pconv inpaint "
        "(default %(default)s)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``masks`` and ``eval`` subcommands."""
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
    masks.add_argument("--out", type=Path, required=True, help="folder to write the masks and index.csv to")
    masks.add_argument(
        "--per-bin",
        type=_positive_int,
        default=None,
        help="masks per (bin, border) cell: required when generating; with --from, keep at most N per cell",
    )
    masks.add_argument(
        "--size",
        type=_positive_int,
        default=512,
        help="side in px of generated masks (default 512; not used with --from)",
    )
    masks.add_argument("--seed", type=int, default=0, help="random seed of the generated set (default 0)")
    masks.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="bin the existing mask files under DIR (e.g. the NVIDIA test set) instead of generating",
    )
    _add_threshold(masks)
    masks.add_argument(
        "--black-is-hole",
        action="store_true",
        help="with --from: the files mark holes in black (default: white = hole)",
    )
    masks.add_argument("--no-progress", action="store_true", help="hide the progress bar")
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
    ev.add_argument(
        "--model",
        type=Path,
        default=None,
        help="exported model (.onnx, or a TensorRT engine); omit for baselines only",
    )
    ev.add_argument(
        "--images",
        default="builtin",
        help="folder of test images (searched recursively), or 'builtin' (default): the held-out set, "
        "13 views (256², whole scene and closer) of each photo no builtin training run sees: chelsea "
        "(scikit-image), grace_hopper (matplotlib), china and flower (scikit-learn, when installed)",
    )
    source = ev.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--masks",
        type=Path,
        default=None,
        metavar="DIR",
        help="mask set: a folder written by `pconv masks` (uses its index.csv) or any folder of mask files",
    )
    source.add_argument(
        "--per-bin",
        type=_positive_int,
        default=None,
        metavar="N",
        help="generate N masks per (bin, border) cell into OUT/masks (deterministic for --seed)",
    )
    ev.add_argument(
        "--baselines",
        default="telea,ns,mean",
        help="comma-separated baselines: telea (OpenCV Telea), ns (OpenCV Navier-Stokes), mean "
        "(mean colour of the valid pixels); 'none' for the model only (default: telea,ns,mean)",
    )
    ev.add_argument("--out", type=Path, default=Path("eval_out"), help="output folder (default eval_out)")
    ev.add_argument(
        "--size",
        type=_positive_int,
        default=None,
        help="mask side in px: for --per-bin the generated size (default 512); with --masks, masks are "
        "resized to SIZE x SIZE (nearest) and re-binned (default: keep their size). Any size works with "
        "the model: the runtime pads to its size multiple",
    )
    ev.add_argument(
        "--limit", type=_positive_int, default=None, metavar="K", help="use only the first K images"
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the generated masks (default 0)")
    ev.add_argument(
        "--pairing",
        choices=("cycle", "all"),
        default="cycle",
        help="cycle: each mask once, images spread evenly over the bins (default); all: every image "
        "with every mask",
    )
    ev.add_argument(
        "--backend",
        choices=("auto", "onnxruntime", "tensorrt"),
        default="auto",
        help="runtime backend for the model (default auto: chosen from the model file)",
    )
    ev.add_argument(
        "--strategy",
        choices=("full", "auto", "crop"),
        default="full",
        help="runtime strategy for the model: full = whole image at once, as the paper (default); auto "
        "falls back to crops when an engine's shape limits are exceeded",
    )
    ev.add_argument(
        "--radius", type=_positive_int, default=3, help="OpenCV inpainting radius in px (default 3)"
    )
    _add_threshold(ev)
    ev.add_argument(
        "--black-is-hole", action="store_true", help="mask files mark holes in black (default: white = hole)"
    )
    ev.add_argument(
        "--lpips-weights",
        type=Path,
        default=None,
        metavar="FILE",
        help="add an LPIPS column (AlexNet v0.1) using this local .npz (made by `pconv lpips-weights`); "
        "default: $PCONV_LPIPS_WEIGHTS if set, else no LPIPS (weights are never downloaded)",
    )
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bars")
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
    from pconv.errors import PconvError
    from pconv.eval import masksets

    progress = not args.no_progress
    if args.from_dir is not None:
        binned = masksets.bin_folder(
            args.from_dir,
            index_dir=args.out,
            white_is_hole=not args.black_is_hole,
            per_bin=args.per_bin,
            progress=progress,
            threshold=args.mask_threshold,
        )
        masksets.write_binned_folder(binned, args.out)
        print(masksets.describe_counts(binned.entries))
        print(f"indexed {len(binned.entries)} masks in {args.out / masksets.INDEX_NAME}")
        if binned.outside or binned.unreadable:
            print(
                f"{len(binned.outside)} file(s) outside every bin and {len(binned.unreadable)} unreadable: "
                f"listed in {args.out / masksets.OUTSIDE_NAME}"
            )
        return 0
    if args.per_bin is None:
        raise PconvError("pass --per-bin N to generate masks (or --from DIR to bin an existing folder)")
    entries = masksets.generate_mask_set(args.out, args.per_bin, args.size, args.seed, progress)
    print(masksets.describe_counts(entries))
    print(
        f"wrote {len(entries)} masks ({args.size}x{args.size}, seed {args.seed}) "
        f"and {args.out / masksets.INDEX_NAME}"
    )
    return 0


def eval_command(args: argparse.Namespace) -> int:
    from pconv.errors import PconvError
    from pconv.eval.baselines import BASELINE_NAMES
    from pconv.eval.evaluate import EvalOptions, run_evaluation

    names = (
        []
        if args.baselines.strip() == "none"
        else [b.strip() for b in args.baselines.split(",") if b.strip()]
    )
    unknown = [b for b in names if b not in BASELINE_NAMES]
    if unknown:
        raise PconvError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINE_NAMES)}")
    result = run_evaluation(
        EvalOptions(
            out=args.out,
            images=args.images,
            model=args.model,
            masks=args.masks,
            per_bin=args.per_bin,
            size=args.size,
            seed=args.seed,
            baselines=tuple(dict.fromkeys(names)),
            limit=args.limit,
            backend=args.backend,
            strategy=args.strategy,
            radius=args.radius,
            pairing=args.pairing,
            white_is_hole=not args.black_is_hole,
            mask_threshold=args.mask_threshold,
            progress=not args.no_progress,
            lpips_weights=args.lpips_weights,
        )
    )
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
