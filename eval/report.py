"""Turn evaluation rows into tables (Markdown, CSV), a metric-vs-hole-ratio plot and example grids.

Means per (bin, border, method) cell; PSNR means cap each value at
:data:`pconv.eval.metrics.PSNR_CAP_DB` (identical images have infinite PSNR), and the tables say how
many values were capped. Matplotlib is imported lazily with the Agg backend (no display needed).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pconv.errors import require
from pconv.eval.masksets import BINS, bin_label
from pconv.eval.metrics import METRIC_NAMES, PSNR_CAP_DB, mean_psnr

#: Column headings of the Markdown table (L1 shown in percent, as in the paper's tables).
MARKDOWN_HEADINGS = {
    "l1": "L1 (%)",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "l1_hole": "hole L1 (%)",
    "psnr_hole": "hole PSNR (dB)",
    "ssim_hole": "hole SSIM",
    "lpips": "LPIPS",
}
SUMMARY_KEYS = ("bin", "bin_low", "bin_high", "border", "method", "n")
SUMMARY_COUNTS = ("psnr_inf", "psnr_hole_inf")
ALL = "all"


@dataclass(frozen=True)
class CellSummary:
    """Mean metrics of one method in one (bin, border) cell; ``bin``/``border`` None = all of them."""

    bin: int | None
    border: bool | None
    method: str
    n: int
    means: dict[str, float]
    psnr_inf: int  # how many whole-image PSNR values were infinite (capped in the mean)
    psnr_hole_inf: int

    @property
    def bin_text(self) -> str:
        return ALL if self.bin is None else bin_label(self.bin)

    @property
    def border_text(self) -> str:
        return ALL if self.border is None else ("yes" if self.border else "no")


def _summarise_group(
    rows: Sequence[dict[str, str]], metric_names: Sequence[str]
) -> tuple[dict[str, float], int, int]:
    means: dict[str, float] = {}
    for name in metric_names:
        values = [float(r[name]) for r in rows]
        means[name] = mean_psnr(values) if name.startswith("psnr") else float(np.mean(values))
    infs = sum(math.isinf(float(r["psnr"])) for r in rows)
    hole_infs = sum(math.isinf(float(r["psnr_hole"])) for r in rows)
    return means, infs, hole_infs


def summarise(
    rows: Sequence[dict[str, str]], methods: Sequence[str], metric_names: Sequence[str] = METRIC_NAMES
) -> list[CellSummary]:
    """Per (bin, border, method) means in bin, border, method order, then one "all" row per method."""
    out: list[CellSummary] = []
    for b in range(len(BINS)):
        for border in (False, True):
            for method in methods:
                group = [
                    r
                    for r in rows
                    if r["method"] == method and int(r["bin"]) == b and bool(int(r["border"])) == border
                ]
                if group:
                    means, infs, hole_infs = _summarise_group(group, metric_names)
                    out.append(CellSummary(b, border, method, len(group), means, infs, hole_infs))
    for method in methods:
        group = [r for r in rows if r["method"] == method]
        if group:
            means, infs, hole_infs = _summarise_group(group, metric_names)
            out.append(CellSummary(None, None, method, len(group), means, infs, hole_infs))
    return out


def _metric_names(summary: Sequence[CellSummary]) -> list[str]:
    return list(summary[0].means) if summary else list(METRIC_NAMES)


def _md_value(name: str, value: float) -> str:
    if math.isnan(value):
        return "–"
    if name.startswith("l1"):
        return f"{100 * value:.2f}"
    if name.startswith("psnr"):
        return f"{value:.2f}"
    return f"{value:.4f}"


def markdown_table(summary: Sequence[CellSummary], notes: Sequence[str] = ()) -> str:
    """A Markdown table of ``summary`` followed by ``notes`` (one bullet each)."""
    names = _metric_names(summary)
    head = ["hole ratio", "border", "method", "n", *(MARKDOWN_HEADINGS.get(m, m) for m in names)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    for s in summary:
        cells = [
            s.bin_text,
            s.border_text,
            s.method,
            str(s.n),
            *(_md_value(m, s.means[m]) for m in names),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    capped = sum(s.psnr_inf + s.psnr_hole_inf for s in summary if s.bin is not None)
    notes = [
        "All metrics on the composite (valid pixels from the input), images on [0, 1]; "
        "*hole* columns average over hole pixels only (hole SSIM = mean of the SSIM map over hole pixels).",
        "border: *yes* = holes within the border margin (1/32 of the shorter side), *no* = none there.",
        f"PSNR means cap each value at {PSNR_CAP_DB:g} dB (identical images have infinite PSNR); "
        f"{capped} value(s) were capped.",
        *notes,
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def write_summary_csv(summary: Sequence[CellSummary], path: Path) -> None:
    """Write the summary with raw means (L1 as a fraction, not percent)."""
    names = _metric_names(summary)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=(*SUMMARY_KEYS, *names, *SUMMARY_COUNTS))
        writer.writeheader()
        for s in summary:
            lo, hi = ("", "") if s.bin is None else BINS[s.bin]
            writer.writerow(
                {
                    "bin": ALL if s.bin is None else s.bin,
                    "bin_low": lo,
                    "bin_high": hi,
                    "border": ALL if s.border is None else int(s.border),
                    "method": s.method,
                    "n": s.n,
                    **{m: f"{s.means[m]:.6f}" for m in names},
                    "psnr_inf": s.psnr_inf,
                    "psnr_hole_inf": s.psnr_hole_inf,
                }
            )


def _pyplot():  # type: ignore[no-untyped-def]
    matplotlib = require("matplotlib", "eval", "matplotlib")
    matplotlib.use("Agg")  # type: ignore[attr-defined]
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(summary: Sequence[CellSummary], path: Path, methods: Sequence[str]) -> Path:
    """One panel per metric: mean value per bin against the bin's centre hole ratio, a line per method.

    Solid lines: masks away from the border; dashed: masks touching it.
    """
    plt = _pyplot()
    names = _metric_names(summary)
    rows = math.ceil(len(names) / 3)
    fig, axes = plt.subplots(rows, 3, figsize=(13, 3.6 * rows + 0.6), constrained_layout=True, squeeze=False)
    for ax in axes.ravel()[len(names) :]:
        ax.set_visible(False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes.ravel(), names):
        for i, method in enumerate(methods):
            for border, style in ((False, "-"), (True, "--")):
                cells = [
                    s for s in summary if s.method == method and s.bin is not None and s.border == border
                ]
                if not cells:
                    continue
                xs = [sum(BINS[s.bin]) / 2 for s in cells if s.bin is not None]
                ys = [s.means[name] * (100 if name.startswith("l1") else 1) for s in cells]
                label = f"{method} ({'border' if border else 'no border'})"
                ax.plot(xs, ys, style, marker="o", color=colours[i % len(colours)], label=label)
        ax.set_title(MARKDOWN_HEADINGS.get(name, name))
        ax.set_xlabel("hole ratio (bin centre)")
        ax.set_xticks([sum(b) / 2 for b in BINS])
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class Example:
    """One row of an example grid: a title and labelled images (all uint8 RGB, same size)."""

    title: str
    panels: list[tuple[str, np.ndarray]]


def masked_input(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The input as shown to a user: holes painted white."""
    out = image.copy()
    out[np.asarray(hole, dtype=bool)] = 255
    return out


