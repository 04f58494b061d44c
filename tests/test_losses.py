"""Each loss term checked by hand or against an obviously-correct loop; VGG-16 loading."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pconv.errors import PconvError
from pconv.training import losses as losses_module
from pconv.training.losses import InpaintingLoss, LossWeights, build_loss, gram_matrix
from pconv.training.vgg import CONV_INDICES, VGG16Features


def two_level_features(x: torch.Tensor) -> list[torch.Tensor]:
    """A stand-in feature extractor (the terms only need 'a list of feature maps')."""
    return [x * 2.0 + 1.0, F.avg_pool2d(x, 2)]


def test_valid_and_hole_by_hand() -> None:
    gt = torch.zeros(1, 1, 2, 2)
    out = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])  # one hole (top right)
    terms = InpaintingLoss(None)(gt, mask, out)
    # Paper normalisation: divide by N = C*H*W = 4 (all elements, not only the hole pixels).
    assert terms["valid"].item() == pytest.approx((1 + 3 + 4) / 4)
    assert terms["hole"].item() == pytest.approx(2 / 4)


def test_tv_by_hand_only_pairs_inside_the_dilated_hole() -> None:
    gt = torch.tensor([[[[0.0, 1.0, 7.0, 5.0, 2.0]]]])
    out = torch.tensor([[[[9.0, 9.0, 3.0, 9.0, 9.0]]]])
    mask = torch.tensor([[[[1.0, 1.0, 0.0, 1.0, 1.0]]]])
    # comp = [0, 1, 3, 5, 2]; hole at index 2, P = {1, 2, 3}; pairs in P: (1,2): 2, (2,3): 2.
    # The pairs (0,1) and (3,4) have a pixel outside P and do not count. N = C*H*W = 5.
    terms = InpaintingLoss(None)(gt, mask, out)
    assert terms["tv"].item() == pytest.approx((2 + 2) / 5)


def tv_loop(comp: torch.Tensor, mask: torch.Tensor) -> float:
    """Paper L_tv with explicit loops over pixels."""
    n, c, h, w = comp.shape
    hole = [[[bool((mask[b, :, i, j] < 1).any()) for j in range(w)] for i in range(h)] for b in range(n)]

    def in_p(b: int, i: int, j: int) -> bool:
        return any(
            hole[b][ii][jj]
            for ii in range(max(0, i - 1), min(h, i + 2))
            for jj in range(max(0, j - 1), min(w, j + 2))
        )

    total = 0.0
    for b in range(n):
        for i in range(h):
            for j in range(w):
                for ch in range(c):
                    if j + 1 < w and in_p(b, i, j) and in_p(b, i, j + 1):
                        total += abs(float(comp[b, ch, i, j + 1] - comp[b, ch, i, j]))
                    if i + 1 < h and in_p(b, i, j) and in_p(b, i + 1, j):
                        total += abs(float(comp[b, ch, i + 1, j] - comp[b, ch, i, j]))
    return total / (c * h * w) / n


def test_tv_matches_loop_with_per_channel_masks() -> None:
    gen = torch.Generator().manual_seed(0)
    gt, out = torch.rand(2, 3, 7, 6, generator=gen), torch.rand(2, 3, 7, 6, generator=gen)
    mask = (torch.rand(2, 3, 7, 6, generator=gen) > 0.8).float()
    terms = InpaintingLoss(None)(gt, mask, out)
    comp = mask * gt + (1 - mask) * out
    assert terms["tv"].item() == pytest.approx(tv_loop(comp, mask), rel=1e-5)


def test_gram_by_hand() -> None:
    feats = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # C=2, H=1, W=2
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / (2 * 1 * 2)
    torch.testing.assert_close(gram_matrix(feats), expected)


def test_every_term_and_the_total_by_hand() -> None:
    """Two pixels, features = the red channel: every number below is worked out on paper."""
    gt = torch.tensor([[[[0.0, 1.0]], [[0.5, 0.5]], [[0.5, 0.5]]]])
    out = torch.tensor([[[[1.0, 2.0]], [[0.5, 0.5]], [[0.5, 0.5]]]])
    mask = torch.tensor([[[[1.0, 0.0]]]])  # pixel 0 valid, pixel 1 hole; comp red = [0, 2]
    terms = InpaintingLoss(lambda x: [x[:, :1]])(gt, mask, out)
    assert terms["valid"].item() == pytest.approx(1 / 6)  # |1 - 0| over C*H*W = 6
    assert terms["hole"].item() == pytest.approx(1 / 6)  # |2 - 1|
    assert terms["tv"].item() == pytest.approx(2 / 6)  # P = both pixels; |2 - 0|
    assert terms["perceptual"].item() == pytest.approx(1.0 + 0.5)  # mean|out-gt| + mean|comp-gt|
    # Gram / (C*H*W): out (1+4)/2 = 2.5, comp (0+4)/2 = 2, gt (0+1)/2 = 0.5; L1 over C^2 = 1 entry.
    assert terms["style_out"].item() == pytest.approx(2.0)
    assert terms["style_comp"].item() == pytest.approx(1.5)
    expected = 1 / 6 + 6 / 6 + 0.05 * 1.5 + 120 * (2.0 + 1.5) + 0.1 * 2 / 6
    assert terms["total"].item() == pytest.approx(expected)


def gram_loop(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    g = torch.zeros(n, c, c, dtype=torch.float64)
    for b in range(n):
        for i in range(c):
            for j in range(c):
                g[b, i, j] = sum(float(f[b, i, y, x] * f[b, j, y, x]) for y in range(h) for x in range(w))
    return g / (c * h * w)


def test_perceptual_and_style_match_loops() -> None:
    gen = torch.Generator().manual_seed(1)
    gt, out = torch.rand(2, 3, 4, 4, generator=gen), torch.rand(2, 3, 4, 4, generator=gen)
    mask = (torch.rand(2, 1, 4, 4, generator=gen) > 0.5).float()
    terms = InpaintingLoss(two_level_features)(gt, mask, out)
    comp = mask * gt + (1 - mask) * out
    f_out, f_comp, f_gt = (two_level_features(x.double()) for x in (out, comp, gt))
    perceptual = sum(
        float((a - g).abs().mean() + (b - g).abs().mean()) for a, b, g in zip(f_out, f_comp, f_gt)
    )
    style_out = sum(float((gram_loop(a) - gram_loop(g)).abs().mean()) for a, g in zip(f_out, f_gt))
    style_comp = sum(float((gram_loop(b) - gram_loop(g)).abs().mean()) for b, g in zip(f_comp, f_gt))
    assert terms["perceptual"].item() == pytest.approx(perceptual, rel=1e-5)
    assert terms["style_out"].item() == pytest.approx(style_out, rel=1e-5)
    assert terms["style_comp"].item() == pytest.approx(style_comp, rel=1e-5)
    expected_total = (
        terms["valid"] + 6 * terms["hole"] + 0.05 * terms["perceptual"]
        + 120 * (terms["style_out"] + terms["style_comp"]) + 0.1 * terms["tv"]
    )  # fmt: skip
    assert terms["total"].item() == pytest.approx(expected_total.item(), rel=1e-6)
    assert LossWeights() == LossWeights(1.0, 6.0, 0.05, 120.0, 120.0, 0.1)


def test_without_vgg_the_terms_are_off_and_warned_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(losses_module, "_warned_no_vgg", False)
    with pytest.warns(UserWarning, match="WITHOUT the perceptual and style losses"):
        loss = build_loss(None)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_loss(None)  # second time: silent
    gt, out = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    mask = (torch.rand(1, 1, 8, 8) > 0.5).float()
    terms = loss(gt, mask, out)
    assert not loss.uses_vgg
    assert terms["perceptual"].item() == terms["style_out"].item() == 0.0
    expected = terms["valid"] + 6 * terms["hole"] + 0.1 * terms["tv"]
    assert terms["total"].item() == pytest.approx(expected.item())
    # --tv-weight replaces the paper's 0.1 and nothing else.
    heavy = build_loss(None, tv_weight=3.0)(gt, mask, out)
    expected = terms["valid"] + 6 * terms["hole"] + 3.0 * terms["tv"]
    assert heavy["total"].item() == pytest.approx(expected.item()) and terms["tv"].item() > 0


def fake_vgg16_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-format *full* vgg16 state dict (classifier shrunk to keep the file small)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256)]
    state = {}
    for index, (c_out, c_in) in zip(CONV_INDICES, shapes):
        state[f"features.{index}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen) * 0.05
        state[f"features.{index}.bias"] = torch.randn(c_out, generator=gen) * 0.05
    state["features.17.weight"] = torch.randn(4, 4, 3, 3, generator=gen)  # deeper layers: ignored
    state["classifier.0.weight"] = torch.randn(8, 8, generator=gen)
    return state


def vgg_by_hand(state: dict[str, torch.Tensor], image: torch.Tensor) -> list[torch.Tensor]:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = (image - mean) / std
    pools = []
    for block in ((0, 2), (5, 7), (10, 12, 14)):
        for i in block:
            h = F.relu(F.conv2d(h, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1))
        h = F.max_pool2d(h, 2)
        pools.append(h)
    return pools


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_vgg_loads_torchvision_state_dicts(tmp_path, suffix: str) -> None:
    state = fake_vgg16_state()
    path = tmp_path / f"vgg16{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    vgg = VGG16Features(path)
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    image = torch.rand(1, 3, 16, 16)
    pools = vgg(image)
    assert [tuple(p.shape) for p in pools] == [(1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2)]
    for ours, ref in zip(pools, vgg_by_hand(state, image)):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_vgg_rejects_bad_files(tmp_path) -> None:
    state = fake_vgg16_state()
    del state["features.12.bias"]
    partial = tmp_path / "partial.pth"
    torch.save(state, partial)
    with pytest.raises(PconvError, match=r"missing 'features.12.bias'"):
        VGG16Features(partial)
    pickled = tmp_path / "object.pth"
    torch.save({"features.0.weight": LossWeights()}, pickled)  # not loadable with weights_only
    with pytest.raises(PconvError, match="cannot read a state dict"):
        VGG16Features(pickled)
    with pytest.raises(PconvError, match="file not found"):
        VGG16Features(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="random_init=True"):
        VGG16Features(None)


def test_random_init_vgg_is_an_explicit_opt_in() -> None:
    torch.manual_seed(0)
    loss = build_loss(None, random_init_vgg=True)
    assert loss.uses_vgg
    gt = torch.rand(1, 3, 16, 16, requires_grad=False)
    out = torch.rand(1, 3, 16, 16, requires_grad=True)
    mask = (torch.rand(1, 1, 16, 16) > 0.5).float()
    terms = loss(gt, mask, out)
    assert terms["perceptual"].item() > 0 and terms["style_out"].item() > 0
    terms["total"].backward()
    assert out.grad is not None and torch.isfinite(out.grad).all()
