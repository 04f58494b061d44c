"""Evaluate a model (through :mod:`pconv.runtime`) and classical baselines on binned test masks.

Protocol, fixed so that numbers are comparable between runs:

* **Masks** come from a mask set (:mod:`pconv.eval.masksets`): a folder with ``index.csv`` (from
  ``pconv masks``) or any folder of mask files (binned on the fly), or ``per_bin`` freshly generated
  masks per (bin, border) cell. With ``size`` given for an existing folder, masks are resized to
  ``size x size`` (nearest neighbour) and re-measured; masks that leave every bin are skipped.
* **Images** (a folder, or ``"builtin"``: the photos bundled with scikit-image) are fitted to each
  mask's size: scaled (Lanczos, aspect ratio kept) until they cover it, then centre-cropped.
* **Pairing**: ``"cycle"`` (default) gives mask ``j`` image ``j mod n_images`` so every mask is used
  once; ``"all"`` evaluates every image with every mask.
* **Methods**: ``"pconv"`` is the model run through :class:`pconv.runtime.Inpainter` (any backend);
  baselines are from :mod:`pconv.eval.baselines`. Every method's *composite* is scored
  (:func:`pconv.eval.metrics.score`).
* **Resume**: each finished (image, mask, method) row is appended to ``results.csv`` and flushed;
  a rerun with the same ``--out`` skips those rows. ``run.json`` records what the rows depend on
  (model file hash, images, masks, size, inpainting radius, mask polarity) and a rerun with different
  settings is refused.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pconv.data.masks import BINARIZE_THRESHOLD, hole_ratio_of
from pconv.errors import PconvError
from pconv.eval import baselines as baselines_mod
from pconv.eval import lpips as lpips_mod
from pconv.eval import masksets
from pconv.eval.metrics import METRIC_NAMES, score
from pconv.eval.options import BUILTIN, GENERATED_MASK_SIZE, EvalOptions
from pconv.fileio import sha256_file

MODEL_METHOD = "pconv"
RESULTS_NAME = "results.csv"
RUN_NAME = "run.json"
GENERATED_MASKS_DIR = "masks"
KEY_FIELDS = ("image", "mask", "method", "bin", "border", "hole_ratio")
RESULT_FIELDS = (*KEY_FIELDS, *METRIC_NAMES)
LPIPS_METRIC = "lpips"
#: Side of the held-out views ``--images builtin`` scores (fitted to each mask like any image).
HELDOUT_VIEW_SIZE = 256

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


# -- images ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRef:
    """One test image: a stable key for the results table and where to read it."""

    key: str
    path: Path | None
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)  # in-memory views

    def load(self) -> np.ndarray:
        """The pixels, read as a viewer shows them (EXIF orientation, bit depth: pconv.imagefiles)."""
        from pconv.imagefiles import read_rgb

        if self.pixels is not None:
            return self.pixels
        assert self.path is not None
        return read_rgb(self.path)


def resolve_images(spec: str, limit: int | None = None) -> list[ImageRef]:
    """``"builtin"`` or a folder of images.

    ``builtin`` is the held-out set (:func:`pconv.data.images.heldout_views`: 256² views of the
    photos no builtin training run uses), never the training photos.
    """
    from pconv.data import images as data

    if spec == BUILTIN:
        refs = [ImageRef(f"heldout:{n}", None, view) for n, view in data.heldout_views(HELDOUT_VIEW_SIZE)]
    else:
        root = Path(spec)
        if not root.is_dir():
            raise PconvError(f"--images {spec}: not a folder (pass a folder of images, or 'builtin')")
        try:
            files = data.find_images(root)
        except PconvError as exc:  # its message names the training option; say it in eval's terms
            raise PconvError(f"--images {spec}: no images (jpg, jpeg, png, webp) found below it") from exc
        from pconv.imagefiles import drop_unreadable

        files = drop_unreadable(files, f"--images {spec}")  # headers only: a bad file is named once, up front
        refs = [ImageRef(p.relative_to(root).as_posix(), p) for p in files]
    if limit is not None:
        if limit < 1:
            raise PconvError("--limit must be at least 1")
        refs = refs[:limit]
    return refs


def fit_to_size(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale ``image`` (aspect ratio kept, Lanczos) to cover ``height x width``, then centre-crop it."""
    from PIL import Image

    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    scale = max(height / h, width / w)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.LANCZOS))
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(resized[top : top + height, left : left + width])


