"""TensorRT helpers shared by the engine builder (:mod:`pconv.export.engine`) and the runtime.

The pipeline runs one way, training -> export -> plugins -> runtime, so what both the builder and
:mod:`pconv.runtime.tensorrt_backend` need lives here, below both: the I/O contract names, the
lazy TensorRT / cuda-python imports, the checked CUDA runtime calls, the engine sidecar format,
plugin-library loading and the TensorRT logger. Importing this module needs the standard library
only; ``tensorrt`` and ``cuda-python`` are imported when a function needs them, and torch and
onnx are never used.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pconv.errors import BackendUnavailableError, ModelLoadError, PconvError

if TYPE_CHECKING:
    import tensorrt as trt

logger = logging.getLogger("pconv.tensorrt")

#: The one command that installs everything TensorRT support needs (on a machine with an NVIDIA GPU).
INSTALL_HINT = "pip install 'pconv[trt]'"
SIDECAR_FORMAT = "pconv-trt-engine-v1"
INPUT_NAMES = ("image", "mask")
OUTPUT_NAMES = ("output", "composite")
INPUT_CHANNELS = {"image": 3, "mask": 1}

Shape3 = tuple[int, int, int]


class CudaError(PconvError, RuntimeError):
    """A CUDA runtime call failed (no GPU, driver too old, out of memory, ...)."""


class PluginLibraryError(ModelLoadError):
    """The engine needs the pconv TensorRT plugin library and it cannot be found or loaded."""


# -- optional imports ----------------------------------------------------------------------------
def import_tensorrt() -> Any:
    """The real ``tensorrt`` module, or :class:`BackendUnavailableError` naming the install command.

    ``tensorrt-stubs`` alone installs a ``tensorrt`` folder with only ``.pyi`` files, which
    Python imports as an empty namespace package; that is not TensorRT, so we check for ``Builder``.
    """
    try:
        module = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise BackendUnavailableError(
            f"TensorRT is not installed: run `{INSTALL_HINT}` on a machine with an NVIDIA GPU and "
            f"driver ({exc})"
        ) from exc
    if not hasattr(module, "Builder") or not hasattr(module, "__version__"):
        raise BackendUnavailableError(
            "TensorRT is not installed (only type stubs, e.g. tensorrt-stubs, were found): run "
            f"`{INSTALL_HINT}` on a machine with an NVIDIA GPU and driver"
        )
    return module


def tensorrt_available() -> bool:
    """Whether a real TensorRT (not just its type stubs) can be imported."""
    try:
        import_tensorrt()
    except BackendUnavailableError:
        return False
    return True


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.13.0.35"`` -> ``(10, 13, 0, 35)``; non-numeric tails (``"11.0.0rc1"``) are dropped."""
    parts: list[int] = []
    for piece in text.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts)


