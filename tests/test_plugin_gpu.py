"""The fused CUDA kernels on a GPU, through the PyTorch harness (the same launchers TensorRT calls).

Every layer shape of the 512² network (``ModelConfig(depth=8)`` at its per-layer input sizes),
random and all-hole masks, FP32 (max-abs <= 1e-4 against the FP32 reference, TF32 off) and FP16
(max error <= 1e-2 of the output scale against the FP32 reference on the same half-rounded
inputs), the channels-last FP16 kernel on every layer it takes (all but enc1 and dec1) to the
same bound; then the whole network with one fused kernel per layer against PyTorch, in both
layouts. Skips without a CUDA GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from types import ModuleType

import pytest
from conftest import make_tiny_model, requires_gpu

from pconv.config import LayerSpec, ModelConfig
from pconv.plugins.torch_harness import layer_input_sizes

pytestmark = [requires_gpu, pytest.mark.gpu]

LAYERS = layer_input_sizes(ModelConfig(depth=8), 512)


@pytest.fixture(scope="module")
def ext() -> ModuleType:
    from pconv.plugins.torch_harness import load_kernels

    return load_kernels()


@pytest.fixture(autouse=True)
def exact_fp32() -> Iterator[None]:
    """The references must be true FP32: cuDNN and cuBLAS would otherwise use TF32."""
    import torch

    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def layer_inputs(spec: LayerSpec, size: int, batch: int, masks: str, seed: int):  # type: ignore[no-untyped-def]
    """Masked features, the K single-channel masks, the full per-channel mask, weight, bias (FP32)."""
    import torch

    g = torch.Generator(device="cuda").manual_seed(seed)
    k = len(spec.mask_channel_weights)
    m = (torch.rand(batch, k, size, size, device="cuda", generator=g) > 0.35).float()
    if masks == "all_hole":
        m.zero_()
    else:
        m[:, :, size // 8 : size // 2, size // 4 : size // 2] = 0.0  # windows that see no valid pixel
    full = torch.cat(
        [m[:, j : j + 1].expand(-1, int(c), -1, -1) for j, c in enumerate(spec.mask_channel_weights)], 1
    )
    x = torch.randn(batch, spec.in_channels, size, size, device="cuda", generator=g) * full
    w = torch.randn(spec.out_channels, spec.in_channels, spec.kernel, spec.kernel, device="cuda", generator=g)
    w /= (spec.in_channels * spec.kernel**2) ** 0.5
    b = 0.1 * torch.randn(spec.out_channels, device="cuda", generator=g)
    return x, m, full, w, b


@pytest.mark.parametrize("masks", ["random", "all_hole"])
@pytest.mark.parametrize(("spec", "size"), LAYERS, ids=[f"{s.name}@{n}" for s, n in LAYERS])
def test_layer_fp32_matches_reference(ext: ModuleType, spec: LayerSpec, size: int, masks: str) -> None:
    import torch

    from pconv.plugins.torch_harness import fused_partial_conv
    from pconv.training.layers import PartialConv2d
    from pconv.training.reference import reference_partial_conv

    x, m, full, w, b = layer_inputs(spec, size, 1, masks, seed=size)
    y, new_mask = fused_partial_conv(x, m, w, b, spec, activate=False)
    torch.cuda.synchronize()
    ref, ref_mask = reference_partial_conv(x, full, w, b, spec.stride, spec.padding, spec.dilation)
    assert torch.isfinite(y).all()
    assert torch.equal(new_mask, ref_mask)
    assert (y - ref).abs().max().item() <= 1e-4
    assert torch.all(y[ref_mask.expand_as(y) == 0] == 0)
    if masks == "all_hole":
        assert torch.count_nonzero(y) == 0 and torch.count_nonzero(new_mask) == 0
    # The training layer (single-channel mask form, per-part masks) agrees too.
    layer = PartialConv2d(spec.in_channels, spec.out_channels, spec.kernel, spec.stride, spec.padding).cuda()
    with torch.no_grad():
        layer.weight.copy_(w)
        assert layer.bias is not None
        layer.bias.copy_(b)
        parts = torch.split(x, [int(c) for c in spec.mask_channel_weights], dim=1)
        y_layer, m_layer = layer.forward_parts(list(parts), list(torch.split(m, 1, dim=1)))
    assert torch.equal(new_mask, m_layer)
    assert (y - y_layer).abs().max().item() <= 1e-4


def _check_fp16_layer(
    spec: LayerSpec, size: int, masks: str, batch: int, seed: int, channels_last: bool
) -> None:
    """One FP16 fused layer vs the FP32 reference on the same half-rounded inputs (1e-2 of scale)."""
    import torch

    from pconv.plugins.torch_harness import fused_partial_conv
    from pconv.training.reference import reference_partial_conv

    x, m, full, w, b = layer_inputs(spec, size, batch, masks, seed=seed)
    x16, w16, b16 = x.half(), w.half(), b.half()
    y16, new_mask = fused_partial_conv(x16, m, w16, b16, spec, activate=False, channels_last=channels_last)
    assert y16.dtype == torch.float16
    assert y16.is_contiguous(memory_format=torch.channels_last) or not channels_last
    ref, ref_mask = reference_partial_conv(
        x16.float(), full, w16.float(), b16.float(), spec.stride, spec.padding, spec.dilation
    )
    y = y16.float()
    assert torch.isfinite(y).all()
    assert torch.equal(new_mask, ref_mask)
    assert torch.all(y[ref_mask.expand_as(y) == 0] == 0)
    scale = max(ref.abs().max().item(), 1e-6)
    assert (y - ref).abs().max().item() <= 1e-2 * scale


@pytest.mark.parametrize("masks", ["random", "all_hole"])
@pytest.mark.parametrize(("spec", "size"), LAYERS, ids=[f"{s.name}@{n}" for s, n in LAYERS])
def test_layer_fp16_matches_reference(ext: ModuleType, spec: LayerSpec, size: int, masks: str) -> None:
    _check_fp16_layer(spec, size, masks, batch=1, seed=size + 1, channels_last=False)


CHANNELS_LAST = [(s, n) for s, n in LAYERS if s.in_channels % 8 == 0 and s.out_channels % 8 == 0]


@pytest.mark.parametrize("masks", ["random", "all_hole"])
@pytest.mark.parametrize(("spec", "size"), CHANNELS_LAST, ids=[f"{s.name}@{n}" for s, n in CHANNELS_LAST])
def test_layer_fp16_channels_last_matches_reference(
    ext: ModuleType, spec: LayerSpec, size: int, masks: str
) -> None:
    _check_fp16_layer(spec, size, masks, batch=2, seed=size + 2, channels_last=True)


def test_weight_reorder_launcher(ext: ModuleType) -> None:
    """The plugin's weight reorder (C_out, C_in, kh, kw) -> (C_out, kh, kw, C_in), bit-exact."""
    import torch

    for c_out, c_in, k in ((64, 3, 7), (512, 1024, 3), (8, 16, 1)):
        w = torch.randn(c_out, c_in, k, k, device="cuda").half()
        x = torch.empty(1, c_in, 2 * k, 2 * k, device="cuda").half()
        assert torch.equal(ext.reorder_weight(x, w), w.permute(0, 2, 3, 1).contiguous())