def example_grid(examples: Sequence[Example], path: Path, title: str, min_panel: int = 128) -> Path:
    """A PNG with one row per example and one column per panel (input, each method, ground truth).

    Drawn with Pillow at the images' own resolution (small images enlarged by an integer factor with
    nearest neighbour up to ``min_panel`` px), so the pixels shown are the pixels scored.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    pad, label_h, caption_h, title_h = 6, 28, 16, 22
    first = examples[0].panels[0][1]
    factor = max(1, math.ceil(min_panel / max(1, min(first.shape[:2]))))
    ph, pw = first.shape[0] * factor, first.shape[1] * factor
    cols = max(len(e.panels) for e in examples)
    width = pad + cols * (pw + pad)
    row_h = label_h + ph + caption_h + pad
    canvas = Image.new("RGB", (width, title_h + len(examples) * row_h + pad), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 4), title, fill="black", font=font)
    for r, example in enumerate(examples):
        top = title_h + r * row_h
        for c, (label, img) in enumerate(example.panels):
            left = pad + c * (pw + pad)
            draw.multiline_text((left, top), label, fill="black", font=font, spacing=2)
            panel = Image.fromarray(np.ascontiguousarray(img)).resize((pw, ph), Image.Resampling.NEAREST)
            canvas.paste(panel, (left, top + label_h))
        draw.text((pad, top + label_h + ph + 2), example.title, fill=(60, 60, 60), font=font)
    canvas.save(path)
    return path
