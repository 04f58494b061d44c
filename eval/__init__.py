"""Evaluation: binned test masks, metrics per hole ratio, classical baselines, tables and plots.

Torch-free: :mod:`pconv.eval.metrics` needs numpy only; baselines need OpenCV, reports matplotlib and
Pillow, and the model runs through :mod:`pconv.runtime`. Submodules are imported on use.
"""

from __future__ import annotations

__all__ = ["baselines", "evaluate", "masksets", "metrics", "report"]
