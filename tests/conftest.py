"""Shared fixtures: tiny seeded models and checkpoints, and honest GPU/TensorRT skips."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TINY_DEPTH = 3
TINY_WIDTH = 0.125


def has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def has_tensorrt() -> bool:
    """Real TensorRT, not the type stubs (which make ``import tensorrt`` an empty namespace package)."""
    from pconv.trt import tensorrt_available

    return tensorrt_available()


requires_gpu = pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU (none on this machine)")
requires_tensorrt = pytest.mark.skipif(
    not (has_tensorrt() and has_cuda()),
    reason="needs TensorRT and a CUDA GPU: pip install 'pconv[trt]' on a GPU machine",
)
requires_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (CUDA toolkit)")


def make_tiny_model(depth: int = TINY_DEPTH, width: float = TINY_WIDTH, seed: int = 0):
    """A tiny PConvUNet in eval mode with non-trivial BatchNorm statistics (so folding is tested)."""
    import torch

    from pconv.training.layers import PartialConv2d
    from pconv.training.unet import PConvUNet

    torch.manual_seed(seed)
    model = PConvUNet(depth=depth, width=width)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
            if isinstance(module, PartialConv2d) and isinstance(module.bias, torch.Tensor):
                module.bias.uniform_(-0.1, 0.1)
    return model.eval()


@pytest.fixture
def tiny_model():
    return make_tiny_model()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from pconv.training.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(make_tiny_model(), path)
    return path


@pytest.fixture(scope="session")
def tiny_onnx_factory(tmp_path_factory):
    """``make(form="explicit", precision="fp32", **kw) -> Path``: the tiny model exported once per options."""
    cache: dict[tuple, Path] = {}

    def make(form: str = "explicit", precision: str = "fp32", **kwargs) -> Path:
        from pconv.export.onnx_export import export_onnx

        key = (form, precision, tuple(sorted(kwargs.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp("onnx") / f"tiny_{form}_{precision}.onnx"
            cache[key] = export_onnx(make_tiny_model(), out, form=form, precision=precision, **kwargs)
        return cache[key]

    return make
