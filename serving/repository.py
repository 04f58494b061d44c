"""``pconv triton-repo``: a Triton model repository from what pconv knows about a model.

Written per model (names are :data:`MODEL_NAMES`, ``name`` prefixes them)::

    DIR/pconv/config.pbtxt + 1/model.onnx|model.plan|model.py   the network, dynamic batching
    DIR/pconv_pre/ ... 1/model.py        uint8 HWC image + uint8 mask (non-zero = hole), any size ->
                                         the padded network inputs (padding marked as hole)
    DIR/pconv_post/ ... 1/model.py       network output + the original pixels -> the uint8 composite
                                         (valid pixels bit-exact, holes from the network)
    DIR/pconv_ensemble/config.pbtxt      pre -> network -> post in one request

The network runs on Triton's ``onnxruntime`` backend (CPU, or CUDA / TensorRT execution provider),
its ``tensorrt`` backend (an engine from ``pconv build``), or the ``python`` backend running pconv's
own ONNX Runtime session (what ``pconv serve`` uses: the PyPI build of ``tritonserver`` has no
ONNX Runtime backend). Size multiple, I/O dtype and mask convention come from the ONNX metadata or
the engine sidecar and are copied into every config's ``parameters`` (``TritonBackend`` checks them);
batch limits come from the TensorRT profile. Every ``config.pbtxt`` is built through Triton's own
protobuf (``tritonclient.grpc.model_config_pb2``) and parsed back and checked before it is written.

The python steps import pconv: in the NGC container install it (``pip install pconv``, see
``deploy/kubernetes``); under ``pconv serve`` they use this interpreter's packages.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pconv.contract import (
    ENGINE_SUFFIXES,
    INPUT_CHANNELS,
    INPUT_NAMES,
    META_FORMAT,
    META_MULTIPLE,
    META_PRECISION,
    ONNX_SUFFIXES,
    OUTPUT_NAMES,
    format_nhw,
)
from pconv.errors import MissingDependencyError
from pconv.fileio import atomic_copy, atomic_write
from pconv.runtime.backend import ModelInfo, check_model_file, model_info_from_metadata
from pconv.runtime.triton_backend import P_FIXED_SHAPE, P_MAX_SHAPE, P_MIN_SHAPE
from pconv.serving.environment import PATH_ENV, SITE_ENV
from pconv.serving.options import (
    ENSEMBLE,
    NETWORK,
    POST,
    PRE,
    RepoOptions,
    RepositoryError,
)
from pconv.trt.sidecar import EngineSidecar, sidecar_path

#: Ensemble tensors: the uint8 request, the network's padded inputs/output, the uint8 answer.
RGB_IMAGE, HOLE_MASK, COMPOSITE = "image", "mask", "composite"
NET_IMAGE, NET_MASK, NET_OUTPUT = "net_image", "net_mask", "net_output"
#: Parameters the python models read (besides pconv's ONNX metadata and the shape limits).
P_THREADS, P_MAX_PIXELS, P_MODEL_FILE = "threads", "max_pixels", "model_file"
_TRITON_TYPES = {np.dtype(np.float32): "TYPE_FP32", np.dtype(np.float16): "TYPE_FP16"}
MODELS_PACKAGE = "pconv.serving.models"


@dataclass(frozen=True)
class ModelFacts:
    """What the repository needs from the model file."""

    path: Path
    kind: str  # "onnx" or "engine"
    metadata: dict[str, str]
    info: ModelInfo
    sidecar: EngineSidecar | None = None
    dynamic_batch: bool = True
    warmup_hw: tuple[int, int] = (0, 0)
    notes: list[str] = field(default_factory=list)


def _shape_text(shape: tuple[int, int, int] | None) -> str:
    return "" if shape is None else format_nhw(shape)


def read_model(model: str | Path) -> ModelFacts:
    """Metadata, dtype and limits of a ``.onnx`` (read with ONNX Runtime) or an engine (its sidecar)."""
    path = check_model_file(model)
    suffix = path.suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        return _read_engine(path)
    if suffix not in ONNX_SUFFIXES:
        raise RepositoryError(f"{path.name}: give a .onnx model or a {'/'.join(ENGINE_SUFFIXES)} engine")
    from pconv.runtime.onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(path, threads=1)
    try:
        info, meta = backend.info, dict(backend.metadata)
    finally:
        backend.close()
    m = info.size_multiple
    if info.fixed_shape is not None:
        _n, h, w = info.fixed_shape
        return ModelFacts(path, "onnx", meta, info, dynamic_batch=False, warmup_hw=(h, w))
    dynamic = info.min_shape is None or (
        info.min_shape[0] == 1 and info.max_shape is not None and info.max_shape[0] > 1
    )
    return ModelFacts(path, "onnx", meta, info, dynamic_batch=dynamic, warmup_hw=(m, m))


def _read_engine(path: Path) -> ModelFacts:
    side = sidecar_path(path)
    try:
        sidecar = EngineSidecar.from_json(side.read_text())
    except FileNotFoundError as exc:
        raise RepositoryError(
            f"{path.name} has no sidecar {side.name}: rebuild the engine with `pconv build`"
        ) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise RepositoryError(
            f"{side}: unreadable engine sidecar ({exc}); rebuild with `pconv build`"
        ) from exc
    dtype = np.dtype(sidecar.io_dtypes.get(INPUT_NAMES[0], "float32"))
    info = model_info_from_metadata(
        sidecar.onnx_metadata,
        path,
        dtype,
        origin="engine",
        min_shape=sidecar.profile_min,
        max_shape=sidecar.profile_max,
    )
    notes = []
    if sidecar.profile_min[0] != 1:
        raise RepositoryError(
            f"{path.name}: the engine's profile starts at batch {sidecar.profile_min[0]}; Triton's dynamic "
            "batcher sends batches from 1: rebuild with `pconv build --min 1xHxW`"
        )
    if sidecar.uses_plugin and not (sidecar.version_compatible and sidecar.plugin_serialized):
        raise RepositoryError(
            f"{path.name} uses the pconv TensorRT plugin but does not carry it: Triton's TensorRT backend "
            "dlopens plugin libraries without registering pconv's creator, so this engine would not "
            "deserialise there. Rebuild it with `pconv build --version-compatible` (the plugin is then "
            "serialised into the engine), or use --backend onnxruntime"
        )
    if sidecar.version_compatible:
        notes.append(
            "start tritonserver with --backend-config=tensorrt,version-compatible=true (the engine is "
            "version-compatible and carries the pconv plugin)"
        )
    opt = sidecar.profile_opt
    return ModelFacts(
        path, "engine", dict(sidecar.onnx_metadata), info, sidecar, True, (opt[1], opt[2]), notes
    )


# -- configs -----------------------------------------------------------------------------------------
def _model_config_pb2() -> Any:
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:
        raise MissingDependencyError(
            f"tritonclient[grpc] is not installed (its protobuf checks every config.pbtxt): run "
            f"`pip install 'pconv[serve]'` ({exc})"
        ) from exc
    return model_config_pb2


def config_text(config: Mapping[str, Any]) -> str:
    """``config.pbtxt`` text for ``config`` (the JSON form of Triton's ``ModelConfig``), checked."""
    from google.protobuf import json_format, text_format

    pb2 = _model_config_pb2()
    try:
        message = json_format.ParseDict(dict(config), pb2.ModelConfig())
    except json_format.ParseError as exc:
        raise RepositoryError(f"invalid Triton config for {config.get('name')!r}: {exc}") from exc
    text = str(text_format.MessageToString(message))
    validate_config_text(text, str(config.get("name")))
    return text


def _string_params(values: Mapping[str, object]) -> dict[str, dict[str, str]]:
    return {k: {"string_value": str(v)} for k, v in values.items()}


def _tensor(name: str, dtype: str, dims: list[int]) -> dict[str, Any]:
    return {"name": name, "data_type": dtype, "dims": dims}


def _pconv_params(facts: ModelFacts) -> dict[str, str]:
    """The ONNX metadata (it identifies the model to TritonBackend) plus the shape limits."""
    params = dict(facts.metadata)
    params[P_MIN_SHAPE] = _shape_text(facts.info.min_shape)
    params[P_MAX_SHAPE] = _shape_text(facts.info.max_shape)
    params[P_FIXED_SHAPE] = _shape_text(facts.info.fixed_shape)
    return {k: v for k, v in params.items() if v}


def _trt_precision(facts: ModelFacts) -> str:
    """The TensorRT execution provider's precision: the export's own (FP16 for fp16, else FP32:
    forcing FP16 on an fp32 export changes its results)."""
    return "FP16" if facts.metadata.get(META_PRECISION) == "fp16" else "FP32"


def _min_batch(info: ModelInfo) -> int:
    return info.min_shape[0] if info.min_shape is not None else 1


def network_config(facts: ModelFacts, options: RepoOptions, backend: str) -> dict[str, Any]:
    """The network model: ``image`` (3,H,W) + ``mask`` (1,H,W) -> ``output``/``composite`` (3,H,W)."""
    dtype = _TRITON_TYPES[np.dtype(facts.info.io_dtype)]
    max_batch = options.max_batch if facts.dynamic_batch else 0
    if facts.sidecar is not None:
        max_batch = min(max_batch, facts.sidecar.profile_max[0])
    lead: list[int] = [] if max_batch else [facts.info.fixed_shape[0] if facts.info.fixed_shape else -1]
    h, w = (-1, -1)
    if facts.info.fixed_shape is not None:
        h, w = facts.info.fixed_shape[1], facts.info.fixed_shape[2]

    def dims(name: str) -> list[int]:
        return [*lead, INPUT_CHANNELS.get(name, 3), h, w]

    config: dict[str, Any] = {
        "name": options.model_name(NETWORK),
        "max_batch_size": max_batch,
        "input": [_tensor(n, dtype, dims(n)) for n in INPUT_NAMES],
        "output": [_tensor(n, dtype, dims(n)) for n in OUTPUT_NAMES],
        "instance_group": [
            {"count": options.instances, "kind": "KIND_GPU" if options.kind == "gpu" else "KIND_CPU"}
        ],
    }
    params = _pconv_params(facts)
    if backend == "tensorrt":
        config["platform"] = "tensorrt_plan"
        config["default_model_filename"] = "model.plan"
    elif backend == "onnxruntime":
        config["backend"] = "onnxruntime"
        config["default_model_filename"] = "model.onnx"
        # Triton's onnxruntime backend reads these (instances x threads: 1 thread each is best on CPU).
        params.update(intra_op_thread_count=str(options.threads), inter_op_thread_count="1")
        if options.kind == "gpu":
            config["optimization"] = {
                "execution_accelerators": {
                    "gpu_execution_accelerator": [
                        {"name": "tensorrt", "parameters": {"precision_mode": _trt_precision(facts)}}
                    ]
                }
            }
    else:
        config["backend"] = "python"
        params.update(
            {
                P_THREADS: str(options.threads),
                P_MAX_PIXELS: str(options.max_pixels),
                P_MODEL_FILE: "model.onnx",
            }
        )
    config["parameters"] = _string_params(params)
    if max_batch:
        config["dynamic_batching"] = {
            "max_queue_delay_microseconds": options.queue_delay_us,
            "default_queue_policy": {"max_queue_size": options.max_queue, "timeout_action": "REJECT"},
        }
    if options.warmup:
        wh, ww = facts.warmup_hw
        # without batching the lead dim is the batch: the fixed N, else the smallest N the model takes
        warm_lead = [n if n > 0 else _min_batch(facts.info) for n in lead]
        shape = {n: [*warm_lead, INPUT_CHANNELS[n], wh, ww] for n in INPUT_NAMES}
        config["model_warmup"] = [
            {
                "name": "warmup",
                "batch_size": 1,
                "inputs": {n: {"data_type": dtype, "dims": shape[n], "zero_data": True} for n in INPUT_NAMES},
            }
        ]
    return config


def step_configs(facts: ModelFacts, options: RepoOptions) -> list[dict[str, Any]]:
    """The python pre/post steps and the ensemble that chains pre -> network -> post.

    The ensemble carries one image per request (batch 1 through the network), so a model exported
    with a fixed batch above 1 cannot sit in it: a one-line :class:`RepositoryError` says what to do.
    """
    fixed = facts.info.fixed_shape
    if fixed is not None and fixed[0] > 1:
        raise RepositoryError(
            f"{facts.path.name} has a fixed batch of {fixed[0]}, but the uint8 ensemble sends one image "
            f"per request: pass --no-ensemble to serve the network alone (clients send batches of "
            f"{fixed[0]}), or export with --batch 1 or a dynamic batch"
        )
    dtype = _TRITON_TYPES[np.dtype(facts.info.io_dtype)]
    params = _string_params({**_pconv_params(facts), P_MAX_PIXELS: options.max_pixels})
    rgb = [_tensor(RGB_IMAGE, "TYPE_UINT8", [-1, -1, 3]), _tensor(HOLE_MASK, "TYPE_UINT8", [-1, -1])]
    net_in = [_tensor(NET_IMAGE, dtype, [1, 3, -1, -1]), _tensor(NET_MASK, dtype, [1, 1, -1, -1])]
    net_out = _tensor(NET_OUTPUT, dtype, [1, 3, -1, -1])
    composite = _tensor(COMPOSITE, "TYPE_UINT8", [-1, -1, 3])
    group = [{"count": options.instances, "kind": "KIND_CPU"}]
    pre = {
        "name": options.model_name(PRE),
        "backend": "python",
        "max_batch_size": 0,
        "input": rgb,
        "output": net_in,
        "instance_group": group,
        "parameters": params,
    }
    post = {
        "name": options.model_name(POST),
        "backend": "python",
        "max_batch_size": 0,
        "input": [*rgb, net_out],
        "output": [composite],
        "instance_group": group,
        "parameters": params,
    }
    network = options.model_name(NETWORK)
    ensemble = {
        "name": options.model_name(ENSEMBLE),
        "platform": "ensemble",
        "max_batch_size": 0,
        "input": rgb,
        "output": [composite],
        "parameters": _string_params(_pconv_params(facts)),
        "ensemble_scheduling": {
            "step": [
                {
                    "model_name": pre["name"],
                    "model_version": -1,
                    "input_map": {RGB_IMAGE: RGB_IMAGE, HOLE_MASK: HOLE_MASK},
                    "output_map": {NET_IMAGE: NET_IMAGE, NET_MASK: NET_MASK},
                },
                {
                    "model_name": network,
                    "model_version": -1,
                    "input_map": {INPUT_NAMES[0]: NET_IMAGE, INPUT_NAMES[1]: NET_MASK},
                    "output_map": {OUTPUT_NAMES[0]: NET_OUTPUT},
                },
                {
                    "model_name": post["name"],
                    "model_version": -1,
                    "input_map": {RGB_IMAGE: RGB_IMAGE, HOLE_MASK: HOLE_MASK, NET_OUTPUT: NET_OUTPUT},
                    "output_map": {COMPOSITE: COMPOSITE},
                },
            ]
        },
    }
    return [pre, post, ensemble]


def validate_config_text(text: str, where: str = "config.pbtxt") -> Any:
    """Parse ``text`` with Triton's protobuf and check what Triton checks at load; return the message.

    Raises :class:`RepositoryError` naming the problem: a syntax error, an unknown field or enum, no
    backend/platform, a tensor without a type, dims the batching mode cannot take, or an ensemble
    step that maps a tensor nothing produces.
    """
    from google.protobuf import text_format

    pb2 = _model_config_pb2()
    message = pb2.ModelConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise RepositoryError(f"{where}: not a valid Triton model config ({exc})") from exc
    problems = []
    if not message.name:
        problems.append("no name")
    if not (message.backend or message.platform):
        problems.append("neither backend nor platform")
    if message.max_batch_size < 0:
        problems.append("negative max_batch_size")
    for tensor in [*message.input, *message.output]:
        if tensor.data_type == pb2.TYPE_INVALID:
            problems.append(f"tensor {tensor.name!r} has no data_type")
        if not tensor.dims or any(d == 0 or d < -1 for d in tensor.dims):
            problems.append(f"tensor {tensor.name!r} has dims {list(tensor.dims)}")
    if message.HasField("dynamic_batching") and message.max_batch_size == 0:
        problems.append("dynamic_batching needs max_batch_size > 0")
    if message.platform == "ensemble":
        produced = {t.name for t in message.input}
        for step in message.ensemble_scheduling.step:
            missing = [v for v in step.input_map.values() if v not in produced]
            if missing:
                problems.append(f"step {step.model_name!r} reads {missing} before any step writes them")
            produced |= set(step.output_map.values())
        unmade = [t.name for t in message.output if t.name not in produced]
        if unmade:
            problems.append(f"ensemble output(s) {unmade} are written by no step")
    if problems:
        raise RepositoryError(f"{where}: Triton would reject this config: {'; '.join(problems)}")
    return message


def validate_repository(root: Path) -> list[str]:
    """Check every ``*/config.pbtxt`` under ``root`` and that ensemble steps name models that exist."""
    names = []
    configs = sorted(Path(root).glob("*/config.pbtxt"))
    if not configs:
        raise RepositoryError(f"{root}: no */config.pbtxt (not a Triton model repository)")
    messages = [validate_config_text(c.read_text(), str(c)) for c in configs]
    present = {m.name for m in messages}
    for config, message in zip(configs, messages):
        if message.name != config.parent.name:
            raise RepositoryError(f"{config}: name {message.name!r} differs from its folder")
        for step in message.ensemble_scheduling.step:
            if step.model_name not in present:
                raise RepositoryError(f"{config}: step model {step.model_name!r} is not in the repository")
        names.append(message.name)
    return names


# -- writing -------------------------------------------------------------------------------------------
def _model_py(module: str, title: str) -> str:
    """A python-backend ``model.py``: set up this environment's packages, then pconv's model class."""
    return f'''"""{title} Written by pconv (pconv.serving); the code is {MODELS_PACKAGE}.{module}."""

import os
import site
import sys

# Under `pconv serve` the stub gets the launcher's sys.path and site folders (.pth files included);
# in a Triton container, install pconv into the container's Python instead.
_path = os.environ.get("{PATH_ENV}")
if _path:
    sys.path[:0] = [p for p in _path.split(os.pathsep) if p and p not in sys.path]
    for _site in os.environ.get("{SITE_ENV}", "").split(os.pathsep):
        if _site:
            site.addsitedir(_site)

from {MODELS_PACKAGE}.{module} import TritonPythonModel  # noqa: E402,F401
'''


def _place(source: Path, target: Path, link: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        os.symlink(source.resolve(), target)
    else:
        atomic_copy(source, target)


def _write_text(path: Path, text: str) -> None:
    """Written atomically, like every file pconv writes (a kill never leaves half a config)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def resolve_backend(facts: ModelFacts, options: RepoOptions) -> str:
    backend = options.backend
    if backend == "auto":
        backend = "tensorrt" if facts.kind == "engine" else "onnxruntime"
    if facts.kind == "engine" and backend == "python":
        raise RepositoryError(
            f"{facts.path.name} is a TensorRT engine; pconv serve runs .onnx models (its bundled server has "
            f"no TensorRT backend): serve the .onnx, or write a repository for the NGC container with "
            f"`pconv triton-repo {facts.path.name} -o DIR`"
        )
    if facts.kind == "engine" and backend != "tensorrt":
        raise RepositoryError(f"{facts.path.name} is a TensorRT engine: it runs on --backend tensorrt only")
    if facts.kind == "onnx" and backend == "tensorrt":
        raise RepositoryError(
            f"{facts.path.name} is ONNX: build an engine with `pconv build` for --backend tensorrt, or use "
            "--backend onnxruntime (with --kind gpu it runs on the TensorRT execution provider)"
        )
    return backend


def write_repository(
    model: str | Path, out: str | Path, options: RepoOptions | None = None
) -> dict[str, Any]:
    """Write the repository into ``out`` (must be empty or absent); return a summary (names, notes)."""
    options = options or RepoOptions()
    facts = read_model(model)
    backend = resolve_backend(facts, options)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RepositoryError(f"{out} is not empty: pass a new folder (or remove it) for the repository")
    configs = [network_config(facts, options, backend)]
    if options.ensemble:
        configs += step_configs(facts, options)
    texts = {c["name"]: config_text(c) for c in configs}  # every config checked before anything is written
    network = options.model_name(NETWORK)
    version = out / network / "1"
    if backend == "tensorrt":
        _place(facts.path, version / "model.plan", options.link_model)
    else:
        _place(facts.path, version / "model.onnx", options.link_model)
    if backend == "python":
        _write_text(version / "model.py", _model_py("network", "The pconv network on ONNX Runtime."))
    if options.ensemble:
        for part, module, title in ((PRE, "pre", "Pad to the size multiple."), (POST, "post", "Composite.")):
            step = out / options.model_name(part) / "1"
            step.mkdir(parents=True, exist_ok=True)
            _write_text(step / "model.py", _model_py(module, title))
    for name, text in texts.items():
        (out / name / "1").mkdir(parents=True, exist_ok=True)  # an ensemble needs a version folder too
        _write_text(out / name / "config.pbtxt", text)
    names = validate_repository(out)
    summary = {
        "repository": str(out),
        "models": names,
        "network": network,
        "ensemble": options.model_name(ENSEMBLE) if options.ensemble else None,
        "backend": backend,
        "size_multiple": int(facts.metadata.get(META_MULTIPLE, facts.info.size_multiple)),
        "format": facts.metadata.get(META_FORMAT),
        "notes": facts.notes,
    }
    _write_text(out / "pconv_repository.json", json.dumps(summary, indent=2) + "\n")
    return summary