# -- masks and pairs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskSet:
    """The masks of one evaluation and the folder their relative paths start from."""

    root: Path
    entries: list[masksets.MaskEntry]
    description: str
    resize_to: int | None = None


def prepare_masks(
    out_dir: Path,
    masks_dir: Path | None,
    per_bin: int | None,
    size: int | None,
    seed: int,
    white_is_hole: bool = True,
    progress: bool = True,
    threshold: float = BINARIZE_THRESHOLD,
) -> MaskSet:
    """Read ``masks_dir``, or generate ``per_bin`` masks per cell into ``out_dir/masks`` (reused)."""
    if (masks_dir is None) == (per_bin is None):
        raise PconvError("give exactly one of --masks DIR or --per-bin N")
    if masks_dir is not None:
        entries = masksets.load_mask_set(masks_dir, white_is_hole, progress, threshold)
        if per_bin is not None:
            entries = _cap_per_cell(entries, per_bin)
        desc = f"folder {masks_dir.resolve()}" + (f" resized to {size}" if size else "")
        return MaskSet(masks_dir, entries, desc, size)
    assert per_bin is not None
    gen_size = size or GENERATED_MASK_SIZE
    target = out_dir / GENERATED_MASKS_DIR
    stamp = {"per_bin": per_bin, "size": gen_size, "seed": seed}
    stamp_file = target / "masks.json"
    index = target / masksets.INDEX_NAME
    if index.is_file() and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        entries = masksets.read_index(index)
    else:
        entries = masksets.generate_mask_set(target, per_bin, gen_size, seed, progress)
        stamp_file.write_text(json.dumps(stamp))
    # The description leaves out per_bin: mask i of a cell does not depend on it, so a rerun with a
    # larger --per-bin extends the same set and keeps the finished rows.
    return MaskSet(target, entries, f"generated {gen_size}px, seed {seed}")


def _cap_per_cell(entries: Sequence[masksets.MaskEntry], per_bin: int) -> list[masksets.MaskEntry]:
    counts: dict[tuple[int, bool], int] = {}
    kept = []
    for e in entries:
        n = counts.get((e.bin, e.border), 0)
        if n < per_bin:
            kept.append(e)
            counts[(e.bin, e.border)] = n + 1
    return kept


@dataclass(frozen=True)
class Pair:
    """One test case: an image with a mask."""

    image: ImageRef
    mask: masksets.MaskEntry


def make_pairs(images: Sequence[ImageRef], masks: Sequence[masksets.MaskEntry], pairing: str) -> list[Pair]:
    """Pair images with masks: ``"cycle"`` (each mask once) or ``"all"`` (every image with every mask).

    ``cycle`` gives the ``i``-th mask of cell ``c`` (cells numbered bin * 2 + border) image number
    ``(i * 12 + c) mod n_images``: images spread evenly over the cells, and a mask keeps its image
    when ``--per-bin`` grows, so a rerun with more masks reuses every finished row.
    """
    if not images:
        raise PconvError("no test images")
    if pairing == "cycle":
        n_cells = 2 * len(masksets.BINS)
        seen: dict[int, int] = {}
        pairs = []
        for m in masks:
            cell = 2 * m.bin + int(m.border)
            i = seen.get(cell, 0)
            seen[cell] = i + 1
            pairs.append(Pair(images[(i * n_cells + cell) % len(images)], m))
        return pairs
    if pairing == "all":
        return [Pair(img, m) for m in masks for img in images]
    raise PconvError(f"unknown pairing {pairing!r}; use 'cycle' or 'all'")


