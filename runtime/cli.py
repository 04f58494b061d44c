"""``pconv inpaint`` and ``bench`` (only stdlib imports at module level)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from pconv.cliopts import add_options, from_args
from pconv.contract import MASK_SUFFIX
from pconv.runtime.options import BenchOptions, InpaintOptions

INPAINT_DESCRIPTION = (
    "Inpaint images with a .onnx model or a TensorRT engine. Masks are paired to images by "
    "file stem (IMG.png <- MASKDIR/IMG.png or IMG_mask.png; --mask may be the image folder itself "
    "when it holds IMG_mask.png next to IMG.png), or one mask file is used for every image. "
    "By default white mask pixels (above --mask-threshold, alpha applied) are holes. Results are written "
    "as OUT/<stem>.png (or --out FILE for one image); every non-hole pixel is exactly the input pixel. "
    "A folder run goes on past unreadable files, prints what it skipped and why, and exits 1 if any "
    "image failed."
)
BENCH_DESCRIPTION = (
    "Latency (min / median / p90 / p99 / max) and throughput of a model on random inputs, "
    "like trtexec and onnxruntime_perf_test. Times the backend call on padded network inputs "
    "(add --end-to-end to time the full Inpainter call on uint8 images, host work included)."
)


def register(sub: Any) -> None:
    """``inpaint`` and ``bench``, their flags generated from :mod:`pconv.runtime.options`."""
    p = sub.add_parser(
        "inpaint", help="inpaint image files with an exported model", description=INPAINT_DESCRIPTION
    )
    add_options(p, InpaintOptions)
    p.set_defaults(func=run_inpaint)
    b = sub.add_parser(
        "bench", help="measure inference latency and throughput of a model", description=BENCH_DESCRIPTION
    )
    add_options(b, BenchOptions)
    b.set_defaults(func=run_bench)


# -- inpaint ----------------------------------------------------------------------------------------
def pair_masks(images: list[Path], mask_arg: Path) -> list[Path | None]:
    """The mask file for each image (None when it has none): by stem from a folder, or one file for all."""
    from pconv.runtime.imageio import list_images

    if not mask_arg.is_dir():
        (single,) = list_images(mask_arg, "mask")
        return [single] * len(images)
    by_stem: dict[str, Path] = {}
    for path in list_images(mask_arg, "mask"):
        by_stem.setdefault(path.stem, path)
    pairs: list[Path | None] = []
    for image in images:
        same = by_stem.get(image.stem)
        if same is not None and same.resolve() == image.resolve():
            same = None  # the image itself (image and mask folder are one): never its own mask
        pairs.append(same or by_stem.get(f"{image.stem}{MASK_SUFFIX}"))
    return pairs


def _no_mask(image: Path, mask_arg: Path) -> str:
    return f"no mask in {mask_arg} for {image.name} (masks are matched by file stem: IMG.png or IMG_mask.png)"


def output_paths(
    images: list[Path], out: Path, fmt: str | None, folder: bool = False
) -> tuple[list[Path], str]:
    """Where each result goes and in which format: ``OUT/<stem>.<ext>``, or ``--out FILE`` for one image."""
    from pconv.errors import InputError
    from pconv.runtime.options import SUFFIX_FORMATS

    as_file = out.suffix.lower() in SUFFIX_FORMATS and not out.is_dir()
    if out.exists() and not out.is_dir() and not as_file:
        raise InputError(f"--out {out} is an existing file; pass a folder, or a .png/.jpg/.webp file name")
    if as_file:
        if len(images) != 1 or folder:
            raise InputError(
                f"--out {out} is a file name but --image is a folder ({len(images)} image(s)); "
                "pass a folder as --out"
            )
        wanted = SUFFIX_FORMATS[out.suffix.lower()]
        if fmt is not None and fmt != wanted:
            raise InputError(f"--format {fmt} does not match --out {out.name}; drop one of them")
        return [out], wanted
    fmt = fmt or "png"
    return [out / f"{image.stem}.{fmt}" for image in images], fmt


def _concat_path(result: Path) -> Path:
    return result.with_name(f"{result.stem}_concat{result.suffix}")


def _check_outputs(images: list[Path], masks: list[Path | None], outputs: list[Path], concat: bool) -> None:
    """Refuse outputs that would overwrite an input or each other (``a.png`` and ``a.jpg`` -> ``a.png``)."""
    from pconv.errors import ImageFileError

    inputs = {p.resolve() for p in [*images, *(m for m in masks if m is not None)]}
    seen: dict[Path, Path] = {}
    for image, result in zip(images, outputs):
        if result in seen:
            raise ImageFileError(
                f"{seen[result].name} and {image.name} would both be written as {result.name}; "
                "rename one of them"
            )
        seen[result] = image
        for path in [result, *([_concat_path(result)] if concat else [])]:
            if path.resolve() in inputs:
                raise ImageFileError(
                    f"--out {path.parent} would overwrite the input file {path.name}; choose another output"
                )


def _write_error(path: Path, exc: OSError, done: int) -> Exception:
    """A failed write as one line naming the fix (full disk, read-only or protected folder)."""
    import errno

    from pconv.errors import PconvError

    if exc.errno == errno.ENOSPC:
        why = "the disk is full: free some space"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = f"{exc.strerror.lower() if exc.strerror else 'not writable'}: choose another --out"
    else:
        why = f"{exc.strerror or exc}: check --out"
    return PconvError(
        f"cannot write {path} ({why}); {done} image(s) were written before it, no partial file was left "
        "(rerun with --skip-existing to continue)"
    )


def _load_pair(image_path: Path, mask_path: Path, opts: InpaintOptions) -> tuple[Any, Any]:
    """An image file and its hole mask (bool, True = hole) after --mask-threshold/--resize-mask/-dilate."""
    from pconv.errors import InputError
    from pconv.imagefiles import grow, resize_nearest
    from pconv.runtime.imageio import read_image_file, read_mask

    image = read_image_file(image_path)
    white = read_mask(mask_path, opts.mask_threshold) != 0
    h, w = image.pixels.shape[:2]
    if white.shape != (h, w):
        if not opts.resize_mask:
            raise InputError(
                f"mask {mask_path.name} is {white.shape[0]}x{white.shape[1]} but image {image_path.name} is "
                f"{h}x{w} (HxW); they must match (or pass --resize-mask)"
            )
        white = resize_nearest(white, h, w)
    holes = white if not opts.mask_is_valid else ~white
    if opts.mask_dilate:
        holes = grow(holes, opts.mask_dilate)
    return image, holes


def _inpaint_loaded(
    inpainter: Any, loaded: list[tuple[Path, Path, Any, Any]], opts: InpaintOptions, fail: Any
) -> list[Any]:
    """Results for ``loaded`` (image path, output path, ImageFile, holes), one call for the chunk.

    If the chunk fails, its images run one by one so only the bad one is skipped (``fail`` is told
    why; its result is None).
    """
    from pconv.errors import PconvError
    from pconv.runtime.inpainter import NoHoleWarning

    if not loaded:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoHoleWarning)  # reported by run_inpaint, one line per file
        try:
            images, holes = [item[2].pixels for item in loaded], [item[3] for item in loaded]
            return list(inpainter(images, holes, strategy=opts.strategy, batch_size=opts.batch))
        except PconvError:
            results: list[Any] = []
            for image_path, _, image, hole in loaded:
                try:
                    results.append(inpainter(image.pixels, hole, strategy=opts.strategy))
                except PconvError as exc:
                    fail(image_path, str(exc))
                    results.append(None)
            return results


def run_inpaint(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from pconv.errors import ImageFileError, PconvError
    from pconv.runtime.imageio import list_images, write_image
    from pconv.terminal import show_progress

    opts = from_args(InpaintOptions, args)
    images = list_images(opts.image)
    mask_arg = Path(opts.mask)
    if mask_arg.is_dir() and mask_arg.resolve() == Path(opts.image).resolve():
        # One folder holding IMG.png and IMG_mask.png: the masks are not images to inpaint.
        images = [p for p in images if not p.stem.endswith(MASK_SUFFIX)]
        if not images:
            raise ImageFileError(f"{opts.image} holds only *{MASK_SUFFIX} files, no images to inpaint")
    masks = pair_masks(images, mask_arg)
    folder = Path(opts.image).is_dir()
    single = len(images) == 1 and not folder
    if single and masks[0] is None:
        raise ImageFileError(_no_mask(images[0], mask_arg))
    outputs, fmt = output_paths(images, Path(opts.out), opts.format, folder)
    _check_outputs(images, masks, outputs, opts.concat)
    try:
        outputs[0].parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(outputs[0].parent, exc, 0) from exc
    inpainter = opts.open()
    written, existing = 0, 0
    failed: list[tuple[str, str]] = []

    def fail(bar: Any, image: Path, why: str) -> None:
        if single:
            raise ImageFileError(why)
        failed.append((image.name, why))
        bar.write(f"pconv inpaint: skipped {image.name}: {why}", file=sys.stderr)

    def save(path: Path, pixels: Any, source: Any) -> None:
        try:
            write_image(path, pixels, fmt, opts.quality, source.icc_profile, source.exif)
        except OSError as exc:
            raise _write_error(path, exc, written) from exc

    jobs = list(zip(images, masks, outputs))
    with tqdm(total=len(jobs), unit="img", desc="inpaint", disable=not show_progress()) as bar:
        for start in range(0, len(jobs), opts.batch):
            loaded = []
            for image_path, mask_path, out_path in jobs[start : start + opts.batch]:
                if opts.skip_existing and out_path.exists():
                    existing += 1
                    continue
                if mask_path is None:
                    fail(bar, image_path, _no_mask(image_path, mask_arg))
                    continue
                try:
                    image, holes = _load_pair(image_path, mask_path, opts)
                except PconvError as exc:
                    fail(bar, image_path, str(exc))
                    continue
                if not holes.any():
                    other = "--mask-is-valid was given" if opts.mask_is_valid else "try --mask-is-valid"
                    bar.write(
                        f"pconv inpaint: warning: mask {mask_path.name} marks no hole pixels, so "
                        f"{out_path.name} is the input unchanged ({other})",
                        file=sys.stderr,
                    )
                loaded.append((image_path, out_path, image, holes))
            results = _inpaint_loaded(inpainter, loaded, opts, lambda path, why: fail(bar, path, why))
            for (_, out_path, image, holes), result in zip(loaded, results):
                if result is None:
                    continue
                save(out_path, result, image)
                if opts.concat:
                    shown = np.repeat((holes * 255).astype(np.uint8)[..., None], 3, axis=-1)
                    save(_concat_path(out_path), np.concatenate([image.pixels, shown, result], axis=1), image)
                written += 1
            bar.update(len(jobs[start : start + opts.batch]))
    where = inpainter.backend.describe()
    target = outputs[0] if len(outputs) == 1 and Path(opts.out) == outputs[0] else Path(opts.out)
    extra = f"; {existing} already existed (--skip-existing)" if existing else ""
    print(f"wrote {written} image(s) to {target} with {where}{extra}")
    if failed:
        print(
            f"pconv inpaint: {len(failed)} image(s) skipped: "
            + "; ".join(f"{name} ({why})" for name, why in failed),
            file=sys.stderr,
        )
        return 1
    return 0


# -- bench ------------------------------------------------------------------------------------------
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

    from pconv.errors import InputError
    from pconv.runtime.inpainter import batch_limits
    from pconv.runtime.strategy import padded_size
    from pconv.terminal import show_progress

    opts = from_args(BenchOptions, args)
    n, h, w = opts.shape
    inpainter = opts.open()
    info = inpainter.info
    rng = np.random.default_rng(0)
    net = padded_size(h, w, info)
    if net is None:
        largest = info.fixed_shape or info.max_shape or (0, 0, 0)
        raise InputError(
            f"--shape {opts.shape}: {h}x{w} is larger than the model accepts "
            f"({largest[1]}x{largest[2]} max); use a smaller --shape"
        )
    net_h, net_w = net
    min_n, max_n = batch_limits(info)
    if not opts.end_to_end and not min_n <= n <= max_n:
        raise InputError(
            f"--shape {opts.shape}: the model takes batches of {min_n}"
            f"{'' if max_n == min_n else f' to {max_n}'} image(s); change N (or use --end-to-end, "
            "which pads or splits batches as the Inpainter does)"
        )
    holes = rng.random((n, h, w)) < opts.hole_ratio
    if opts.end_to_end:
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

    for _ in range(opts.warmup):
        step()
    times: list[float] = []
    for _ in tqdm(
        range(opts.iterations), desc="bench", unit="it", disable=not show_progress(), file=sys.stderr
    ):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    stats = latency_stats(times, n)
    backend = inpainter.backend
    result: dict[str, Any] = {
        "model": str(inpainter.model_path),
        "backend": backend.name,
        "providers": list(backend.providers) or None,  # null for backends without providers
        "shape": [n, h, w],
        "network_shape": [n, net_h, net_w],
        "io_dtype": str(info.io_dtype),
        "mode": "end-to-end" if opts.end_to_end else "backend",
        "iterations": opts.iterations,
        "warmup": opts.warmup,
        **stats,
    }
    if opts.json is not None:
        text = json.dumps(result, indent=2)
        if opts.json == "-":
            print(text)
        else:
            from pconv.fileio import atomic_write_bytes

            atomic_write_bytes(opts.json, (text + "\n").encode())
            print(f"wrote {opts.json}")
        return 0
    where = backend.describe()
    print(
        f"model {opts.model} on {where}, {result['mode']}, input {n}x{h}x{w} -> network {n}x{net_h}x{net_w}"
    )
    print(f"{'min':>9} {'median':>9} {'p90':>9} {'p99':>9} {'max':>9}   throughput")
    print(
        f"{stats['min_ms']:7.2f}ms {stats['median_ms']:7.2f}ms {stats['p90_ms']:7.2f}ms "
        f"{stats['p99_ms']:7.2f}ms {stats['max_ms']:7.2f}ms   {stats['throughput_img_s']:.1f} img/s"
    )
    return 0
