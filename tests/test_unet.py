"""PConvUNet: paper size and cost, input contract, composite, reference equality, checkpoints."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model
from safetensors.torch import save_file

from pconv.config import LayerSpec, ModelConfig
from pconv.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pconv.training.reference import reference_forward
from pconv.training.unet import PConvUNet, composite


def spec_params(spec: LayerSpec) -> int:
    conv = spec.out_channels * spec.in_channels * spec.kernel**2 + (spec.out_channels if spec.bias else 0)
    return conv + (2 * spec.out_channels if spec.batch_norm else 0)


def spec_macs(specs: list[LayerSpec], size: int) -> int:
    """Multiply-accumulates of the feature convolutions, from the layer specs alone."""
    macs = 0
    h = size
    for spec in specs:
        if spec.upsample_input:
            h = h * 2
            out = h
        else:
            out = spec.output_size(h)
        macs += out * out * spec.out_channels * spec.in_channels * spec.kernel**2
        h = out
    return macs


def test_paper_model_has_about_33m_parameters() -> None:
    config = ModelConfig(depth=8, width=1.0)
    analytic = sum(spec_params(s) for s in config.layer_specs())
    model = PConvUNet(depth=8, width=1.0)
    counted = sum(p.numel() for p in model.parameters())
    assert counted == analytic
    assert abs(counted - 33e6) / 33e6 <= 0.01, counted  # 32,859,796


def test_paper_model_costs_about_76_gflop_at_512() -> None:
    specs = ModelConfig(depth=8, width=1.0).layer_specs()
    macs = spec_macs(specs, 512)
    # Measured: 37.97 G multiply-accumulates = 75.9 GFLOP (2 FLOP per MAC), the paper's ~76 GFLOP.
    assert abs(2 * macs - 76e9) / 76e9 <= 0.02, macs
    assert spec_macs(ModelConfig(depth=7).layer_specs(), 256) < macs / 3


def test_size_rule_is_a_clear_value_error() -> None:
    model = PConvUNet(depth=3, width=0.125)
    with pytest.raises(ValueError, match=r"multiples of 2\^depth = 8"):
        model(torch.rand(1, 3, 20, 16), torch.ones(1, 1, 20, 16))
    with pytest.raises(ValueError, match="mask must be"):
        model(torch.rand(1, 3, 16, 16), torch.ones(1, 2, 16, 16))


def test_forward_shapes_and_three_channel_masks() -> None:
    model = make_tiny_model()
    image = torch.rand(2, 3, 32, 24)
    mask1 = (torch.rand(2, 1, 32, 24) > 0.4).float()
    with torch.no_grad():
        out1 = model(image, mask1)
        out3 = model(image, mask1.expand(-1, 3, -1, -1).contiguous())
    assert out1.shape == image.shape
    torch.testing.assert_close(out1, out3, rtol=0, atol=1e-5)


def test_model_matches_reference_forward() -> None:
    model = make_tiny_model()
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 32, 32, generator=gen)
    masks = [
        (torch.rand(2, 1, 32, 32, generator=gen) > 0.5).float(),
        (torch.rand(2, 3, 32, 32, generator=gen) > 0.5).float(),  # per-channel holes
    ]
    for mask in masks:
        with torch.no_grad():
            ours = model(image, mask)
            ref = reference_forward(model, image, mask)
        err = (ours - ref).abs().max().item()
        assert err <= 1e-5, err


def test_composite_keeps_valid_pixels() -> None:
    image = torch.rand(1, 3, 4, 4)
    output = torch.rand(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    comp = composite(image, mask, output)
    assert torch.equal(comp[..., :2, :], image[..., :2, :])
    assert torch.equal(comp[..., 2:, :], output[..., 2:, :])


def test_checkpoint_round_trip(tmp_path) -> None:
    model = make_tiny_model(depth=4, width=0.25, seed=5)
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and not loaded.training
    image, mask = torch.rand(1, 3, 32, 32), (torch.rand(1, 1, 32, 32) > 0.3).float()
    with torch.no_grad():
        assert torch.equal(model(image, mask), loaded(image, mask))


def test_foreign_files_are_rejected(tmp_path) -> None:
    foreign = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a pconv checkpoint"):
        load_checkpoint(foreign)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    bad_config = tmp_path / "future.safetensors"
    meta = {"pconv_format": "pconv-checkpoint-v1", "pconv_config": '{"depth": 4, "new_key": 1}'}
    save_file({"w": torch.zeros(2)}, str(bad_config), metadata=meta)
    with pytest.raises(CheckpointError, match="model config cannot be used"):
        load_checkpoint(bad_config)
