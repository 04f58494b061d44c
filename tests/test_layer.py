"""PartialConv2d (fast single-channel mask sum) against the independent NVIDIA-style reference."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from pconv.training.layers import PartialConv2d
from pconv.training.reference import reference_partial_conv

C_IN, C_OUT = 4, 5

# (kernel, stride, padding, dilation): kernels 3/5/7, strides 1/2, zero/"same"/odd paddings, dilation 1/2.
GEOMETRIES = [
    (k, s, p, d)
    for k, s, d in itertools.product((3, 5, 7), (1, 2), (1, 2))
    for p in sorted({0, (k - 1) // 2 * d, 1})
]


def make_mask(kind: str, shape: tuple[int, int, int, int], gen: torch.Generator) -> torch.Tensor:
    n, c, h, w = shape
    if kind == "binary1":
        return (torch.rand(n, 1, h, w, generator=gen) > 0.5).float()
    if kind == "binaryC":
        return (torch.rand(n, c, h, w, generator=gen) > 0.5).float()
    if kind == "fractionalC":  # per-channel values in [0, 1], some exact zeros and ones
        m = torch.rand(n, c, h, w, generator=gen)
        return torch.where(m < 0.3, torch.zeros_like(m), torch.where(m > 0.8, torch.ones_like(m), m))
    raise ValueError(kind)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mask_kind", ["binary1", "binaryC", "fractionalC"])
def test_matches_reference_fp32(bias: bool, mask_kind: str) -> None:
    gen = torch.Generator().manual_seed(10 * ("binary1", "binaryC", "fractionalC").index(mask_kind) + bias)
    for kernel, stride, padding, dilation in GEOMETRIES:
        layer = PartialConv2d(C_IN, C_OUT, kernel, stride, padding, dilation, bias=bias)
        if bias:
            with torch.no_grad():
                layer.bias.uniform_(-0.5, 0.5, generator=gen)  # type: ignore[union-attr]
        x = torch.randn(2, C_IN, 17, 15, generator=gen)
        mask = make_mask(mask_kind, (2, C_IN, 17, 15), gen)
        y, new_mask = layer(x, mask)
        y_ref, new_mask_ref = reference_partial_conv(
            x, mask, layer.weight, layer.bias, stride, padding, dilation
        )
        assert y.shape == y_ref.shape and new_mask.shape == (y.shape[0], 1, *y.shape[-2:])
        err = (y - y_ref).abs().max().item()
        assert err <= 1e-5, f"k={kernel} s={stride} p={padding} d={dilation}: max abs {err}"
        assert torch.equal(new_mask, new_mask_ref)


def test_single_channel_mask_equals_expanded_mask() -> None:
    gen = torch.Generator().manual_seed(1)
    layer = PartialConv2d(C_IN, C_OUT, 3, padding=1)
    x = torch.randn(1, C_IN, 9, 9, generator=gen)
    m1 = make_mask("binary1", (1, 1, 9, 9), gen)
    y1, n1 = layer(x, m1)
    y4, n4 = layer(x, m1.expand(-1, C_IN, -1, -1))
    torch.testing.assert_close(y1, y4, rtol=0, atol=1e-6)
    assert torch.equal(n1, n4)


def test_semantics_by_hand() -> None:
    """One window, all-ones weights: y = sum(valid x) * 9 / (#valid) + b; all-hole window gives 0."""
    layer = PartialConv2d(1, 1, 3, bias=True)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.fill_(0.5)  # type: ignore[union-attr]
    x = torch.arange(9.0).view(1, 1, 3, 3)
    mask = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]]).view(1, 1, 3, 3)
    y, new_mask = layer(x, mask)
    assert y.item() == pytest.approx((0 + 4 + 8) * 9 / 3 + 0.5)
    assert new_mask.item() == 1.0
    y0, m0 = layer(x, torch.zeros_like(mask))
    assert y0.item() == 0.0 and m0.item() == 0.0  # bias masked too


