"""Checkpoints: weights in ``.safetensors`` whose metadata holds the model config.

One file is enough to rebuild the model (:func:`load_checkpoint`). Nothing is ever unpickled:
safetensors holds only tensors and a string map. Files are written atomically (temp + rename).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from pconv._version import __version__
from pconv.config import ModelConfig
from pconv.contract import CHECKPOINT_FORMAT, META_CONFIG, META_FORMAT, META_VERSION
from pconv.errors import PconvError
from pconv.fileio import atomic_write
from pconv.training.unet import PConvUNet


class CheckpointError(PconvError, ValueError):
    """The file is missing, unreadable, or not a pconv checkpoint."""


def save_checkpoint(model: PConvUNet, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights and config to ``path`` (``.safetensors``), atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {META_FORMAT: CHECKPOINT_FORMAT, META_CONFIG: model.config.to_json(), META_VERSION: __version__}
    meta.update(metadata or {})
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return Path(path)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The checkpoint's metadata, after checking the file is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a safetensors file ({exc}); expected a pconv checkpoint"
        ) from exc
    if meta.get(META_FORMAT) != CHECKPOINT_FORMAT or META_CONFIG not in meta:
        raise CheckpointError(
            f"{path} is a safetensors file but not a pconv checkpoint (no '{META_FORMAT}' metadata); "
            "checkpoints are written by `pconv train` or pconv.training.save_checkpoint"
        )
    return meta


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> PConvUNet:
    """Rebuild the model from one checkpoint file, in eval mode."""
    meta = read_metadata(path)
    try:
        config = ModelConfig.from_json(meta[META_CONFIG])
    except (ValueError, TypeError) as exc:  # bad JSON, unknown keys, out-of-range values
        raise CheckpointError(
            f"{path}: its model config cannot be used ({exc}); was it written by a newer pconv?"
        ) from exc
    model = PConvUNet(config=config)
    state: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt", device=str(map_location)) as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            state[key] = f.get_tensor(key)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match its config (missing {missing}, unexpected {unexpected})"
        )
    return model.eval()
