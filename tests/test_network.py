"""The one U-Net traversal (``pconv.network``): its wiring, and the backends that run it agreeing.

The wiring is checked with a recording backend (strings, no torch) against the paper's U-Net
written out here, not against ``spec.skip``: decoder level i reads the ×2-upsampled previous
output and encoder level i-1 (level 0: the normalised input). Then the three backends built on the
traversal (the PyTorch model, the explicit and plugin ONNX graphs under ONNX Runtime, the fused
kernel harness with its CPU paths) must give the same output on a tiny model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
import test_plugin_kernels as kernel_checks
from conftest import make_tiny_model, requires_nvcc

from pconv.config import LayerSpec, ModelConfig
from pconv.network import unet_forward


class RecordingOps:
    """:class:`pconv.network.NetworkOps` over strings: every value names how it was computed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []

    def normalize(self, image: str, mask: str) -> tuple[str, str]:
        return f"norm({image})", f"maskin({mask})"

    def upsample2x(self, x: str) -> str:
        return f"up2({x})"

    def layer(self, spec: LayerSpec, features: Sequence[str], masks: Sequence[str]) -> tuple[str, str]:
        self.calls.append((spec.name, tuple(features), tuple(masks)))
        return f"{spec.name}.x", f"{spec.name}.m"

    def denormalize(self, y: str) -> str:
        return f"denorm({y})"


@pytest.mark.parametrize("depth", [2, 3, 8])
def test_traversal_visits_the_layers_in_order_with_the_paper_skips(depth: int) -> None:
    specs = ModelConfig(depth=depth, width=0.25).layer_specs()
    ops = RecordingOps()
    out = unet_forward(specs, "image", "mask", ops)

    assert [name for name, _, _ in ops.calls] == [s.name for s in specs]
    encoder_out = {0: ("norm(image)", "maskin(mask)")} | {
        i: (f"enc{i}.x", f"enc{i}.m") for i in range(1, depth)
    }
    previous = encoder_out[0]
    for i in range(1, depth + 1):  # encoder: one part, the previous layer's output
        assert ops.calls[i - 1] == (f"enc{i}", (previous[0],), (previous[1],))
        previous = (f"enc{i}.x", f"enc{i}.m")
    for step, i in enumerate(range(depth, 0, -1)):  # decoder: upsampled previous output, then the skip
        skip_x, skip_m = encoder_out[i - 1]
        want = (f"dec{i}", (f"up2({previous[0]})", skip_x), (f"up2({previous[1]})", skip_m))
        assert ops.calls[depth + step] == want
        previous = (f"dec{i}.x", f"dec{i}.m")
    assert out == "denorm(dec1.x)"


def test_a_decoder_skip_that_is_no_earlier_encoder_output_is_refused() -> None:
    specs = ModelConfig(depth=3).layer_specs()
    for bad in ("dec2", "enc4", None):  # a decoder output; no such layer; none
        broken = [replace(s, skip=bad) if s.name == "dec3" else s for s in specs]
        with pytest.raises(ValueError, match="dec3: skip"):
            unet_forward(broken, "image", "mask", RecordingOps())


# -- the backends agree -------------------------------------------------------------------------
#: The kernel's CPU emulation, compiled once per module (a fixture of the kernel tests).
host_check = kernel_checks.host_check


def _inputs(seed: int = 0):  # type: ignore[no-untyped-def]
    import torch

    g = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, 24, 16, generator=g)
    mask = (torch.rand(2, 1, 24, 16, generator=g) > 0.3).float()
    mask[0, :, 2:14, 3:12] = 0.0  # a large hole: all-hole windows deep in the encoder
    return image, mask


def _tolerance(reference: np.ndarray) -> float:
    """FP32 bound for differently ordered sums: 1e-5, or 2e-6 of the output scale (|x| ~ 9 here)."""
    return max(1e-5, 2e-6 * float(np.abs(reference).max()))


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    import torch

    model = make_tiny_model()
    image, mask = _inputs()
    with torch.no_grad():
        expected = model(image, mask).numpy()
    assert np.abs(expected).max() > 1.0  # a non-trivial output to compare
    return model, image, mask, expected


@pytest.mark.parametrize(
    ("form", "decoder"), [("explicit", "subpixel"), ("explicit", "resize"), ("plugin", "subpixel")]
)
def test_onnx_graphs_match_the_pytorch_model(tiny, form: str, decoder: str) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    from pconv.export.onnx_export import build_model

    model, image, mask, expected = tiny
    onnx_model = build_model(model, form=form, decoder=decoder)  # type: ignore[arg-type]
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(["output"], {"image": image.numpy(), "mask": mask.numpy()})
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= _tolerance(expected)


def test_harness_unfused_path_matches_the_pytorch_model(tiny) -> None:  # type: ignore[no-untyped-def]
    import torch

    from pconv.plugins.torch_harness import fused_unet_forward, unfused_partial_conv

    model, image, mask, expected = tiny
    with torch.no_grad():
        got = fused_unet_forward(model, image, mask, partial_conv=unfused_partial_conv).numpy()
    assert np.abs(got - expected).max() <= _tolerance(expected)


@requires_nvcc
def test_harness_emulated_kernel_matches_onnx_and_pytorch(tiny, host_check, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The kernel's CPU emulation per layer, wired by the harness, against the explicit ONNX graph."""
    import onnxruntime as ort
    import torch

    from pconv.export.onnx_export import build_model
    from pconv.plugins.torch_harness import fused_unet_forward

    model, image, mask, expected = tiny
    kernel = kernel_checks.EmulatedKernel(host_check, tmp_path, "fp32")
    with torch.no_grad():
        got = fused_unet_forward(model, image, mask, partial_conv=kernel).numpy()
    assert len(kernel.used) == len(model.specs)  # one kernel call per layer
    session = ort.InferenceSession(build_model(model).SerializeToString(), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(["output"], {"image": image.numpy(), "mask": mask.numpy()})
    assert np.abs(got - expected).max() <= _tolerance(expected)
    assert np.abs(got - onnx_out).max() <= _tolerance(expected)