class PairLoader:
    """Loads the fitted image and the hole mask of a pair, caching decoded images."""

    def __init__(
        self, mask_set: MaskSet, white_is_hole: bool = True, threshold: float = BINARIZE_THRESHOLD
    ) -> None:
        self.threshold = threshold
        self.mask_set = mask_set
        self.white_is_hole = white_is_hole
        self._images: dict[str, np.ndarray] = {}
        self._fitted: dict[tuple[str, int, int], np.ndarray] = {}

    def hole(self, entry: masksets.MaskEntry) -> np.ndarray:
        hole = masksets.load_mask(entry.path(self.mask_set.root), self.white_is_hole, self.threshold)
        size = self.mask_set.resize_to
        if size and hole.shape != (size, size):
            from PIL import Image

            im = Image.fromarray(hole.astype(np.uint8) * 255).resize((size, size), Image.Resampling.NEAREST)
            hole = np.asarray(im) > 127
        return hole

    def image(self, ref: ImageRef, height: int, width: int) -> np.ndarray:
        key = (ref.key, height, width)
        if key not in self._fitted:
            if ref.key not in self._images:
                self._images[ref.key] = ref.load()
            self._fitted[key] = fit_to_size(self._images[ref.key], height, width)
        return self._fitted[key]


# -- methods -------------------------------------------------------------------------------------


