"""The default model that ships inside the package (no download, ever).

``default.onnx`` runs in :class:`pconv.runtime.Inpainter` (numpy + ONNX Runtime, no torch);
``default.safetensors`` is its checkpoint, so ``pconv train --finetune default`` starts from it;
``default.json`` records how it was trained (command, steps, data, seconds, held-out scores) and
the sha256 of both files, which :func:`verify_default_model` checks.

Torch-free and stdlib-only: the runtime and the CLIs import this to resolve ``"default"``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pconv.errors import PconvError
from pconv.fileio import sha256_file

#: The model name that means "the shipped model" wherever a model path is accepted.
DEFAULT_MODEL = "default"
MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_ONNX = MODELS_DIR / "default.onnx"
DEFAULT_CHECKPOINT = MODELS_DIR / "default.safetensors"
DEFAULT_RECORD = MODELS_DIR / "default.json"


def default_record() -> dict[str, Any]:
    """The training record of the shipped model."""
    try:
        record: dict[str, Any] = json.loads(DEFAULT_RECORD.read_text())
    except (OSError, ValueError) as exc:
        raise PconvError(
            f"the default model's record {DEFAULT_RECORD} is missing or unreadable ({exc}); reinstall pconv"
        ) from exc
    return record


def _require(path: Path) -> Path:
    if not path.is_file():
        raise PconvError(f"the default model file {path} is missing; reinstall pconv or pass a model path")
    return path


def default_onnx() -> Path:
    """Path of the shipped ONNX model."""
    return _require(DEFAULT_ONNX)


def default_checkpoint() -> Path:
    """Path of the shipped checkpoint (for fine-tuning)."""
    return _require(DEFAULT_CHECKPOINT)


def resolve_model(model: str | Path | None) -> Path:
    """``None`` or ``"default"`` -> the shipped ONNX model; anything else is a path, unchanged."""
    if model is None or str(model) == DEFAULT_MODEL:
        return default_onnx()
    return Path(model)


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """``"default"`` -> the shipped checkpoint; anything else is a path, unchanged."""
    return default_checkpoint() if str(checkpoint) == DEFAULT_MODEL else Path(checkpoint)


def verify_default_model() -> dict[str, str]:
    """Check the shipped files against the sha256 in the record; returns {file: sha256}."""
    expected: dict[str, str] = default_record()["files"]
    found = {}
    for name, digest in expected.items():
        actual = sha256_file(_require(MODELS_DIR / name))
        if actual != digest:
            raise PconvError(
                f"the default model file {name} does not match its recorded sha256; reinstall pconv"
            )
        found[name] = actual
    return found
