"""Reading an engine's sidecar and deciding whether this machine can run the engine.

The sidecar's format (:class:`pconv.trt.sidecar.EngineSidecar`) is written by ``pconv build``; this
is the runtime's policy on it, in one place: the sidecar must belong to the engine file next to it
(:func:`read_sidecar`), the engine must suit this GPU and TensorRT (:func:`check_compatibility`,
checked *before* deserialising so a foreign engine gives one clear error), its metadata gives the
:class:`ModelInfo` (:func:`model_info_from_sidecar`) and its profile bounds the batches
(:func:`check_batch_shape`). Needs numpy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pconv.errors import EngineIncompatibleError, InputError, ModelLoadError
from pconv.fileio import sha256_file
from pconv.runtime.backend import ModelInfo, model_info_from_metadata
from pconv.trt import parse_version
from pconv.trt.sidecar import EngineSidecar, sidecar_path


def read_sidecar(engine_path: str | Path, *, verify_engine: bool = True) -> EngineSidecar:
    """The sidecar of ``engine_path``, checked to belong to that engine file."""
    engine_path = Path(engine_path)
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise ModelLoadError(
            f"{engine_path.name} has no sidecar {path.name}: the runtime reads the model's metadata "
            "from it. Rebuild the engine with `pconv build model.onnx -o "
            f"{engine_path.name}` (it writes both files), or copy the .json along with the engine"
        )
    try:
        sidecar = EngineSidecar.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"{path} is not a valid pconv engine sidecar ({exc}); rebuild the engine"
        ) from exc
    if verify_engine and engine_path.is_file() and sidecar.engine_bytes:
        size = engine_path.stat().st_size
        if size != sidecar.engine_bytes or (
            sidecar.engine_sha256 and sha256_file(engine_path) != sidecar.engine_sha256
        ):
            raise ModelLoadError(
                f"{path.name} describes a different engine than {engine_path.name} "
                f"({sidecar.engine_bytes} bytes recorded, {size} found): the engine was replaced "
                "or truncated. Rebuild it with `pconv build`"
            )
    return sidecar


def check_compatibility(
    sidecar: EngineSidecar,
    tensorrt_version: str,
    compute_capability: tuple[int, int],
    gpu_name: str = "",
    *,
    source: str = "the engine",
) -> None:
    """Raise :class:`EngineIncompatibleError` if this GPU/TensorRT cannot run the engine.

    TensorRT engines are tied to the GPU's compute capability and to the exact TensorRT version;
    a version-compatible engine runs on the same or a newer TensorRT of the same major version.
    """
    rebuild = "rebuild it on this machine with `pconv build model.onnx -o ...`"
    built, here = parse_version(sidecar.tensorrt_version), parse_version(tensorrt_version)
    if sidecar.version_compatible:
        if not built or not here or built[0] != here[0] or here < built:
            raise EngineIncompatibleError(
                f"{source} was built with TensorRT {sidecar.tensorrt_version} (version-compatible), "
                f"which TensorRT {tensorrt_version} cannot run (it needs the same major version, "
                f"{built[:1] or '?'}, and not older): {rebuild}"
            )
    elif built[:3] != here[:3]:
        raise EngineIncompatibleError(
            f"{source} was built with TensorRT {sidecar.tensorrt_version} but this is TensorRT "
            f"{tensorrt_version}; engines only run on the TensorRT version that built them: {rebuild} "
            "(or build with --version-compatible)"
        )
    if tuple(sidecar.compute_capability) != tuple(compute_capability):
        built_gpu = f"{sidecar.gpu_name} (sm_{sidecar.compute_capability[0]}{sidecar.compute_capability[1]})"
        this_gpu = f"{gpu_name or 'this GPU'} (sm_{compute_capability[0]}{compute_capability[1]})"
        raise EngineIncompatibleError(
            f"{source} was built for {built_gpu} and cannot run on {this_gpu}: {rebuild}"
        )


def model_info_from_sidecar(sidecar: EngineSidecar, source: str | Path) -> ModelInfo:
    """The backend-independent :class:`ModelInfo` of an engine, from its sidecar alone."""
    fixed = sidecar.profile_min if sidecar.profile_min == sidecar.profile_max else None
    return model_info_from_metadata(
        sidecar.onnx_metadata,
        source,
        np.dtype(sidecar.io_dtypes.get("image", "float32")),
        origin="engine",
        min_shape=sidecar.profile_min,
        max_shape=sidecar.profile_max,
        fixed_shape=fixed,
    )


def check_batch_shape(info: ModelInfo, n: int, h: int, w: int, *, source: str = "the engine") -> None:
    """Raise :class:`InputError` if an ``(N, H, W)`` batch is outside the engine's profile."""
    m = info.size_multiple
    if h % m or w % m:
        raise InputError(
            f"{h}x{w} is not a multiple of {m}: pad the image (pconv.runtime.Inpainter does this)"
        )
    lo, hi = info.min_shape, info.max_shape
    if lo is None or hi is None:
        return
    if not all(a <= b <= c for a, b, c in zip(lo, (n, h, w), hi)):
        raise InputError(
            f"batch shape {n}x{h}x{w} (NxHxW) is outside the profile of {source}, "
            f"min {'x'.join(map(str, lo))} .. max {'x'.join(map(str, hi))}: use smaller images "
            "(the crop strategy tiles large ones: --strategy crop in pconv inpaint, strategy='crop' in "
            "Python) or rebuild the engine with a larger --max"
        )
