"""LPIPS from a local weights file: numpy forward vs. a PyTorch reference, weight packing, eval column.

The real pretrained weights are never downloaded, so these tests use random weights of the right
shapes: they check the computation, not the published numbers.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from pconv.errors import PconvError
from pconv.eval import lpips
from pconv.eval.evaluate import EvalOptions, run_evaluation


def _random_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        k: (rng.normal(0, 0.05, s) if k.startswith("features") else np.abs(rng.normal(0, 0.1, s))).astype(
            np.float32
        )
        for k, s in lpips.WEIGHT_SHAPES.items()
    }


def _torch_lpips(weights: dict[str, np.ndarray], a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS v0.1 (AlexNet) written with torch.nn.functional, as the lpips package computes it."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    w = {k: torch.from_numpy(v) for k, v in weights.items()}
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(img: np.ndarray) -> list:
        x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]
        h = (2 * x - 1 - shift) / scale
        out = []
        for i, (_, _, _, stride, pad) in lpips.ALEXNET_CONVS.items():
            h = F.relu(
                F.conv2d(h, w[f"features.{i}.weight"], w[f"features.{i}.bias"], stride=stride, padding=pad)
            )
            out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
            if i in (0, 3):
                h = F.max_pool2d(h, 3, 2)
        return out

    total = 0.0
    for j, (fa, fb) in enumerate(zip(feats(a), feats(b))):
        total += float(F.conv2d((fa - fb) ** 2, w[f"lin{j}.model.1.weight"]).mean())
    return total


def test_numpy_lpips_matches_a_torch_reference() -> None:
    weights = _random_weights()
    metric = lpips.LPIPS(weights)
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (72, 88, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    ours = metric(a, b)
    assert ours == pytest.approx(_torch_lpips(weights, a, b), rel=1e-4)
    assert ours > 0 and metric(a, a) == 0.0
    assert metric(b, a) == pytest.approx(ours, rel=1e-6)


def test_convert_weights_packs_torchvision_and_lpips_checkpoints(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    weights = _random_weights(2)
    alexnet = {k: torch.from_numpy(v) for k, v in weights.items() if k.startswith("features")}
    alexnet["classifier.1.weight"] = torch.zeros(4, 4)  # other AlexNet parameters are ignored
    torch.save(alexnet, tmp_path / "alexnet.pth")
    torch.save(
        {k: torch.from_numpy(v) for k, v in weights.items() if k.startswith("lin")}, tmp_path / "alex.pth"
    )
    out = lpips.convert_weights(tmp_path / "alexnet.pth", tmp_path / "alex.pth", tmp_path / "lpips.npz")
    loaded = lpips.load_weights(out)
    assert set(loaded) == set(weights)
    assert all(np.array_equal(loaded[k], weights[k]) for k in weights)
    with pytest.raises(PconvError, match="lack"):
        lpips.convert_weights(tmp_path / "alexnet.pth", tmp_path / "alexnet.pth", tmp_path / "bad.npz")


def test_eval_adds_an_lpips_column_only_with_local_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights_file = tmp_path / "lpips.npz"
    np.savez(weights_file, **_random_weights(3))  # type: ignore[arg-type]
    monkeypatch.setenv(lpips.LPIPS_ENV, str(weights_file))
    opts = EvalOptions(
        out=tmp_path / "with", per_bin=1, size=64, limit=1, baselines=("mean",), progress=False
    )
    result = run_evaluation(opts)
    with open(tmp_path / "with" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and all(float(r["lpips"]) > 0 for r in rows)
    assert "LPIPS" in result.markdown.splitlines()[0]

    monkeypatch.delenv(lpips.LPIPS_ENV)
    plain = run_evaluation(EvalOptions(**{**opts.__dict__, "out": tmp_path / "without"}))
    assert "LPIPS" not in plain.markdown.splitlines()[0]
    assert "LPIPS is not reported" in plain.markdown
    with pytest.raises(PconvError, match="not found"):
        run_evaluation(EvalOptions(**{**opts.__dict__, "lpips_weights": tmp_path / "missing.npz"}))
