"""What ``pconv build`` built: the engine's sidecar plus what only the build knows.

The sidecar (:class:`~pconv.trt.sidecar.EngineSidecar`, written next to the engine) already says
which TensorRT, GPU, precision, profile, I/O types and plugin layers the engine has; the report
holds it and adds the build-only facts (paths, layer count, seconds, timing cache, warnings), so
no fact is stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pconv import plugin_fields
from pconv.engine.profile import Profile
from pconv.trt.sidecar import EngineSidecar

#: Where the sidecar keeps the plugin library's build-time path (the runtime's last resort).
PLUGIN_PATH_KEY = "plugin_library_path"


@dataclass
class BuildReport:
    """What ``pconv build`` built: returned by :func:`~pconv.engine.build.build_engine`, printed by the CLI.

    Composed, not copied: ``sidecar`` holds the engine facts, the other fields only the build knows.
    """

    sidecar: EngineSidecar
    engine_path: Path
    sidecar_path: Path
    onnx_path: Path
    num_layers: int
    build_seconds: float
    timing_cache: Path | None = None
    timing_cache_note: str = ""
    warnings: list[str] = field(default_factory=list)

    # -- read through to the sidecar ----------------------------------------------------------
    @property
    def tensorrt_version(self) -> str:
        return self.sidecar.tensorrt_version

    @property
    def gpu_name(self) -> str:
        return self.sidecar.gpu_name

    @property
    def compute_capability(self) -> tuple[int, int]:
        return self.sidecar.compute_capability

    @property
    def precision(self) -> str:
        return self.sidecar.precision

    @property
    def strongly_typed(self) -> bool:
        return self.sidecar.strongly_typed

    @property
    def version_compatible(self) -> bool:
        return self.sidecar.version_compatible

    @property
    def profile(self) -> Profile:
        s = self.sidecar
        return Profile(min=s.profile_min, opt=s.profile_opt, max=s.profile_max)

    @property
    def io_dtypes(self) -> dict[str, str]:
        return self.sidecar.io_dtypes

    @property
    def plugin_layers(self) -> tuple[str, ...]:
        return self.sidecar.plugin_layers

    @property
    def plugin_library(self) -> Path | None:
        """The (resolved) plugin library the engine's plugin layers came from, if any."""
        path = self.sidecar.extra.get(PLUGIN_PATH_KEY)
        return Path(path) if path and self.plugin_layers else None

    @property
    def engine_bytes(self) -> int:
        return self.sidecar.engine_bytes

    # -- output ------------------------------------------------------------------------------
    @property
    def precision_text(self) -> str:
        return {
            "fp32": "FP32 (strongly typed" + (")" if self.strongly_typed else ", weakly typed)"),
            "fp16": "FP16 (strongly typed: FP16 features, FP32 mask path as exported)",
            "fp16-flag": "FP16 builder flag on an FP32 ONNX (weakly typed, TensorRT 10.x)",
            "int8": "INT8 explicit quantization (QDQ feature convolutions, FP32 mask path; "
            + ("strongly typed)" if self.strongly_typed else "INT8 builder flag, weakly typed)"),
        }.get(self.precision, self.precision)

    def _plugin_line(self) -> str:
        if not self.plugin_layers:
            return f"plugin     none ({self.num_layers} network layers, standard TensorRT layers only)"
        return (
            f"plugin     {len(self.plugin_layers)} of {self.num_layers} network layers are "
            f"{plugin_fields.PLUGIN_NAMESPACE}::{plugin_fields.PLUGIN_NAME} "
            f"(from {self.plugin_library}): {', '.join(self.plugin_layers)}"
        )

    def summary(self) -> str:
        """The human-readable lines the CLI prints."""
        cc = f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"
        size_mib = self.engine_bytes / 2**20
        lines = [
            f"engine     {self.engine_path} ({size_mib:.2f} MiB, built in {self.build_seconds:.1f} s)",
            f"sidecar    {self.sidecar_path}",
            f"TensorRT   {self.tensorrt_version} on {self.gpu_name} ({cc})"
            + (", version-compatible" if self.version_compatible else ""),
            f"precision  {self.precision_text}",
            f"profile    image/mask NxHxW {self.profile.describe()}",
            "io         " + ", ".join(f"{k}: {v}" for k, v in self.io_dtypes.items()),
            self._plugin_line(),
        ]
        if self.timing_cache is not None:
            lines.append(f"cache      {self.timing_cache} ({self.timing_cache_note})")
        lines += [f"warning    {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The ``pconv build --json`` object (the same keys, in the same order, as before the split)."""

        def text(path: Path | None) -> str | None:
            return None if path is None else str(path)

        profile = self.profile
        return {
            "engine_path": str(self.engine_path),
            "sidecar_path": str(self.sidecar_path),
            "onnx_path": str(self.onnx_path),
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": list(self.compute_capability),
            "precision": self.precision,
            "strongly_typed": self.strongly_typed,
            "profile": {"min": list(profile.min), "opt": list(profile.opt), "max": list(profile.max)},
            "io_dtypes": dict(self.io_dtypes),
            "num_layers": self.num_layers,
            "plugin_library": text(self.plugin_library),
            "plugin_layers": list(self.plugin_layers),
            "engine_bytes": self.engine_bytes,
            "build_seconds": self.build_seconds,
            "version_compatible": self.version_compatible,
            "timing_cache": text(self.timing_cache),
            "timing_cache_note": self.timing_cache_note,
            "warnings": list(self.warnings),
        }
