"""The engine sidecar: ``<engine>.json``, what the runtime needs to know about an engine.

One format, written by :mod:`pconv.engine` at build time and read by :mod:`pconv.runtime`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pconv.contract import Shape3

SIDECAR_FORMAT = "pconv-trt-engine-v1"


def sidecar_path(engine_path: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


@dataclass(frozen=True)
class EngineSidecar:
    """Everything the runtime needs to know about an engine, written next to it at build time."""

    onnx_metadata: dict[str, str]
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    profile_min: Shape3
    profile_opt: Shape3
    profile_max: Shape3
    io_dtypes: dict[str, str]  # tensor name -> numpy dtype name ("float32", "float16")
    precision: str  # "fp32", "fp16" (strongly typed FP16 ONNX), "fp16-flag" (10.x builder flag), "int8" (QDQ)
    strongly_typed: bool
    version_compatible: bool = False
    plugin_layers: tuple[str, ...] = ()
    plugin_library: str | None = None  # file name of the library the engine was built with
    plugin_serialized: bool = False  # the library is inside the (version-compatible) engine
    engine_bytes: int = 0
    engine_sha256: str = ""
    pconv_version: str = ""
    onnx_file: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_plugin(self) -> bool:
        return bool(self.plugin_layers)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = SIDECAR_FORMAT
        for key in ("compute_capability", "profile_min", "profile_opt", "profile_max", "plugin_layers"):
            data[key] = list(data[key])
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EngineSidecar:
        if data.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {SIDECAR_FORMAT!r}")

        def shape(key: str) -> Shape3:
            value = tuple(int(v) for v in data[key])
            if len(value) != 3:
                raise ValueError(f"{key} must be [N, H, W], got {data[key]!r}")
            return (value[0], value[1], value[2])

        cc = tuple(int(v) for v in data["compute_capability"])
        if len(cc) != 2:
            raise ValueError(f"compute_capability must be [major, minor], got {cc!r}")
        library = data.get("plugin_library")
        return cls(
            onnx_metadata={str(k): str(v) for k, v in dict(data["onnx_metadata"]).items()},
            tensorrt_version=str(data["tensorrt_version"]),
            gpu_name=str(data["gpu_name"]),
            compute_capability=(cc[0], cc[1]),
            profile_min=shape("profile_min"),
            profile_opt=shape("profile_opt"),
            profile_max=shape("profile_max"),
            io_dtypes={str(k): str(v) for k, v in dict(data["io_dtypes"]).items()},
            precision=str(data["precision"]),
            strongly_typed=bool(data["strongly_typed"]),
            version_compatible=bool(data.get("version_compatible", False)),
            plugin_layers=tuple(str(x) for x in data.get("plugin_layers", ())),
            plugin_library=None if library is None else str(library),
            plugin_serialized=bool(data.get("plugin_serialized", False)),
            engine_bytes=int(data.get("engine_bytes", 0)),
            engine_sha256=str(data.get("engine_sha256", "")),
            pconv_version=str(data.get("pconv_version", "")),
            onnx_file=str(data.get("onnx_file", "")),
            extra=dict(data.get("extra", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> EngineSidecar:
        return cls.from_dict(json.loads(text))