def test_channels_last_refuses_what_it_cannot_take(ext: ModuleType) -> None:
    import torch

    from pconv.plugins.torch_harness import fused_partial_conv

    spec = ModelConfig(depth=8).layer_specs()[0]  # enc1: 3 input channels
    x, m, _, w, b = layer_inputs(spec, 16, 1, "random", seed=0)
    with pytest.raises(ValueError, match="divisible by 8"):
        fused_partial_conv(x.half(), m, w.half(), b.half(), spec, channels_last=True)
    with pytest.raises(RuntimeError, match="FP16"):
        ext.partial_conv2d(x, m, w, b, [2, 2], [3] * 4, [1, 1], [3.0], 0.0, True)
    assert x.dtype == torch.float32  # the FP32 call above is what was refused


@pytest.mark.parametrize("dtype_name", ["float32", "float16"])
def test_activation_batch_dilation_and_odd_sizes(ext: ModuleType, dtype_name: str) -> None:
    """Batch > 1, sizes that are not tile multiples, dilation 2, and the fused activation."""
    import torch
    import torch.nn.functional as F

    from pconv.plugins.torch_harness import fused_partial_conv, unfused_partial_conv

    dtype = getattr(torch, dtype_name)
    base = ModelConfig(depth=3, width=0.5).layer_specs()
    for spec in (replace(base[0], dilation=2, padding=6), base[1], base[-2], base[-1]):
        x, m, _, w, b = layer_inputs(spec, 37, 3, "random", seed=spec.in_channels)
        x, w, b = x.to(dtype), w.to(dtype), b.to(dtype)
        y, new_mask = fused_partial_conv(x, m, w, b, spec)
        ref, ref_mask = unfused_partial_conv(x.float(), m, w.float(), b.float(), spec)
        assert torch.equal(new_mask, ref_mask)
        tol = 1e-4 if dtype == torch.float32 else 1e-2 * ref.abs().max().item()
        assert (y.float() - ref).abs().max().item() <= tol, spec.name
        assert F.relu(-y.float()).max().item() == 0.0 or spec.activation != "relu"


@pytest.mark.slow
def test_whole_512_network_matches_pytorch(ext: ModuleType) -> None:
    import torch

    from pconv.plugins.torch_harness import folded_parameters, fused_unet_forward

    model = make_tiny_model(depth=8, width=1.0).cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    image = torch.rand(2, 3, 512, 512, device="cuda", generator=g)
    mask = (torch.rand(2, 1, 512, 512, device="cuda", generator=g) > 0.2).float()
    mask[:, :, 100:300, 150:400] = 0.0
    with torch.no_grad():
        expected = model(image, mask)
        got32 = fused_unet_forward(model, image, mask, dtype=torch.float32)
        folded16 = folded_parameters(model, torch.float16, image.device)
        got16 = fused_unet_forward(model, image, mask, dtype=torch.float16, folded=folded16)
        got16_cl = fused_unet_forward(
            model, image, mask, dtype=torch.float16, folded=folded16, channels_last=True
        )
    assert torch.isfinite(got32).all() and torch.isfinite(got16).all() and torch.isfinite(got16_cl).all()
    assert (got32 - expected).abs().max().item() <= 1e-3
    assert (got16 - expected).abs().max().item() <= 3e-2
    assert (got16_cl - expected).abs().max().item() <= 3e-2
