"""Peak memory (RSS) and time of ``Inpainter`` on a big photo: scattered specks, a frame, one large hole.

Why: ``crop`` used to merge nearby hole regions, so dust specks or a frame on a 24 MP photo became one
whole-image tile (8.8 GB RSS with the paper-size model). Now a group is split into tiles within the
pixel budget; this measures what that buys. Each case runs in a fresh process, so its peak RSS
(``ru_maxrss``) is its own. The model is the paper's 512² network (depth 8, width 1) with seeded
random weights: memory and time do not depend on training. Prints JSON (and writes ``--out``).

    python benchmarks/big_photo_memory.py [--size 6000x4000] [--strategy auto] [--threads 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CASES = ("specks", "frame", "one_hole")


def make_holes(case: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    """The hole mask of one case (True = hole)."""
    holes = np.zeros((height, width), bool)
    if case == "specks":  # dust removal: 2000 specks of 3-9 px all over the photo
        rng = np.random.default_rng(seed)
        for y, x, r in zip(
            rng.integers(0, height, 2000), rng.integers(0, width, 2000), rng.integers(1, 5, 2000)
        ):
            holes[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = True
    elif case == "frame":  # a 48 px frame around the photo
        holes[:48], holes[-48:], holes[:, :48], holes[:, -48:] = True, True, True, True
    elif case == "one_hole":  # one large hole: 1/9 of the photo
        holes[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3] = True
    else:
        raise ValueError(case)
    return holes


def run_case(model: str, case: str, height: int, width: int, strategy: str) -> dict[str, Any]:
    """One case in this process (called in a child): time and peak RSS of one Inpainter call."""
    from pconv.runtime import Inpainter

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    holes = make_holes(case, height, width)
    inpainter = Inpainter(model, providers=["CPUExecutionProvider"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    out = inpainter(image, holes, strategy=strategy)
    seconds = time.perf_counter() - t0
    assert np.array_equal(out[~holes], image[~holes])
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "case": case,
        "hole_fraction": float(holes.mean()),
        "seconds": round(seconds, 2),
        "peak_rss_gib": round(peak_kib / 2**20, 3),
        "rss_before_call_gib": round(before / 2**20, 3),
    }


def export_paper_model(path: Path) -> None:
    import torch

    from pconv.export.onnx_export import export_onnx
    from pconv.training.unet import PConvUNet

    torch.manual_seed(0)
    export_onnx(PConvUNet(depth=8, width=1.0).eval(), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="6000x4000", help="WIDTHxHEIGHT of the photo (default 24 MP)")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--model", default=None, help="an exported ONNX model (default: the paper model)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", nargs=4, metavar=("MODEL", "CASE", "H", "W"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, case, h, w = args.child
        print(json.dumps(run_case(model, case, int(h), int(w), args.strategy)))
        return
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(Path(tmp) / "paper.onnx")
        if args.model is None:
            export_paper_model(Path(model))
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        results = []
        for case in args.cases.split(","):
            cmd = [
                sys.executable,
                __file__,
                "--strategy",
                args.strategy,
                "--child",
                model,
                case,
                str(height),
                str(width),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), file=sys.stderr)
    report = {
        "benchmark": "big_photo_memory",
        "photo": f"{width}x{height}",
        "megapixels": round(width * height / 1e6, 1),
        "model": "paper 512² PConvUNet (depth 8, width 1), random weights"
        if args.model is None
        else args.model,
        "strategy": args.strategy,
        "threads": args.threads,
        "cpu": os.cpu_count(),
        "results": results,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
