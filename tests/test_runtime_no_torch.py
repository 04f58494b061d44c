"""``pconv.runtime`` runs a full inpaint with numpy + onnxruntime only: torch and onnx cannot import."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "onnx", "torchvision", "onnxscript"):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    import numpy as np
    from PIL import Image

    from pconv.runtime import Inpainter
    from pconv.runtime.cli import register  # the CLI module must import without them too

    inpaint = Inpainter(sys.argv[1])
    image = np.random.default_rng(0).integers(0, 256, (37, 61, 3), dtype=np.uint8)
    mask = np.zeros((37, 61), np.uint8)
    mask[5:20, 10:40] = 255
    for strategy in ("full", "crop"):
        out = inpaint(image, mask, strategy=strategy)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert (out[mask == 0] == image[mask == 0]).all()
    pil = inpaint(Image.fromarray(image), mask)
    assert pil.size == (61, 37)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx"))
    assert not loaded, loaded
    print("OK")
    """
)


def test_runtime_imports_and_inpaints_without_torch_or_onnx(tiny_onnx_factory) -> None:
    model = tiny_onnx_factory()
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("OK")


NO_ORT_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "onnxruntime":
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    from pconv.runtime import BackendUnavailableError, Inpainter
    from pconv.apps.doctor import run_checks

    try:
        Inpainter(sys.argv[1])
    except BackendUnavailableError as exc:
        assert "pip install onnxruntime" in str(exc), exc
    else:
        raise AssertionError("no error without onnxruntime")
    (check,) = [c for c in run_checks() if c.name == "onnxruntime"]
    assert not check.ok and check.required and "pip install onnxruntime" in check.fix
    print("OK")
    """
)


def test_missing_onnxruntime_names_the_install_command(tiny_onnx_factory) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", NO_ORT_SCRIPT, str(tiny_onnx_factory())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("OK")