def model_method(
    model: Path, backend: str = "auto", strategy: str = "full"
) -> tuple[Method, Callable[[], None]]:
    """The model as an ``(image, hole) -> composite`` callable via the runtime, and its close function.

    ``strategy="full"`` (default) inpaints the whole image at once, the paper's setting; ``"auto"``
    lets the runtime fall back to crops when the image exceeds an engine's shape limits.
    """
    from pconv.runtime import Inpainter

    if not model.is_file():
        raise PconvError(
            f"--model {model}: file not found (pass an exported .onnx model or a TensorRT engine)"
        )
    inpainter = Inpainter(model, backend=backend)

    def run(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        return np.asarray(inpainter(image, hole.astype(np.uint8), strategy=strategy))

    return run, inpainter.close


def build_methods(
    model: Path | None,
    baselines: Sequence[str],
    backend: str = "auto",
    radius: int = 3,
    strategy: str = "full",
) -> tuple[dict[str, Method], Callable[[], None]]:
    """Methods by name, model first, and a function releasing the model."""
    methods: dict[str, Method] = {}
    close: Callable[[], None] = lambda: None  # noqa: E731
    if model is not None:
        methods[MODEL_METHOD], close = model_method(model, backend, strategy)
    for name in baselines:
        try:
            methods[name] = baselines_mod.get_baseline(name, radius)
        except ValueError as exc:
            raise PconvError(f"--baselines: {exc}") from exc
    if not methods:
        raise PconvError("nothing to evaluate: pass --model and/or --baselines")
    return methods, close


# -- results log -----------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6f}"


_METRIC_TEXT = re.compile(r"^(-?\d+\.\d{6}|-?inf)$")


def _complete(row: dict[str, str | None], fields: Sequence[str]) -> bool:
    """True when every field is present and every metric has the full fixed format :func:`_fmt` writes.

    Metrics are written with exactly six decimals (or ``inf``) and the last column is a metric, so a
    line cut short anywhere fails this check.
    """
    if any(not row.get(k) for k in fields) or row.get(None):  # type: ignore[call-overload]
        return False
    return all(_METRIC_TEXT.match(str(row[k])) for k in fields if k not in KEY_FIELDS)


class ResultsLog:
    """``results.csv``: one row per (image, mask, method), appended and flushed as each finishes."""

    def __init__(self, path: Path, fields: Sequence[str] = RESULT_FIELDS) -> None:
        self.path = path
        self.fields = tuple(fields)
        self.rows: dict[tuple[str, str, str], dict[str, str]] = {}
        if path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames is None or list(reader.fieldnames) != list(self.fields):
                    raise PconvError(
                        f"{path} has other columns than this pconv version writes; use a new --out"
                    )
                for row in reader:
                    if _complete(row, self.fields):  # a line torn by an interruption is recomputed
                        self.rows[(row["image"], row["mask"], row["method"])] = row
        self._file = open(path, "a", newline="")  # noqa: SIM115 - kept open while rows arrive
        self._writer = csv.DictWriter(self._file, fieldnames=self.fields)
        if self._file.tell() == 0:
            self._writer.writeheader()
        else:
            self._repair_last_line()
        self._file.flush()

    def _repair_last_line(self) -> None:
        """An interrupted write can leave a line without newline: terminate it so new rows start clean."""
        with open(self.path, "rb") as f:
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                self._file.write("\n")

    def done(self, image: str, mask: str, method: str) -> bool:
        return (image, mask, method) in self.rows

    def add(self, row: dict[str, str]) -> None:
        self._writer.writerow(row)
        self._file.flush()
        self.rows[(row["image"], row["mask"], row["method"])] = row

    def close(self) -> None:
        self._file.close()


def check_run_settings(out_dir: Path, settings: dict[str, Any]) -> None:
    """Record ``settings`` in ``run.json``; refuse to mix rows with a previous run's other settings."""
    path = out_dir / RUN_NAME
    if path.is_file():
        previous = json.loads(path.read_text())
        changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
        if changed:
            raise PconvError(
                f"{out_dir} holds results of a run with other settings ({', '.join(changed)} differ); "
                "pass a new --out, or delete the folder to start over"
            )
    else:
        path.write_text(json.dumps(settings, indent=2, sort_keys=True))


# -- the evaluation ----------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """What a run produced: its rows (finished now or earlier) and the files written."""

    rows: list[dict[str, str]]
    methods: list[str]
    files: dict[str, Path] = field(default_factory=dict)
    skipped_masks: int = 0
    resumed_rows: int = 0
    markdown: str = ""


LPIPS_MISSING_NOTE = (
    "LPIPS is not reported: it needs pretrained AlexNet + LPIPS weights, which pconv never downloads; "
    "pass --lpips-weights FILE (or set PCONV_LPIPS_WEIGHTS), made once with `pconv lpips-weights`."
)
LPIPS_NOTE = "LPIPS: AlexNet v0.1 (lower is better), whole image, from {path}."


@dataclass
class Evaluation:
    """An evaluation set up by :func:`start_evaluation`: what scoring and the reports read."""

    opts: EvalOptions
    mask_set: MaskSet
    images: list[ImageRef]
    settings: dict[str, Any]  # recorded in run.json
    pairs: list[Pair]
    log: ResultsLog
    method_names: list[str]
    metric_names: tuple[str, ...]
    loader: PairLoader
    methods: LazyMethods
    lpips: lpips_mod.LPIPS | None = None
    lpips_path: Path | None = None


class LazyMethods:
    """The methods, built on first use: the model loads only when something is left to compute."""

    def __init__(self, opts: EvalOptions) -> None:
        self.opts = opts
        self._methods: dict[str, Method] | None = None
        self._close: Callable[[], None] = lambda: None

    def get(self) -> dict[str, Method]:
        if self._methods is None:
            o = self.opts
            self._methods, self._close = build_methods(o.model, o.baselines, o.backend, o.radius, o.strategy)
        return self._methods

    def close(self) -> None:
        self._close()


def run_evaluation(opts: EvalOptions) -> EvalResult:
    """Score every method on every pair (appending to ``results.csv``), then write tables, plot and grids."""
    ev = start_evaluation(opts)
    try:
        result = score_pairs(ev)
        ev.log.close()
        if not result.rows:
            raise PconvError("no (image, mask) pair could be evaluated (every mask fell outside the bins)")
        write_summary(ev, result)
        write_examples(ev, result)
    finally:
        ev.log.close()
        ev.methods.close()
    return result


def start_evaluation(opts: EvalOptions) -> Evaluation:
    """Masks, images, pairs and the results log of ``opts.out``; refuses a rerun with other settings."""
    if opts.model is not None and not opts.model.is_file():
        raise PconvError(
            f"--model {opts.model}: file not found (pass an exported .onnx model or a TensorRT engine)"
        )
    opts.out.mkdir(parents=True, exist_ok=True)
    mask_set = prepare_masks(
        opts.out,
        opts.masks,
        opts.per_bin,
        opts.size,
        opts.seed,
        opts.white_is_hole,
        opts.progress,
        opts.mask_threshold,
    )
    images = resolve_images(opts.images, opts.limit)
    lpips_path = lpips_mod.weights_path(opts.lpips_weights)
    lpips = lpips_mod.LPIPS.from_file(lpips_path) if lpips_path is not None else None
    settings = run_settings(opts, mask_set, lpips_path)
    metric_names = (*METRIC_NAMES, LPIPS_METRIC) if lpips is not None else METRIC_NAMES
    check_run_settings(opts.out, settings)
    pairs = make_pairs(images, mask_set.entries, opts.pairing)
    return Evaluation(
        opts=opts,
        mask_set=mask_set,
        images=images,
        settings=settings,
        pairs=pairs,
        log=ResultsLog(opts.out / RESULTS_NAME, (*KEY_FIELDS, *metric_names)),
        method_names=([MODEL_METHOD] if opts.model is not None else []) + list(opts.baselines),
        metric_names=metric_names,
        loader=PairLoader(mask_set, opts.white_is_hole, opts.mask_threshold),
        methods=LazyMethods(opts),
        lpips=lpips,
        lpips_path=lpips_path,
    )


def run_settings(opts: EvalOptions, mask_set: MaskSet, lpips_path: Path | None) -> dict[str, Any]:
    """What the rows of a run depend on beyond their keys (run.json): a rerun must match them."""
    settings: dict[str, Any] = {
        "images": opts.images if opts.images == BUILTIN else str(Path(opts.images).resolve()),
        "masks": mask_set.description,
        "model_sha256": sha256_file(opts.model) if opts.model is not None else None,
        "fit": "cover (Lanczos) + centre crop",
        "strategy": opts.strategy if opts.model is not None else None,
        # Both change finished rows without changing their keys: a rerun must not reuse them.
        "radius": opts.radius,
        "white_is_hole": opts.white_is_hole,
        "mask_threshold": opts.mask_threshold,
    }
    if lpips_path is not None:
        settings["lpips_weights_sha256"] = sha256_file(lpips_path)
    return settings


def score_pairs(ev: Evaluation) -> EvalResult:
    """Compute every (pair, method) row not in ``results.csv`` yet; the result holds all rows, in order."""
    from tqdm import tqdm

    from pconv.terminal import show_progress

    log, names = ev.log, ev.method_names
    todo = sum(1 for p in ev.pairs for m in names if not log.done(p.image.key, p.mask.file, m))
    result = EvalResult([], names, {"results": log.path}, 0, len(ev.pairs) * len(names) - todo)
    with tqdm(total=todo, desc="eval", unit="result", disable=not show_progress(ev.opts.progress)) as bar:
        for pair in ev.pairs:
            pending = [m for m in names if not log.done(pair.image.key, pair.mask.file, m)]
            if pending and not score_pair(ev, pair, pending, bar.update):
                result.skipped_masks += 1
                bar.update(len(pending))
                continue
            for name in names:
                row = log.rows.get((pair.image.key, pair.mask.file, name))
                if row is not None:
                    result.rows.append(row)
    return result


def score_pair(ev: Evaluation, pair: Pair, pending: Sequence[str], advance: Callable[[int], object]) -> bool:
    """Score the ``pending`` methods on one pair; False when its (resized) mask leaves every bin."""
    methods = ev.methods.get()
    hole = ev.loader.hole(pair.mask)
    b, border, ratio = masksets.classify(hole)
    if b is None:  # only possible after resizing a mask
        return False
    target = ev.loader.image(pair.image, *hole.shape)
    target_features = ev.lpips.features(target) if ev.lpips is not None else None
    for name in pending:
        output = methods[name](target, hole)
        values = score(output, target, hole).as_dict()
        if ev.lpips is not None and target_features is not None:
            values[LPIPS_METRIC] = ev.lpips.distance(ev.lpips.features(output), target_features)
        ev.log.add(
            {
                "image": pair.image.key,
                "mask": pair.mask.file,
                "method": name,
                "bin": str(b),
                "border": str(int(border)),
                "hole_ratio": f"{ratio:.6f}",
                **{k: _fmt(v) for k, v in values.items()},
            }
        )
        advance(1)
    return True


def write_summary(ev: Evaluation, result: EvalResult) -> None:
    """``summary.md`` (also ``result.markdown``), ``summary.csv`` and the metrics-vs-hole-ratio plot."""
    from pconv.eval import report

    out = ev.opts.out
    summary = report.summarise(result.rows, ev.method_names, ev.metric_names)
    notes = [
        f"Masks: {len(ev.mask_set.entries)}, {ev.mask_set.description}; images: {ev.settings['images']} "
        f"({len(ev.images)}), scaled to cover each mask "
        f"(Lanczos) and centre-cropped; pairing: {ev.opts.pairing}.",
        LPIPS_NOTE.format(path=ev.lpips_path) if ev.lpips_path is not None else LPIPS_MISSING_NOTE,
    ]
    if result.skipped_masks:
        notes.append(f"{result.skipped_masks} pair(s) skipped: the resized mask fell outside every bin.")
    result.markdown = report.markdown_table(summary, notes)
    result.files["summary_md"] = out / "summary.md"
    result.files["summary_md"].write_text(result.markdown)
    result.files["summary_csv"] = out / "summary.csv"
    report.write_summary_csv(summary, result.files["summary_csv"])
    result.files["plot"] = report.plot_metrics(summary, out / "metrics_vs_hole_ratio.png", ev.method_names)


def write_examples(ev: Evaluation, result: EvalResult) -> None:
    """``examples_<bin>.png``: per bin, a pair of each border flag with every method's output."""
    from pconv.eval import report

    methods = ev.methods.get()
    by_image = {ref.key: ref for ref in ev.images}
    by_mask = {e.file: e for e in ev.mask_set.entries}
    rows_by_key = {(r["image"], r["mask"], r["method"]): r for r in result.rows}
    for b, chosen in sorted(example_pairs(result.rows).items()):
        examples = []
        for image_key, mask_file in chosen:
            hole = ev.loader.hole(by_mask[mask_file])
            target = ev.loader.image(by_image[image_key], *hole.shape)
            panels = [("input", report.masked_input(target, hole))]
            for name in ev.method_names:
                row = rows_by_key[(image_key, mask_file, name)]
                panels.append((f"{name}\nPSNR {float(row['psnr']):.2f} dB", methods[name](target, hole)))
            panels.append(("ground truth", target))
            flag = "border" if masksets.touches_border(hole) else "no border"
            title = f"{image_key} | {mask_file} | hole {hole_ratio_of(hole):.3f}, {flag}"
            examples.append(report.Example(title, panels))
        path = ev.opts.out / f"examples_{masksets.bin_slug(b)}.png"
        result.files[f"grid_{masksets.bin_slug(b)}"] = report.example_grid(
            examples, path, f"hole ratio {masksets.bin_label(b)}"
        )


def example_pairs(rows: Sequence[dict[str, str]], per_cell: int = 1) -> dict[int, list[tuple[str, str]]]:
    """For each bin, the (image, mask) of the first ``per_cell`` pairs of each border flag, in row order."""
    chosen: dict[int, list[tuple[str, str]]] = {}
    seen: dict[tuple[int, int], int] = {}
    for row in rows:
        key = (row["image"], row["mask"])
        b, border = int(row["bin"]), int(row["border"])
        if key in chosen.get(b, []) or seen.get((b, border), 0) >= per_cell:
            continue
        seen[(b, border)] = seen.get((b, border), 0) + 1
        chosen.setdefault(b, []).append(key)
    return chosen