def test_float16_all_hole_windows_are_exact_zero() -> None:
    gen = torch.Generator().manual_seed(2)
    layer = PartialConv2d(C_IN, C_OUT, 5, stride=1, padding=2)
    with torch.no_grad():
        layer.bias.uniform_(0.5, 1.0, generator=gen)  # type: ignore[union-attr]
    layer = layer.half()
    x = (torch.randn(2, C_IN, 24, 24, generator=gen) * 10).half()
    mask = torch.ones(2, 1, 24, 24)
    mask[:, :, 4:18, 3:20] = 0  # a hole much larger than the kernel
    mask[1, :, :, :] = 0  # a fully empty image
    y, new_mask = layer(x, mask.half())
    assert y.dtype == torch.float16
    assert torch.isfinite(y).all()
    holes = new_mask.expand_as(y) == 0
    assert holes.any()
    assert (y[holes] == 0).all()
    assert (y[1] == 0).all()


def test_no_gradient_into_the_mask() -> None:
    layer = PartialConv2d(C_IN, C_OUT, 3, padding=1)
    x = torch.randn(1, C_IN, 8, 8, requires_grad=True)
    mask = (torch.rand(1, 1, 8, 8) > 0.3).float().requires_grad_(True)
    y, new_mask = layer(x, mask)
    assert not new_mask.requires_grad
    y.sum().backward()
    assert mask.grad is None
    assert x.grad is not None and layer.weight.grad is not None


def test_fast_path_never_builds_a_full_ones_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = PartialConv2d(C_IN, C_OUT, 5, stride=2, padding=2)
    for name, buf in layer.named_buffers():
        assert buf.shape[:2] == (1, 1), f"buffer {name} has shape {tuple(buf.shape)}"
    shapes: list[tuple[int, ...]] = []
    real_conv2d = F.conv2d

    def recording_conv2d(
        inp: torch.Tensor, weight: torch.Tensor, *args: object, **kwargs: object
    ) -> torch.Tensor:
        shapes.append(tuple(weight.shape))
        return real_conv2d(inp, weight, *args, **kwargs)  # type: ignore[arg-type,call-overload]

    monkeypatch.setattr(F, "conv2d", recording_conv2d)
    x = torch.randn(1, C_IN, 12, 12)
    layer(x, (torch.rand(1, C_IN, 12, 12) > 0.5).float())  # per-channel mask
    layer(x, (torch.rand(1, 1, 12, 12) > 0.5).float())
    assert sorted(set(shapes)) == [(1, 1, 5, 5), (C_OUT, C_IN, 5, 5)]
    assert shapes.count((C_OUT, C_IN, 5, 5)) == 2  # only the learned weights, once per call


def test_mask_sum_stays_fp32_under_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    """67 channels x 9 taps: window sums such as 335 are not representable in bf16 (spacing 2)."""
    layer = PartialConv2d(67, 8, 3, padding=1)
    dtypes: dict[str, list[torch.dtype]] = {"box": [], "features": []}
    real_conv2d = F.conv2d

    def recording_conv2d(inp: torch.Tensor, weight: torch.Tensor, *args: object) -> torch.Tensor:
        out = real_conv2d(inp, weight, *args)  # type: ignore[arg-type,call-overload]
        dtypes["box" if weight.shape[:2] == (1, 1) else "features"].append(out.dtype)
        return out

    monkeypatch.setattr(F, "conv2d", recording_conv2d)
    x = torch.randn(1, 67, 8, 8)
    mask = (torch.rand(1, 1, 8, 8) > 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, _ = layer(x, mask)
    assert dtypes == {"box": [torch.float32], "features": [torch.bfloat16]}
    y_ref, _ = reference_partial_conv(x, mask, layer.weight, layer.bias, 1, 1, 1)
    torch.testing.assert_close(y.float(), y_ref, rtol=0.05, atol=0.1)


def test_bad_mask_shape_is_a_clear_error() -> None:
    layer = PartialConv2d(C_IN, C_OUT, 3)
    with pytest.raises(ValueError, match="mask must be"):
        layer(torch.randn(1, C_IN, 8, 8), torch.ones(1, 2, 8, 8))
