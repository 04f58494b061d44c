"""``pconv doctor``: what is installed and usable, and the exact fix for each missing piece.

Each check imports its library only inside a ``try`` so a missing or broken optional dependency is
reported, never raised. Only numpy + onnxruntime are *required* (the CPU runtime); everything else
is optional and says which pconv feature it enables.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

VGG_ENV = "PCONV_VGG_WEIGHTS"


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""  # the command (or step) that fixes it; empty when ok
    required: bool = False  # required for the CPU runtime
    asked: bool = False  # the user asked for it (--model): failing it fails the run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check(
        "python",
        ok,
        f"{platform.python_version()} ({sys.executable})",
        "" if ok else "use Python >= 3.10",
        True,
    )


def check_numpy() -> Check:
    try:
        import numpy

        return Check("numpy", True, numpy.__version__, required=True)
    except ImportError as exc:
        return Check("numpy", False, f"not importable ({exc})", "pip install numpy", True)


def check_torch() -> list[Check]:
    try:
        import torch
    except ImportError as exc:
        return [
            Check(
                "torch",
                False,
                f"not installed ({exc}); needed to train and export, not to run models",
                "pip install 'pconv[train]'",
            )
        ]
    checks = [Check("torch", True, torch.__version__)]
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        checks.append(
            Check(
                "torch CUDA", True, f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s): {name}"
            )
        )
    else:
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
        checks.append(
            Check(
                "torch CUDA",
                False,
                f"no CUDA GPU usable by torch ({build}); training runs on CPU",
                "on a GPU machine: pip install torch --index-url https://download.pytorch.org/whl/cu128",
            )
        )
    return checks


def check_onnx() -> Check:
    version = _version("onnx")
    if version is None:
        return Check("onnx", False, "not installed; needed by `pconv export`", "pip install 'pconv[export]'")
    return Check("onnx", True, version)


def check_onnxruntime() -> list[Check]:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return [
            Check(
                "onnxruntime",
                False,
                f"not installed ({exc}); needed to run .onnx models",
                "pip install onnxruntime   (GPU: pip install 'pconv[gpu]')",
                True,
            )
        ]
    providers = list(ort.get_available_providers())
    gpu = [p for p in providers if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")]
    checks = [
        Check("onnxruntime", True, f"{ort.__version__}, providers: {', '.join(providers)}", required=True)
    ]
    if gpu:
        checks.append(Check("onnxruntime GPU", True, ", ".join(gpu)))
    else:
        checks.append(
            Check(
                "onnxruntime GPU",
                False,
                "CPU only (no CUDA / TensorRT execution provider)",
                "on a GPU machine: pip uninstall -y onnxruntime && pip install 'pconv[gpu]'",
            )
        )
    return checks


def check_tensorrt() -> Check:
    from pconv.trt import tensorrt_available

    if not tensorrt_available():
        stubs = " (only tensorrt-stubs, type hints, is installed)" if _version("tensorrt-stubs") else ""
        return Check(
            "tensorrt",
            False,
            f"not installed{stubs}; needed for .engine files and `pconv build`",
            "on a GPU machine: pip install 'pconv[trt]'",
        )
    try:
        import tensorrt as trt

        return Check("tensorrt", True, str(trt.__version__))
    except Exception as exc:  # a broken install (missing libnvinfer) raises various errors
        return Check(
            "tensorrt",
            False,
            f"installed but not importable: {exc}",
            "pip install --force-reinstall 'pconv[trt]'",
        )


def check_cuda_python() -> Check:
    version = _version("cuda-python") or _version("cuda-bindings")
    if version is None:
        return Check(
            "cuda-python",
            False,
            "not installed; the TensorRT backend uses it for device memory and streams",
            "pip install cuda-python",
        )
    try:
        importlib.import_module("cuda.bindings.runtime")
    except Exception as exc:
        return Check(
            "cuda-python",
            False,
            f"{version} installed but cuda.bindings fails: {exc}",
            "pip install -U cuda-python",
        )
    return Check("cuda-python", True, version)


def check_gpu() -> Check:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Check(
            "GPU / driver",
            False,
            "no NVIDIA driver found (nvidia-smi is not on PATH); CPU inference only",
            "install the NVIDIA driver (https://www.nvidia.com/drivers) on a machine with an NVIDIA GPU",
        )
    try:
        proc = subprocess.run(
            [smi, "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return Check(
            "GPU / driver", False, f"nvidia-smi failed: {exc}", "check the NVIDIA driver installation"
        )
    if proc.returncode != 0 or not proc.stdout.strip():
        detail = (proc.stderr or proc.stdout).strip().splitlines()[:1]
        return Check(
            "GPU / driver",
            False,
            f"nvidia-smi: {detail[0] if detail else 'no GPU'}",
            "check the NVIDIA driver installation",
        )
    return Check("GPU / driver", True, "; ".join(line.strip() for line in proc.stdout.strip().splitlines()))


def check_nvcc() -> Check:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return Check(
            "nvcc",
            False,
            "CUDA compiler not found; needed only to build the TensorRT plugin from source",
            "install the CUDA toolkit (https://developer.nvidia.com/cuda-downloads) and put nvcc on PATH",
        )
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=20).stdout
        release = next((ln.strip() for ln in out.splitlines() if "release" in ln), out.strip()[:60])
    except (OSError, subprocess.SubprocessError) as exc:
        release = f"present but failed: {exc}"
    return Check("nvcc", True, f"{nvcc}: {release}")


def check_plugin(plugin_library: str | None) -> Check:
    path: Path | None = Path(plugin_library) if plugin_library else None
    source = "--plugin-library"
    if path is None:
        from pconv.trt.registry import default_library_path

        try:
            path = default_library_path()
        except (OSError, ValueError) as exc:
            return Check(
                "TensorRT plugin", False, f"default_library_path() failed: {exc}", "pass --plugin-library"
            )
        source = "default location"
    if path is not None and path.is_file():
        return Check("TensorRT plugin", True, f"{path} ({source})")
    where = f" at {path}" if path is not None else ""
    return Check(
        "TensorRT plugin",
        False,
        f"plugin library not found{where}; needed only for engines built from the plugin-form ONNX",
        "run `pconv build-plugin` on a machine with nvcc and TensorRT, or pass --plugin-library PATH "
        "(or set $PCONV_PLUGIN_LIBRARY)",
    )


def check_vgg(vgg_weights: str | None) -> Check:
    value = vgg_weights or os.environ.get(VGG_ENV)
    source = "--vgg-weights" if vgg_weights else f"${VGG_ENV}"
    if not value:
        return Check(
            "VGG-16 weights",
            False,
            f"not given (--vgg-weights or ${VGG_ENV}); needed only for the paper's perceptual/style losses",
            'where torchvision has them: python -c "import torch, torchvision; torch.save(torchvision.'
            "models.vgg16(weights='IMAGENET1K_V1').state_dict(), 'vgg16.pth')\", then train with "
            f"`pconv train --vgg-weights vgg16.pth` (export {VGG_ENV}=vgg16.pth to have doctor check it; "
            "pconv never downloads them)",
        )
    path = Path(value)
    if not path.is_file():
        return Check(
            "VGG-16 weights",
            False,
            f"{source}={value}: file not found",
            f"point {source} at an existing file",
        )
    return Check("VGG-16 weights", True, f"{path} ({path.stat().st_size / 2**20:.1f} MiB, {source})")


def check_model(model: str) -> Check:
    from pconv.errors import PconvError
    from pconv.runtime import Inpainter

    try:
        with Inpainter(model) as inp:
            info = inp.info
            where = inp.backend.describe()
            return Check(
                "model",
                True,
                f"{model}: opens with {where}, size multiple {info.size_multiple}, io {info.io_dtype}",
            )
    except PconvError as exc:
        return Check("model", False, f"{model}: {exc}", "re-export or rebuild the model", asked=True)


def run_checks(
    vgg_weights: str | None = None, plugin_library: str | None = None, model: str | None = None
) -> list[Check]:
    from pconv._version import __version__

    checks = [Check("pconv", True, __version__), check_python(), check_numpy()]
    checks += check_torch()
    checks.append(check_onnx())
    checks += check_onnxruntime()
    checks += [check_tensorrt(), check_cuda_python(), check_gpu(), check_nvcc(), check_plugin(plugin_library)]
    checks.append(check_vgg(vgg_weights))
    if model:
        checks.append(check_model(model))
    return checks


def format_checks(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required or c.asked else "--  ")
        lines.append(f"[{mark}] {c.name:<{width}}  {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"       {'':<{width}}  fix: {c.fix}")
    usable = all(c.ok for c in checks if c.required)
    lines.append("")
    lines.append(
        "CPU runtime: usable (pconv inpaint / bench with .onnx models)"
        if usable
        else "CPU runtime: NOT usable; fix the FAIL lines"
    )
    return "\n".join(lines)
