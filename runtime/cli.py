"""``pconv inpaint``, ``bench``, ``doctor`` and ``demo`` (only stdlib imports at module level)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

BACKEND_CHOICES = ("auto", "onnxruntime", "tensorrt")
STRATEGY_CHOICES = ("auto", "full", "crop")
#: A mask file named IMG_mask.png belongs to IMG.png (in the mask folder, or in the image folder itself).
MASK_SUFFIX = "_mask"
#: Mirrors pconv.models.DEFAULT_MODEL (a test checks), so `pconv --help` stays import-light.
DEFAULT_MODEL = "default"


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="M",
        help="a .onnx model (pconv export), a .engine/.plan (pconv build), or 'default': the model that "
        "ships with pconv (see the README's quality section)",
    )
    p.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help="auto (default): ONNX Runtime for .onnx, TensorRT for .engine/.plan",
    )
    p.add_argument("--device", type=int, default=0, help="CUDA device index for GPU backends (default: 0)")
    p.add_argument(
        "--providers",
        default=None,
        metavar="P1,P2",
        help="ONNX Runtime execution providers in order "
        "(default: TensorRT, CUDA, CPU, whichever are installed)",
    )
    p.add_argument(
        "--plugin-library",
        default=None,
        metavar="SO",
        help="the pconv TensorRT plugin library, for engines built with the plugin "
        "(default: pconv.plugins.default_library_path())",
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "inpaint",
        help="inpaint image files with an exported model",
        description="Inpaint images with a .onnx model or a TensorRT engine. Masks are paired to images by "
        "file stem (IMG.png <- MASKDIR/IMG.png or IMG_mask.png; --mask may be the image folder itself "
        "when it holds IMG_mask.png next to IMG.png), or one mask file is used for every image. "
        "By default white (non-zero) mask pixels are holes. Results are written as OUT/<stem>.png; every "
        "non-hole pixel is exactly the input pixel.",
    )
    _add_model_args(p)
    p.add_argument("--image", required=True, metavar="FILE|DIR", help="an image file or a folder of images")
    p.add_argument(
        "--mask", required=True, metavar="FILE|DIR", help="a mask file (used for all images) or a folder"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument(
        "--mask-is-valid",
        action="store_true",
        help="masks mark VALID pixels (non-zero = keep) instead of holes",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=4,
        metavar="N",
        help="images (or crops) per backend call (default: %(default)s)",
    )
    p.add_argument(
        "--strategy",
        choices=STRATEGY_CHOICES,
        default="auto",
        help="full: whole image, padded; crop: only boxes around holes (faster on big images, "
        "less context); auto (default): crop when the image is too big for the model or the pixel budget",
    )
    p.add_argument(
        "--concat", action="store_true", help="also write OUT/<stem>_concat.png: image | mask | result"
    )
    p.set_defaults(func=run_inpaint)

    b = sub.add_parser(
        "bench",
        help="measure inference latency and throughput of a model",
        description="Latency (min / median / p90 / p99 / max) and throughput of a model on random inputs, "
        "like trtexec and onnxruntime_perf_test. Times the backend call on padded network inputs "
        "(add --end-to-end to time the full Inpainter call on uint8 images, host work included).",
    )
    _add_model_args(b)
    b.add_argument(
        "--shape", default="1x512x512", metavar="NxHxW", help="batch x height x width (default: %(default)s)"
    )
    b.add_argument("--iterations", type=int, default=50, help="timed runs (default: %(default)s)")
    b.add_argument("--warmup", type=int, default=5, help="untimed runs first (default: %(default)s)")
    b.add_argument(
        "--hole-ratio",
        type=float,
        default=0.25,
        help="fraction of hole pixels in the random mask (default: %(default)s)",
    )
    b.add_argument(
        "--end-to-end", action="store_true", help="time Inpainter calls (host pre/post work included)"
    )
    b.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        help="write the results as JSON to PATH (or stdout with no PATH) instead of the table",
    )
    b.set_defaults(func=run_bench)

    d = sub.add_parser(
        "doctor",
        help="check what is installed and usable (torch, ONNX Runtime, TensorRT, GPU, plugin, VGG weights)",
        description="Report each piece pconv can use and, for each missing one, the exact command that fixes "
        "it. Exit code 0 when the CPU runtime (numpy + onnxruntime) works, 1 otherwise.",
    )
    d.add_argument(
        "--vgg-weights",
        default=None,
        metavar="FILE",
        help="VGG-16 weights to check (else $PCONV_VGG_WEIGHTS)",
    )
    d.add_argument(
        "--plugin-library", default=None, metavar="SO", help="plugin library to check (else the default)"
    )
    d.add_argument("--model", default=None, metavar="M", help="also try opening this model")
    d.add_argument("--json", action="store_true", help="print the checks as JSON")
    d.set_defaults(func=run_doctor)

    from pconv.runtime.demo import DemoOptions  # numpy only, already loaded by pconv.runtime

    defaults = DemoOptions()  # the one place the demo's defaults are written
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
    m.add_argument(
        "--out",
        default=defaults.out,
        metavar="DIR",
        help="output folder; with --train, its train/ subfolder from an earlier demo is replaced "
        "(default: %(default)s)",
    )
    m.add_argument(
        "--train",
        action="store_true",
        help="train, export and check a small model first, and compare it instead of the shipped one",
    )
    m.add_argument(
        "--steps", type=int, default=defaults.steps, help="--train: training steps (default: %(default)s)"
    )
    m.add_argument(
        "--size",
        type=int,
        default=defaults.size,
        help="--train: training crop size, a multiple of 2^depth (default: %(default)s)",
    )
    m.add_argument(
        "--depth", type=int, default=defaults.depth, help="--train: U-Net depth (default: %(default)s)"
    )
    m.add_argument(
        "--width",
        type=float,
        default=defaults.width,
        help="--train: channel width multiplier (default: %(default)s)",
    )
    m.add_argument(
        "--batch",
        type=int,
        default=defaults.batch,
        help="--train: training batch size (default: %(default)s)",
    )
    m.add_argument(
        "--crops", type=int, default=defaults.crops, help="held-out views to inpaint (default: %(default)s)"
    )
    m.add_argument(
        "--crop-size", type=int, default=defaults.crop_size, help="held-out view size (default: %(default)s)"
    )
    m.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seed for training, crops and masks (default: %(default)s)",
    )
    m.add_argument(
        "--threads",
        type=int,
        default=defaults.threads,
        help="--train: torch CPU threads for training (0 = torch's default); the demo model is tiny, so one "
        "thread is nearly as fast and does not slow down on a busy machine (default: %(default)s)",
    )
    m.set_defaults(func=run_demo)


# -- inpaint ----------------------------------------------------------------------------------------
def _providers(text: str | None) -> list[str] | None:
    return None if not text else [p.strip() for p in text.split(",") if p.strip()]


def _open(args: argparse.Namespace) -> Any:
    from pconv.runtime import Inpainter

    return Inpainter(
        args.model,
        backend=args.backend,
        device=args.device,
        providers=_providers(args.providers),
        plugin_library=args.plugin_library,
    )


def pair_masks(images: list[Path], mask_arg: Path) -> list[Path]:
    """The mask file for each image: by stem from a folder, or the one file for all."""
    from pconv.runtime.errors import ImageFileError
    from pconv.runtime.imageio import list_images

    if not mask_arg.is_dir():
        (single,) = list_images(mask_arg, "mask")
        return [single] * len(images)
    by_stem: dict[str, Path] = {}
    for path in list_images(mask_arg, "mask"):
        by_stem.setdefault(path.stem, path)
    pairs, missing = [], []
    for image in images:
        same = by_stem.get(image.stem)
        if same is not None and same.resolve() == image.resolve():
            same = None  # the image itself (image and mask folder are one): never its own mask
        match = same or by_stem.get(f"{image.stem}{MASK_SUFFIX}")
        if match is None:
            missing.append(image.name)
        else:
            pairs.append(match)
    if missing:
        raise ImageFileError(
            f"no mask in {mask_arg} for {len(missing)} image(s): {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''} (masks are matched by file stem: IMG.png or IMG_mask.png)"
        )
    return pairs


def _check_outputs(images: list[Path], masks: list[Path], out_dir: Path, concat: bool) -> None:
    """Refuse outputs that would overwrite an input or each other (``a.png`` and ``a.jpg`` -> ``a.png``)."""
    from pconv.runtime.errors import ImageFileError

    inputs = {p.resolve() for p in [*images, *masks]}
    seen: dict[str, Path] = {}
    for image in images:
        if image.stem in seen:
            raise ImageFileError(
                f"{seen[image.stem].name} and {image.name} would both be written as {image.stem}.png; "
                "rename one of them"
            )
        seen[image.stem] = image
        names = [f"{image.stem}.png", *([f"{image.stem}_concat.png"] if concat else [])]
        for name in names:
            if (out_dir / name).resolve() in inputs:
                raise ImageFileError(
                    f"--out {out_dir} would overwrite the input file {name}; choose another output folder"
                )


def run_inpaint(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from pconv.runtime.errors import ImageFileError, InputError
    from pconv.runtime.imageio import list_images, read_image, read_mask, write_png
    from pconv.runtime.inpainter import NoHoleWarning

    if args.batch < 1:
        raise InputError(f"--batch must be >= 1; got {args.batch}")
    images = list_images(args.image)
    if Path(args.mask).is_dir() and Path(args.mask).resolve() == Path(args.image).resolve():
        # One folder holding IMG.png and IMG_mask.png: the masks are not images to inpaint.
        images = [p for p in images if not p.stem.endswith(MASK_SUFFIX)]
        if not images:
            raise ImageFileError(f"{args.image} holds only *{MASK_SUFFIX} files, no images to inpaint")
    masks = pair_masks(images, Path(args.mask))
    out_dir = Path(args.out)
    _check_outputs(images, masks, out_dir, args.concat)
    out_dir.mkdir(parents=True, exist_ok=True)
    inpainter = _open(args)
    mask_is_hole = not args.mask_is_valid
    written = 0
    with tqdm(total=len(images), unit="img", desc="inpaint", disable=None) as bar:
        for start in range(0, len(images), args.batch):
            chunk = list(zip(images[start : start + args.batch], masks[start : start + args.batch]))
            arrays, mask_arrays = [], []
            for image_path, mask_path in chunk:
                image, mask = read_image(image_path), read_mask(mask_path)
                if image.shape[:2] != mask.shape:
                    raise InputError(
                        f"mask {mask_path.name} is {mask.shape[0]}x{mask.shape[1]} but image "
                        f"{image_path.name} is {image.shape[0]}x{image.shape[1]} (HxW); they must match"
                    )
                if not ((mask != 0) if mask_is_hole else (mask == 0)).any():
                    other = "--mask-is-valid was given" if args.mask_is_valid else "try --mask-is-valid"
                    bar.write(
                        f"pconv inpaint: warning: mask {mask_path.name} marks no hole pixels, so "
                        f"{image_path.stem}.png is the input unchanged ({other})",
                        file=sys.stderr,
                    )
                arrays.append(image)
                mask_arrays.append(mask)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NoHoleWarning)  # reported above, one line per file
                results = inpainter(
                    arrays,
                    mask_arrays,
                    mask_is_hole=mask_is_hole,
                    strategy=args.strategy,
                    batch_size=args.batch,
                )
            for (image_path, _), image, mask, result in zip(chunk, arrays, mask_arrays, results):
                write_png(out_dir / f"{image_path.stem}.png", result)
                if args.concat:
                    holes = (mask != 0) if mask_is_hole else (mask == 0)
                    shown = np.repeat((holes * 255).astype(np.uint8)[..., None], 3, axis=-1)
                    write_png(
                        out_dir / f"{image_path.stem}_concat.png",
                        np.concatenate([image, shown, result], axis=1),
                    )
                written += 1
            bar.update(len(chunk))
    providers = getattr(inpainter.backend, "providers", None)
    where = inpainter.backend.name + (f" ({', '.join(providers)})" if providers else "")
    print(f"wrote {written} image(s) to {out_dir} with {where}")
    return 0


# -- bench ------------------------------------------------------------------------------------------
def parse_shape(text: str) -> tuple[int, int, int]:
    from pconv.runtime.errors import InputError

    try:
        n, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise InputError(f"--shape must be NxHxW such as 1x512x512; got {text!r}") from exc
    if min(n, h, w) < 1:
        raise InputError(f"--shape values must be positive; got {text!r}")
    return n, h, w


def latency_stats(seconds: list[float], batch: int) -> dict[str, float]:
    """min/median/p90/p99/max/mean latency in ms and throughput in images/s."""
    import numpy as np

    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "min_ms": float(ms.min()),
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "mean_ms": float(ms.mean()),
        "throughput_img_s": float(batch * len(ms) / (ms.sum() / 1e3)),
    }


def run_bench(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from pconv.runtime.errors import InputError
    from pconv.runtime.inpainter import batch_limits
    from pconv.runtime.strategy import padded_size

    n, h, w = parse_shape(args.shape)
    if args.iterations < 1 or args.warmup < 0:
        raise InputError("--iterations must be >= 1 and --warmup >= 0")
    inpainter = _open(args)
    info = inpainter.info
    rng = np.random.default_rng(0)
    net = padded_size(h, w, info)
    if net is None:
        largest = info.fixed_shape or info.max_shape or (0, 0, 0)
        raise InputError(
            f"--shape {args.shape}: {h}x{w} is larger than the model accepts "
            f"({largest[1]}x{largest[2]} max); use a smaller --shape"
        )
    net_h, net_w = net
    min_n, max_n = batch_limits(info)
    if not args.end_to_end and not min_n <= n <= max_n:
        raise InputError(
            f"--shape {args.shape}: the model takes batches of {min_n}"
            f"{'' if max_n == min_n else f' to {max_n}'} image(s); change N (or use --end-to-end, "
            "which pads or splits batches as the Inpainter does)"
        )
    holes = rng.random((n, h, w)) < args.hole_ratio
    if args.end_to_end:
        images = list(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8))
        hole_list = list(holes)

        def step() -> None:
            inpainter(images, hole_list, strategy="full", batch_size=n)

    else:
        image = np.zeros((n, 3, net_h, net_w), np.float32)
        mask = np.zeros((n, 1, net_h, net_w), np.float32)
        image[:, :, :h, :w] = rng.random((n, 3, h, w), dtype=np.float32)
        mask[:, 0, :h, :w] = ~holes
        image = image.astype(info.io_dtype)
        mask = mask.astype(info.io_dtype)

        def step() -> None:
            inpainter.backend.run(image, mask)

    for _ in range(args.warmup):
        step()
    times: list[float] = []
    for _ in tqdm(range(args.iterations), desc="bench", unit="it", disable=None, file=sys.stderr):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    stats = latency_stats(times, n)
    backend = inpainter.backend
    result: dict[str, Any] = {
        "model": str(inpainter.model_path),
        "backend": backend.name,
        "providers": getattr(backend, "providers", None),
        "shape": [n, h, w],
        "network_shape": [n, net_h, net_w],
        "io_dtype": str(info.io_dtype),
        "mode": "end-to-end" if args.end_to_end else "backend",
        "iterations": args.iterations,
        "warmup": args.warmup,
        **stats,
    }
    if args.json is not None:
        text = json.dumps(result, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(text + "\n")
            print(f"wrote {args.json}")
        return 0
    where = backend.name + (f" ({', '.join(result['providers'])})" if result["providers"] else "")
    print(
        f"model {args.model} on {where}, {result['mode']}, input {n}x{h}x{w} -> network {n}x{net_h}x{net_w}"
    )
    print(f"{'min':>9} {'median':>9} {'p90':>9} {'p99':>9} {'max':>9}   throughput")
    print(
        f"{stats['min_ms']:7.2f}ms {stats['median_ms']:7.2f}ms {stats['p90_ms']:7.2f}ms "
        f"{stats['p99_ms']:7.2f}ms {stats['max_ms']:7.2f}ms   {stats['throughput_img_s']:.1f} img/s"
    )
    return 0


# -- doctor / demo ----------------------------------------------------------------------------------
def run_doctor(args: argparse.Namespace) -> int:
    from pconv.runtime.doctor import format_checks, run_checks

    checks = run_checks(vgg_weights=args.vgg_weights, plugin_library=args.plugin_library, model=args.model)
    if args.json:
        print(json.dumps([c.to_dict() for c in checks], indent=2))
    else:
        print(format_checks(checks))
    core_ok = all(c.ok for c in checks if c.required)
    return 0 if core_ok else 1


def run_demo(args: argparse.Namespace) -> int:
    from pconv.runtime.demo import DemoOptions
    from pconv.runtime.demo import run_demo as demo

    report = demo(
        DemoOptions(
            out=args.out,
            train=args.train,
            steps=args.steps,
            size=args.size,
            depth=args.depth,
            width=args.width,
            batch=args.batch,
            crops=args.crops,
            crop_size=args.crop_size,
            seed=args.seed,
            threads=args.threads,
        )
    )
    print(f"demo done in {report['timings_s']['total']:.1f} s: see {Path(args.out) / 'report.md'}")
    return 0
