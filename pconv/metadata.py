"""The one reader of pconv's model metadata: ONNX ``metadata_props`` -> checked :class:`ModelMetadata`.

Every stage that opens a pconv ONNX model (``pconv check``, ``pconv build``, the export summary, the
ONNX Runtime backend, the TensorRT backend through the engine sidecar) checks the same facts: the
format tag, the size multiple, the config JSON and the mask convention. They are checked here, once,
so a foreign or damaged file is refused with the same words everywhere; each caller passes its own
error class and the fix it wants named.

:func:`read_onnx_metadata` reads the key/value pairs straight from the ONNX protobuf (only the
top-level ``ModelProto`` fields; the graph is skipped with a seek), so it needs neither the ``onnx``
package nor ONNX Runtime. Pure Python.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pconv.contract import (
    MASK_CONVENTION,
    META_CONFIG,
    META_FORM,
    META_FORMAT,
    META_INT8_ACTIVATIONS,
    META_IO,
    META_MASK,
    META_MULTIPLE,
    META_PRECISION,
    ONNX_FORMAT,
)
from pconv.errors import ModelLoadError, PconvError

#: Where the metadata came from; it decides how errors word the fix.
Origin = Literal["onnx", "engine"]


@dataclass(frozen=True)
class _Wording:
    """How metadata errors name the file and the fix, for one kind of model file."""

    not_ours: str  # what the file is not, after its name
    where: str  # where the metadata was read from, for "damaged" errors
    fix: str  # what the user runs to get a usable file


_WORDING: dict[str, _Wording] = {
    "onnx": _Wording(
        not_ours="is not a pconv model",
        where="",
        fix="(re-)export the model with `pconv export` (pconv.export.onnx_export.export_onnx)",
    ),
    "engine": _Wording(
        not_ours="was not built from a pconv ONNX model",
        where=" in the sidecar",
        fix="(re-)export the model with `pconv export` and rebuild the engine with `pconv build`",
    ),
}


@dataclass(frozen=True)
class ModelMetadata:
    """The checked facts of a pconv model's metadata (the raw pairs are kept in ``raw``)."""

    size_multiple: int
    mask_convention: str
    config: dict[str, Any] = field(default_factory=dict)  # the ModelConfig as a dict ({} if absent)
    precision: str = "fp32"  # META_PRECISION: fp32, fp16 or int8
    form: str | None = None  # META_FORM: explicit or plugin
    io: str | None = None  # META_IO: fp32 or fp16 inputs/outputs
    int8_activations: str | None = None  # int8 exports: "int8" or "uint8"
    raw: dict[str, str] = field(default_factory=dict)


def parse_metadata(
    meta: Mapping[str, str],
    source: str | Path,
    *,
    origin: Origin = "onnx",
    expected_format: str = ONNX_FORMAT,
    require_config: bool = False,
    error: type[PconvError] = ModelLoadError,
) -> ModelMetadata:
    """Check pconv metadata and return its facts, or raise ``error`` (one line naming the fix).

    ``require_config``: a missing ``pconv_config`` is an error (callers that rebuild the network
    need it; the runtime does not). ``origin="engine"`` words the fix as a rebuild of the engine.
    """
    wording = _WORDING[origin]
    found = meta.get(META_FORMAT)
    if found != expected_format:
        detail = f"its '{META_FORMAT}' is {found!r}" if found else f"it has no '{META_FORMAT}' metadata"
        raise error(f"{source} {wording.not_ours} ({detail}); {wording.fix}")
    try:
        multiple = int(meta[META_MULTIPLE])
        if require_config and META_CONFIG not in meta:
            raise KeyError(META_CONFIG)
        config = json.loads(meta.get(META_CONFIG, "{}"))
    except (KeyError, ValueError) as exc:
        raise error(f"{source}: damaged pconv metadata{wording.where} ({exc}); {wording.fix}") from exc
    convention = meta.get(META_MASK, MASK_CONVENTION)
    if convention != MASK_CONVENTION:
        raise error(
            f"{source} uses mask convention {convention!r}; this runtime expects {MASK_CONVENTION!r} "
            f"(the model comes from another pconv version): {wording.fix}"
        )
    return ModelMetadata(
        size_multiple=multiple,
        mask_convention=convention,
        config=config if isinstance(config, dict) else {},
        precision=meta.get(META_PRECISION, "fp32"),
        form=meta.get(META_FORM),
        io=meta.get(META_IO),
        int8_activations=meta.get(META_INT8_ACTIVATIONS),
        raw=dict(meta),
    )


# -- the ONNX protobuf, read without the onnx package ---------------------------------------------
#: ``ModelProto`` field numbers (onnx/onnx.proto): those a model may have at the top level.
_MODEL_FIELDS = {1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 21, 25}
_GRAPH_FIELD = 7
_METADATA_FIELD = 14  # repeated StringStringEntryProto {1: key, 2: value}


def read_onnx_metadata(path: str | Path, *, error: type[PconvError] = ModelLoadError) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict, read from the protobuf without ``onnx``.

    Only the top-level fields are walked; the graph (and its weights) is skipped, so this is cheap
    even for a large model. A file that is not an ONNX ``ModelProto`` raises ``error``.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            return _scan_model(f, size)
    except OSError as exc:
        raise error(f"cannot read {path} ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise error(f"{path} is not a readable ONNX model ({exc}); re-export it with `pconv export`") from exc


def _scan_model(f: BinaryIO, size: int) -> dict[str, str]:
    meta: dict[str, str] = {}
    has_graph = False
    while f.tell() < size:
        tag = _varint(f)
        number, wire = tag >> 3, tag & 7
        if number not in _MODEL_FIELDS:
            raise ValueError(f"unknown top-level field {number} at byte {f.tell()}")
        if wire == 0:
            _varint(f)
        elif wire == 2:
            length = _varint(f)
            if f.tell() + length > size:
                raise ValueError("truncated file")
            if number == _METADATA_FIELD:
                key, value = _entry(f.read(length))
                meta[key] = value
            else:
                has_graph |= number == _GRAPH_FIELD
                f.seek(length, 1)
        elif wire in (1, 5):
            f.seek(8 if wire == 1 else 4, 1)
        else:
            raise ValueError(f"unexpected wire type {wire} for field {number}")
    if not has_graph:
        raise ValueError("no graph")
    return meta


def _varint(f: BinaryIO) -> int:
    value, shift = 0, 0
    while True:
        byte = f.read(1)
        if not byte:
            raise ValueError("truncated file")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def _entry(data: bytes) -> tuple[str, str]:
    """One ``StringStringEntryProto``: (key, value)."""
    f = io.BytesIO(data)
    parts = {1: "", 2: ""}
    while f.tell() < len(data):
        tag = _varint(f)
        number, wire = tag >> 3, tag & 7
        if wire != 2:
            raise ValueError(f"metadata entry field {number} has wire type {wire}")
        raw = f.read(_varint(f))
        if number in parts:
            parts[number] = raw.decode("utf-8")
    return parts[1], parts[2]
