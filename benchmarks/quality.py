"""Inpainting quality on the held-out set: one experiment = train -> export -> eval vs OpenCV.

Trains with ``pconv train`` (the arguments after ``--`` are passed to it verbatim, so every recipe
is a real CLI command), exports FP32 ONNX, and scores it with ``pconv eval --images builtin``
(the held-out views, never training data) against OpenCV Telea and Navier-Stokes on the same
image/mask pairs, at 256². Writes ``benchmarks/results/quality_<name>.json``: the command, the
machine, training seconds, and PSNR/SSIM (whole image, composite) per hole-ratio bin per method,
with the per-bin margin of pconv over the better of the two baselines.

    python benchmarks/quality.py --name augment_full --per-bin 6 -- --size 128 --depth 6 --steps 2000
    python benchmarks/quality.py --name default --checkpoint pconv/models/default.safetensors

A run folder that already holds a finished training is reused (rerun = re-evaluate); an
interrupted one is resumed by pconv train itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("psnr", "ssim")
BASELINES = ("telea", "ns")


def machine() -> dict[str, Any]:
    from cpu_inference import cpu_model  # same folder: run as a script

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def per_bin_table(rows: list[dict[str, str]]) -> dict[str, dict[str, dict[str, float]]]:
    """{bin label: {method: {psnr, ssim, n}}}, both border flags together."""
    from pconv.eval.masksets import bin_label

    sums: dict[tuple[int, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        cell = sums[(int(row["bin"]), row["method"])]
        cell["n"] += 1
        for m in METRICS:
            cell[m] += min(float(row[m]), 100.0)  # identical fills give inf PSNR; cap as the report does
    table: dict[str, dict[str, dict[str, float]]] = {}
    for (b, method), cell in sorted(sums.items()):
        n = cell["n"]
        table.setdefault(bin_label(b), {})[method] = {
            **{m: round(cell[m] / n, 4) for m in METRICS},
            "n": int(n),
        }
    return table


def margins(table: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """pconv minus the better of Telea and NS, per bin and metric (> 0: pconv wins)."""
    out: dict[str, dict[str, float]] = {}
    for label, methods in table.items():
        if "pconv" not in methods:
            continue
        out[label] = {
            m: round(methods["pconv"][m] - max(methods[b][m] for b in BASELINES if b in methods), 4)
            for m in METRICS
        }
    return out


#: The goal's bins (issue 11): pconv must beat both baselines in every one of them.
GOAL_BINS = ("(0.1, 0.2]", "(0.2, 0.3]", "(0.3, 0.4]", "(0.4, 0.5]", "(0.5, 0.6]")


def experiments_markdown(paths: list[Path]) -> str:
    """One row per experiment JSON: recipe note, training time, margin over the best baseline."""
    lines = [
        "| experiment | what it tests | train s | PSNR margin (dB), bins 0.1–0.6 | SSIM margin | bins won |",
        "|---|---|---|---|---|---|",
    ]
    for path in paths:
        r = json.loads(path.read_text())
        m = r["pconv_minus_best_baseline"]
        psnr = [m[b]["psnr"] for b in GOAL_BINS if b in m]
        ssim = [m[b]["ssim"] for b in GOAL_BINS if b in m]
        won = sum(1 for b in GOAL_BINS if b in m and m[b]["psnr"] > 0 and m[b]["ssim"] > 0)
        seconds = "–" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        lines.append(
            f"| `{r['name']}` | {r['note']} | {seconds} | {min(psnr):+.2f} … {max(psnr):+.2f} | "
            f"{min(ssim):+.3f} … {max(ssim):+.3f} | {won}/{len(GOAL_BINS)} |"
        )
    return "\n".join(lines)


def per_bin_markdown(path: Path) -> str:
    """The per-bin PSNR/SSIM table of one experiment (pconv, Telea, NS)."""
    r = json.loads(path.read_text())
    lines = [
        "| hole ratio | pconv PSNR | Telea PSNR | NS PSNR | pconv SSIM | Telea SSIM | NS SSIM | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, methods in r["per_bin"].items():
        p, t, n = methods["pconv"], methods["telea"], methods["ns"]
        lines.append(
            f"| {label} | {p['psnr']:.2f} | {t['psnr']:.2f} | {n['psnr']:.2f} | {p['ssim']:.3f} | "
            f"{t['ssim']:.3f} | {n['ssim']:.3f} | {p['n']} |"
        )
    return "\n".join(lines)


def train(run: Path, train_args: list[str]) -> float:
    """Run ``pconv train`` into ``run`` (resume when a run is there); returns wall seconds."""
    command = [sys.executable, "-m", "pconv", "train", "--out", str(run), "--no-progress", *train_args]
    if (run / "train_state.pt").is_file():
        command.append("--resume")
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def evaluate(onnx: Path, out: Path, per_bin: int, size: int) -> list[dict[str, str]]:
    from pconv.eval.evaluate import EvalOptions, run_evaluation

    result = run_evaluation(
        EvalOptions(
            out=out,
            images="builtin",
            model=onnx,
            per_bin=per_bin,
            size=size,
            baselines=BASELINES,
            progress=sys.stderr.isatty(),
        )
    )
    return result.rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--name", default=None, help="experiment name (results/quality_<name>.json)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="evaluate this checkpoint, no training")
    parser.add_argument("--per-bin", type=int, default=6, help="masks per (bin, border) cell (default 6)")
    parser.add_argument("--size", type=int, default=256, help="evaluation size (default 256)")
    parser.add_argument("--runs", type=Path, default=Path("runs/quality"), help="parent of the run folders")
    parser.add_argument("--note", default="", help="what this experiment tests (stored in the JSON)")
    parser.add_argument(
        "--summarise",
        type=Path,
        default=None,
        metavar="JSON",
        help="print the Markdown tables (every results/quality_*.json, then JSON's per-bin table) and exit",
    )
    parser.add_argument("train_args", nargs="*", help="after --: arguments for pconv train")
    args = parser.parse_args()
    if args.summarise is not None:
        print(experiments_markdown(sorted(RESULTS.glob("quality_*.json"), key=lambda p: p.stat().st_mtime)))
        print()
        print(per_bin_markdown(args.summarise))
        return 0

    if args.name is None:
        parser.error("--name is required (or --summarise JSON)")
    from pconv.export.onnx_export import export_onnx

    work = args.runs / args.name
    seconds = None
    if args.checkpoint is None:
        seconds = train(work, args.train_args)
        checkpoint = work / "checkpoint.safetensors"
    else:
        checkpoint = args.checkpoint
    work.mkdir(parents=True, exist_ok=True)
    onnx = export_onnx(checkpoint, work / "model.onnx")
    rows = evaluate(onnx, work / "eval", args.per_bin, args.size)
    table = per_bin_table(rows)
    record = {
        "benchmark": "quality",
        "name": args.name,
        "note": args.note,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "train_command": None if args.checkpoint else ["pconv", "train", *args.train_args],
        "checkpoint": str(checkpoint),
        "train_seconds": None if seconds is None else round(seconds, 1),
        "eval": {
            "images": "builtin (held-out views)",
            "size": args.size,
            "per_bin": args.per_bin,
            "metric": "whole image, composite",
        },
        "per_bin": table,
        "pconv_minus_best_baseline": margins(table),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"quality_{args.name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    for label, methods in table.items():
        cells = "  ".join(f"{m} {v['psnr']:.2f}/{v['ssim']:.3f}" for m, v in methods.items())
        print(f"{label:>12}  {cells}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