class Cuda:
    """The few CUDA runtime calls pconv needs, through cuda-python, each checked for errors.

    Uses ``cuda.bindings.runtime`` (cuda-python >= 12.6), falling back to ``cuda.cudart`` for
    older releases, as NVIDIA's TensorRT samples do. Every call returns ``(err, *values)``.
    """

    def __init__(self) -> None:
        self.rt = self._import_runtime()

    @staticmethod
    def _import_runtime() -> ModuleType:
        errors: list[str] = []
        for name in ("cuda.bindings.runtime", "cuda.cudart"):
            try:
                return importlib.import_module(name)
            except ImportError as exc:
                errors.append(f"{name}: {exc}")
        raise BackendUnavailableError(
            f"cuda-python is not installed: run `{INSTALL_HINT}` ({'; '.join(errors)})"
        )

    def check(self, result: Any, what: str) -> Any:
        """Unpack a cuda-python result tuple, raising :class:`CudaError` on failure."""
        if isinstance(result, tuple):
            err, values = result[0], result[1:]
        else:
            err, values = result, ()
        if int(err) != 0:
            name = str(err)
            with contextlib.suppress(Exception):
                got = self.rt.cudaGetErrorName(err)
                raw = got[1] if isinstance(got, tuple) else got
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
            hint = ""
            if "NoDevice" in name or "InsufficientDriver" in name or "NotFound" in name:
                hint = ": TensorRT needs an NVIDIA GPU with a working driver (check `nvidia-smi`)"
            elif "MemoryAllocation" in name:
                hint = ": the GPU is out of memory (use a smaller batch or image size)"
            raise CudaError(f"CUDA call {what} failed with {name}{hint}")
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    # device ------------------------------------------------------------------------------------
    def device_count(self) -> int:
        return int(self.check(self.rt.cudaGetDeviceCount(), "cudaGetDeviceCount"))

    def set_device(self, device: int) -> None:
        count = self.device_count()
        if not 0 <= device < count:
            raise CudaError(f"CUDA device {device} does not exist (this machine has {count})")
        self.check(self.rt.cudaSetDevice(device), f"cudaSetDevice({device})")

    def device_properties(self, device: int) -> tuple[str, tuple[int, int]]:
        """``(name, (major, minor))`` of ``device``: what an engine is tied to."""
        props = self.check(self.rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        raw = props.name
        name = raw.decode(errors="replace") if isinstance(raw, bytes | bytearray) else str(raw)
        return name.split("\x00", 1)[0].strip(), (int(props.major), int(props.minor))

    def pointer_device(self, ptr: int) -> int | None:
        """The device that owns ``ptr``, or None for host / unregistered memory."""
        attrs = self.check(self.rt.cudaPointerGetAttributes(ptr), "cudaPointerGetAttributes")
        kind = int(attrs.type)
        device_kinds = {
            int(self.rt.cudaMemoryType.cudaMemoryTypeDevice),
            int(self.rt.cudaMemoryType.cudaMemoryTypeManaged),
        }
        return int(attrs.device) if kind in device_kinds else None

    # memory ------------------------------------------------------------------------------------
    def malloc(self, nbytes: int) -> int:
        return int(self.check(self.rt.cudaMalloc(max(nbytes, 1)), f"cudaMalloc({nbytes})"))

    def free(self, ptr: int) -> None:
        self.check(self.rt.cudaFree(ptr), "cudaFree")

    def malloc_host(self, nbytes: int) -> int:
        return int(self.check(self.rt.cudaMallocHost(max(nbytes, 1)), f"cudaMallocHost({nbytes})"))

    def free_host(self, ptr: int) -> None:
        self.check(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def copy_async(self, dst: int, src: int, nbytes: int, to_device: bool, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind
        direction = kind.cudaMemcpyHostToDevice if to_device else kind.cudaMemcpyDeviceToHost
        self.check(self.rt.cudaMemcpyAsync(dst, src, nbytes, direction, stream), "cudaMemcpyAsync")

    def copy_device_to_host(self, dst: int, src: int, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.check(self.rt.cudaMemcpy(dst, src, nbytes, kind), "cudaMemcpy")

    # streams and graphs ------------------------------------------------------------------------
    def create_stream(self) -> Any:
        flags = getattr(self.rt, "cudaStreamNonBlocking", 1)
        return self.check(self.rt.cudaStreamCreateWithFlags(flags), "cudaStreamCreateWithFlags")

    def synchronize(self, stream: Any) -> None:
        self.check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def destroy_stream(self, stream: Any) -> None:
        self.check(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def begin_capture(self, stream: Any) -> None:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self.check(self.rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")

    def end_capture(self, stream: Any) -> Any:
        return self.check(self.rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")

    def instantiate(self, graph: Any) -> Any:
        return self.check(self.rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")

    def launch(self, graph_exec: Any, stream: Any) -> None:
        self.check(self.rt.cudaGraphLaunch(graph_exec, stream), "cudaGraphLaunch")

    def destroy_graph(self, graph: Any, graph_exec: Any) -> None:
        if graph_exec is not None:
            self.check(self.rt.cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")
        if graph is not None:
            self.check(self.rt.cudaGraphDestroy(graph), "cudaGraphDestroy")


# -- the engine sidecar --------------------------------------------------------------------------
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


# -- the plugin library ------------------------------------------------------------------------
def default_plugin_library() -> Path | None:
    """The package's built plugin library (``pconv.plugins.default_library_path()``), if present."""
    try:
        plugins = importlib.import_module("pconv.plugins")
    except ImportError:
        return None
    find = getattr(plugins, "default_library_path", None)
    if find is None:
        return None
    try:
        found = find()
    except (PconvError, OSError, ValueError):
        return None
    if found is None:
        return None
    path = Path(found)
    return path if path.is_file() else None


#: Plugin libraries this process has registered (resolved path -> handle), so loading is idempotent.
_LOADED_LIBRARIES: dict[str, Any] = {}


def plugin_creator_registered(trt_module: Any) -> bool | None:
    """Whether ``pconv::PartialConv2d`` v1 is in TensorRT's registry (None if it cannot tell)."""
    from pconv.export import plugin_fields  # pure Python: no torch, no onnx

    registry = trt_module.get_plugin_registry()
    try:
        creator = registry.get_creator(
            plugin_fields.PLUGIN_NAME, plugin_fields.PLUGIN_VERSION, plugin_fields.PLUGIN_NAMESPACE
        )
    except Exception:  # older bindings raise instead of returning None
        return None
    return creator is not None


def load_plugin_library(trt_module: Any, library: str | Path) -> Any:
    """Register the plugin creators of ``library`` with TensorRT's plugin registry, once per process.

    A library exporting ``getCreators``/``setLoggerFinder`` is loaded through
    ``IPluginRegistry.load_library`` (TensorRT 10+). Registering the same creators twice fails in
    TensorRT, so a library (or creator) already registered in this process is not loaded again.
    Raises :class:`PluginLibraryError`.
    """
    path = Path(library).expanduser()
    if not path.is_file():
        raise PluginLibraryError(
            f"plugin library {path} not found: build it with `pconv build-plugin` or pass the path "
            "of an existing libpconv_plugin .so"
        )
    key = str(path.resolve())
    if key in _LOADED_LIBRARIES:
        return _LOADED_LIBRARIES[key]
    if plugin_creator_registered(trt_module):
        logger.info("pconv::PartialConv2d is already registered; not loading %s again", key)
        _LOADED_LIBRARIES[key] = None
        return None
    registry = trt_module.get_plugin_registry()
    try:
        handle = registry.load_library(key)
    except Exception as exc:  # pybind raises RuntimeError/TypeError depending on the version
        raise PluginLibraryError(f"TensorRT could not load the plugin library {path}: {exc}") from exc
    if handle is None:
        raise PluginLibraryError(
            f"TensorRT could not load the plugin library {path} (see the TensorRT log above); was "
            "it built for this TensorRT major version and CUDA? Rebuild with `pconv build-plugin`"
        )
    if plugin_creator_registered(trt_module) is False:
        raise PluginLibraryError(
            f"{path} loaded but registers no pconv::PartialConv2d version 1 creator: is it the pconv "
            "plugin, built from this pconv version? Rebuild with `pconv build-plugin`"
        )
    _LOADED_LIBRARIES[key] = handle
    return handle


# -- TensorRT logging ---------------------------------------------------------------------------
def make_trt_logger(trt_module: Any, log: logging.Logger = logger) -> trt.ILogger:
    """A TensorRT logger that forwards to Python ``logging`` and keeps the last errors for messages.

    TensorRT's own messages then follow the application's logging setup (``pconv build
    --verbose`` turns on INFO and VERBOSE ones) instead of being printed unconditionally.
    """

    class _Logger(trt_module.ILogger):  # type: ignore[misc]
        def __init__(self) -> None:
            trt_module.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            sev = trt_module.ILogger.Severity
            if severity in (sev.INTERNAL_ERROR, sev.ERROR):
                self.errors.append(msg)
                del self.errors[:-8]
                log.error("TensorRT: %s", msg)
            elif severity == sev.WARNING:
                log.warning("TensorRT: %s", msg)
            elif severity == sev.INFO:
                log.info("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

    made: trt.ILogger = _Logger()
    return made


def log_tail(trt_logger: Any) -> str:
    errors = getattr(trt_logger, "errors", None)
    return f" ({'; '.join(errors[-3:])})" if errors else ""
