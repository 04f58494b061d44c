"""Package a finished training run as the default model (``pconv/models/default.*``).

    python scripts/ship_default_model.py RUN --quality benchmarks/results/quality_default.json

Copies RUN's checkpoint, exports it to FP32 ONNX, and writes ``default.json``: the training
command and options (from RUN's own state file), steps, seconds (from RUN's log), the data, the
held-out scores (from the quality benchmark JSON of the same checkpoint) and the sha256 of both
model files, which ``pconv.models.verify_default_model`` and the tests check. ``make
default-model`` runs training, the benchmark and this script in one command.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path
from typing import Any


def training_seconds(run: Path) -> float:
    """Wall seconds of training, summed from log.csv's per-row sec_per_step."""
    total, previous = 0.0, 0
    with (run / "log.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row["step"]))
            total += (step - previous) * float(row["sec_per_step"])
            previous = step
    return total


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a finished pconv train run folder")
    parser.add_argument("--quality", type=Path, required=True, help="quality benchmark JSON of this run")
    parser.add_argument("--command", default="make default-model", help="the documented training command")
    args = parser.parse_args()

    import torch

    from pconv.export import export_onnx
    from pconv.models import DEFAULT_CHECKPOINT, DEFAULT_ONNX, DEFAULT_RECORD, MODELS_DIR, sha256_file
    from pconv.training.data import BUILTIN_HELDOUT, BUILTIN_TRAIN

    state: dict[str, Any] = torch.load(args.run / "train_state.pt", map_location="cpu", weights_only=True)
    quality = json.loads(args.quality.read_text())
    shutil.copyfile(args.run / "checkpoint.safetensors", DEFAULT_CHECKPOINT)
    export_onnx(DEFAULT_CHECKPOINT, DEFAULT_ONNX)
    DEFAULT_ONNX.chmod(0o644)  # shipped files are world-readable (the atomic writer makes 0600)
    options = state["options"]
    record = {
        "summary": (
            f"depth {json.loads(state['model_config'])['depth']}, width "
            f"{json.loads(state['model_config'])['width']}, {state['step']} steps at "
            f"{options['size']}² on scikit-image's photos and textures, CPU"
        ),
        "command": args.command,
        "train_command": quality.get("train_command"),
        "options": options,
        "model_config": json.loads(state["model_config"]),
        "steps": int(state["step"]),
        "train_seconds": round(training_seconds(args.run), 1),
        "machine": quality.get("machine"),
        "data": {"train": list(BUILTIN_TRAIN), "held_out_never_trained_on": list(BUILTIN_HELDOUT)},
        "held_out_scores": {
            "eval": quality["eval"],
            "per_bin": quality["per_bin"],
            "pconv_minus_best_baseline": quality["pconv_minus_best_baseline"],
        },
        "files": {p.name: sha256_file(p) for p in (DEFAULT_ONNX, DEFAULT_CHECKPOINT)},
    }
    DEFAULT_RECORD.write_text(json.dumps(record, indent=2) + "\n")
    size = sum((MODELS_DIR / name).stat().st_size for name in record["files"])
    print(f"wrote {DEFAULT_ONNX.name}, {DEFAULT_CHECKPOINT.name}, {DEFAULT_RECORD.name}: {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
