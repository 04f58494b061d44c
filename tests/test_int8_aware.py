"""INT8-aware fine-tuning (``pconv train --finetune CKPT --int8-aware``) on tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import make_tiny_model

from pconv.errors import PconvError
from pconv.export.onnx_export import export_onnx
from pconv.export.quantize import Int8Options, calibration_samples
from pconv.training.checkpoint import load_checkpoint, save_checkpoint
from pconv.training.int8_aware import ActivationRange, enable_int8_aware, fake_quant_weight
from pconv.training.train import TrainOptions, train


def _inputs(model: torch.nn.Module, count: int = 4, size: int = 32) -> list[dict[str, np.ndarray]]:
    return calibration_samples(model.config, Int8Options(count=count, size=size, seed=1))  # type: ignore[arg-type]


def _torch_out(model: torch.nn.Module, feed: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(feed["image"]), torch.from_numpy(feed["mask"])).numpy()


def test_the_checkpoint_stays_plain_and_all_batchnorm_is_frozen() -> None:
    model = make_tiny_model()
    keys = set(model.state_dict())
    simulated = enable_int8_aware(model)
    assert simulated == [s.name for s in model.specs[1:-1]]  # enc1 and dec1 stay FP32, as in the export
    assert set(model.state_dict()) == keys  # the range buffers are not part of the checkpoint
    model.train()
    for spec in model.specs:
        bn = model.layers[spec.name].bn  # type: ignore[union-attr]
        if bn is not None:
            assert not bn.training and not any(p.requires_grad for p in bn.parameters()), spec.name


def test_the_simulation_rounds_like_the_int8_export(tmp_path: Path) -> None:
    """The simulated forward differs from FP32 and is much closer to what ONNX Runtime's INT8 model
    computes than the FP32 forward is: it models the export's rounding, not some other noise."""
    float_model = make_tiny_model()
    calibration = _inputs(float_model, count=8)
    int8_path = export_onnx(
        float_model, tmp_path / "int8.onnx", precision="int8", int8=Int8Options(count=8, size=32, seed=1)
    )
    session = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
    simulated = make_tiny_model()
    enable_int8_aware(simulated)
    simulated.train()
    with torch.no_grad():  # ranges from the same samples the export calibrates on
        for feed in calibration:
            simulated(torch.from_numpy(feed["image"]), torch.from_numpy(feed["mask"]))
    simulated.eval()
    fp32_err, sim_err = [], []
    for feed in _inputs(float_model, count=3):
        ort_out = session.run(["output"], feed)[0]
        fp32_err.append(np.abs(_torch_out(float_model, feed) - ort_out).mean())
        sim_err.append(np.abs(_torch_out(simulated, feed) - ort_out).mean())
    assert np.mean(fp32_err) > 0  # INT8 changes the output
    assert np.mean(sim_err) < 0.6 * np.mean(fp32_err), (sim_err, fp32_err)


def test_without_rounding_the_simulated_layer_is_the_fp32_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every rounding switched off, the folded-BatchNorm, per-part forward equals the model's own:
    the simulation changes the numbers only where it rounds."""
    import pconv.training.int8_aware as int8_aware

    reference = make_tiny_model()
    simulated = make_tiny_model()
    enable_int8_aware(simulated)
    monkeypatch.setattr(int8_aware, "fake_quant_weight", lambda w: w)
    monkeypatch.setattr(ActivationRange, "forward", lambda self, x: x)
    for feed in _inputs(reference, count=2):
        np.testing.assert_allclose(_torch_out(simulated, feed), _torch_out(reference, feed), atol=2e-5)


def test_rounding_passes_gradients_straight_through() -> None:
    weight = torch.randn(4, 3, 3, 3, requires_grad=True)
    fake_quant_weight(weight).sum().backward()
    assert weight.grad is not None and torch.equal(weight.grad, torch.ones_like(weight))
    levels = torch.unique(fake_quant_weight(weight.detach())[0] / (weight.detach()[0].abs().max() / 127))
    assert len(levels) <= 255 and torch.allclose(levels, levels.round(), atol=1e-4)
    quant = ActivationRange().train()
    x = torch.linspace(-1.0, 3.0, 1000)
    y = quant(x)
    assert len(torch.unique(y)) <= 256 and (y - x).abs().max() <= 4.0 / 255 / 2 + 1e-6


def test_int8_aware_fine_tuning_trains_and_needs_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PconvError, match="--finetune"):
        TrainOptions(int8_aware=True)
    import pconv.training.train as train_module

    seen_model: list[torch.nn.Module] = []
    start_model = train_module.start_model

    def recording_start_model(*args: object, **kwargs: object) -> torch.nn.Module:
        seen_model.append(start_model(*args, **kwargs))  # type: ignore[arg-type]
        return seen_model[-1]

    monkeypatch.setattr(train_module, "start_model", recording_start_model)
    source = tmp_path / "source.safetensors"
    save_checkpoint(make_tiny_model(depth=4, width=0.125), source)
    common = {"size": 64, "batch": 2, "progress": False, "log_every": 1, "sample_every": 0}
    result = train(
        TrainOptions(out=str(tmp_path / "run"), steps=3, finetune=str(source), int8_aware=True, **common)  # type: ignore[arg-type]
    )
    assert result.steps == 3 and all(np.isfinite(row["total"]) for row in result.history)
    run_model = seen_model[0]  # the simulation was on during the run: its ranges saw every step
    ranges = run_model.layers["enc2"].int8_aware.inputs[0]  # type: ignore[union-attr]
    assert int(ranges.seen) == 3 and run_model.layers["enc1"].int8_aware is None
    tuned = load_checkpoint(result.checkpoint)  # an ordinary FP32 checkpoint
    before = load_checkpoint(source)
    assert not torch.equal(tuned.layers["enc1"].conv.weight, before.layers["enc1"].conv.weight)  # type: ignore[union-attr]
    bn_after, bn_before = tuned.layers["dec2"].bn, before.layers["dec2"].bn  # type: ignore[union-attr]
    assert torch.equal(bn_after.running_mean, bn_before.running_mean)  # decoder BatchNorm frozen too
    with pytest.raises(PconvError, match="--int8-aware"):  # a resume keeps the stage
        train(TrainOptions(out=str(tmp_path / "run"), steps=4, finetune=str(source), resume=True, **common))  # type: ignore[arg-type]
