"""Package a finished training run as the default model (``pconv/models/default.*``).

    python scripts/ship_default_model.py RUN [--stage1 RUN1 | --stage1-record JSON] \
        --quality benchmarks/results/quality_X.json

Copies RUN's checkpoint, exports it to FP32 ONNX, and writes ``default.json``: per training stage
(RUN1 from scratch, then RUN fine-tuned from it, or RUN alone) the options from the run's own state
file, steps and seconds (from its log); the data; the held-out scores (from the quality benchmark
JSON of RUN's checkpoint) and the sha256 of both model files, which
``pconv.models.verify_default_model`` and the tests check. ``make default-model`` runs both
training stages, their benchmarks and this script in one command.
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
    parser.add_argument("--stage1", type=Path, default=None, help="the run RUN was fine-tuned from")
    parser.add_argument(
        "--stage1-record",
        type=Path,
        default=None,
        help="instead of --stage1: the default.json of the shipped model RUN was fine-tuned from "
        "(`--finetune default`), whose stages come first",
    )
    parser.add_argument("--quality", type=Path, required=True, help="quality benchmark JSON of this run")
    parser.add_argument("--command", default="make default-model", help="the documented training command")
    args = parser.parse_args()

    import torch

    from pconv.data.images import BUILTIN_HELDOUT, BUILTIN_TRAIN
    from pconv.export.onnx_export import export_onnx
    from pconv.models import DEFAULT_CHECKPOINT, DEFAULT_ONNX, DEFAULT_RECORD, MODELS_DIR, sha256_file

    def stage(run: Path) -> dict[str, Any]:
        state: dict[str, Any] = torch.load(run / "train_state.pt", map_location="cpu", weights_only=True)
        return {
            "run": run.name,
            "options": state["options"],
            "steps": int(state["step"]),
            "seconds": round(training_seconds(run), 1),
            "model_config": json.loads(state["model_config"]),
        }

    if args.stage1 and args.stage1_record:
        parser.error("pass --stage1 or --stage1-record, not both")
    earlier: list[dict[str, Any]] = (
        [stage(args.stage1)]
        if args.stage1
        else json.loads(args.stage1_record.read_text())["stages"]  # read before default.json is rewritten
        if args.stage1_record
        else []
    )
    stages = [*earlier, stage(args.run)]
    if args.stage1_record and stages[-1]["options"].get("finetune") == str(DEFAULT_CHECKPOINT):
        # `--finetune default` resolved to the file this script is about to replace: name the stage instead
        stages[-1]["options"]["finetune"] = f"default (stage {len(earlier)}: {earlier[-1]['run']})"
    quality = json.loads(args.quality.read_text())
    shutil.copyfile(args.run / "checkpoint.safetensors", DEFAULT_CHECKPOINT)
    export_onnx(DEFAULT_CHECKPOINT, DEFAULT_ONNX)
    DEFAULT_ONNX.chmod(0o644)  # shipped files are world-readable (the atomic writer makes 0600)
    config = stages[-1]["model_config"]
    steps = sum(s["steps"] for s in stages)
    record = {
        "summary": (
            f"depth {config['depth']}, width {config['width']}, {steps} steps in {len(stages)} stage(s) at "
            f"{stages[-1]['options']['size']}² on scikit-image's photos and textures, 2-core CPU"
        ),
        "command": args.command,
        "stages": stages,
        "model_config": config,
        "steps": steps,
        "train_seconds": round(sum(s["seconds"] for s in stages), 1),
        "machine": quality.get("machine"),
        "data": {"train": list(BUILTIN_TRAIN), "held_out_never_trained_on": list(BUILTIN_HELDOUT)},
        "held_out_scores": {
            "benchmark": args.quality.name,
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
