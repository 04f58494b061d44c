"""Build a TensorRT engine from a pconv ONNX model: ``pconv build model.onnx -o model.engine``.

The steps run in order, each failing with one clear :class:`~pconv.errors.PconvError` (the order
Polygraphy's loaders use): check the ONNX and the profile (:mod:`~pconv.engine.facts`,
:mod:`~pconv.engine.profile`; no TensorRT needed) → import TensorRT and find the GPU → load the
plugin library (:mod:`~pconv.engine.plugin`) → parse (:mod:`~pconv.engine.network`) → configure
→ serialize → write the engine, its sidecar and the timing cache (:mod:`~pconv.engine.timing_cache`).
Every step after the checks takes the ``tensorrt`` module as an argument, so the orchestration
runs the same against a stand-in module in unit tests.

Precision follows the ONNX. An FP16 ONNX (``pconv export --precision fp16``) is built as a
*strongly typed* network: TensorRT keeps every tensor in the type the graph gives it, so the mask
path stays FP32 exactly as exported. That is the only way on TensorRT 11.x, where strong typing is
always on and ``BuilderFlag.FP16`` is gone. On 10.x an FP32 ONNX can also be built with
``fp16_flag=True`` (weakly typed: TensorRT picks FP16 per layer where it is faster).

An INT8 ONNX (``pconv export --precision int8 --int8-target tensorrt``: QDQ feature convolutions
with symmetric int8 activations) is *explicitly quantized*: TensorRT runs exactly the convolutions
between Q/DQ pairs in int8. On 10.x it is built weakly typed with ``BuilderFlag.INT8`` (and no FP16
flag, so the unquantized mask path stays FP32); on 11.x strongly typed, where Q/DQ set the types.

The plugin library is loaded *before* parsing. Plugin-form nodes carry ``plugin_namespace``, so
TensorRT >= 10.7 imports them as the ``pconv::PartialConv2d`` plugin when it is registered; without
the library (or on older parsers) it imports the node's ONNX local function, the explicit math.
The report lists which layers became the plugin.

Next to the engine goes ``<engine>.json`` (see :class:`pconv.trt.sidecar.EngineSidecar`) so the
runtime never needs the ONNX. Both files are written atomically. The library draws nothing: a
caller that wants progress passes ``progress`` (``pconv build`` passes a bar on a terminal).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pconv._version import __version__
from pconv.contract import INPUT_CHANNELS, INPUT_NAMES, Shape3
from pconv.engine import plugin, timing_cache
from pconv.engine.errors import BuildError
from pconv.engine.facts import OnnxFacts, read_onnx_facts
from pconv.engine.network import Network, Typing, creation_flags, parse, plugin_coverage_warning
from pconv.engine.options import DEFAULT_WORKSPACE_GIB, BuildOptions
from pconv.engine.profile import Profile
from pconv.engine.report import PLUGIN_PATH_KEY, BuildReport
from pconv.errors import MissingDependencyError
from pconv.trt import INSTALL_HINT, import_tensorrt, parse_version
from pconv.trt.cuda import Cuda
from pconv.trt.log import log_tail, make_trt_logger
from pconv.trt.sidecar import EngineSidecar, sidecar_path

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = [
    "DEFAULT_WORKSPACE_GIB",
    "STEPS",
    "BuildError",
    "BuildOptions",
    "BuildReport",
    "build",
    "build_engine",
]

logger = logging.getLogger("pconv.build")

#: The steps ``progress`` is told about, in order.
STEPS = (
    "checking the ONNX",
    "starting TensorRT",
    "loading the plugin",
    "parsing the ONNX",
    "configuring",
    "building (this takes a while)",
)

#: ``progress(done, total, text)``: called as each step starts (``done`` steps finished) and once at
#: the end with ``done == total``.
ProgressCallback = Callable[[int, int, str], None]


class Gpu(NamedTuple):
    """The build GPU as the sidecar records it (an engine runs only on the same compute capability)."""

    name: str
    compute_capability: tuple[int, int]


# -- the steps ------------------------------------------------------------------------------------
def require_tensorrt() -> tuple[Any, tuple[int, ...]]:
    """The ``tensorrt`` module and its version (a clear error naming the install command)."""
    try:
        trt_module = import_tensorrt()
    except MissingDependencyError as exc:
        raise MissingDependencyError(
            f"`pconv build` needs TensorRT and an NVIDIA GPU: {exc}. Or run the .onnx model with "
            "ONNX Runtime (pconv inpaint --model model.onnx)"
        ) from exc
    version = parse_version(str(trt_module.__version__))
    if not version or version[0] < 10:
        raise MissingDependencyError(
            f"pconv needs TensorRT 10 or newer (found {trt_module.__version__}): run `{INSTALL_HINT}`"
        )
    return trt_module, version


def find_gpu(device: int) -> Gpu:
    """Select ``device`` and return its name and compute capability (clear error without a GPU)."""
    try:
        cuda = Cuda()
    except MissingDependencyError as exc:
        raise MissingDependencyError(f"`pconv build` needs cuda-python: {exc}") from exc
    cuda.set_device(device)
    return Gpu(*cuda.device_properties(device))


def check_flag_support(trt: Any, version: tuple[int, ...], opts: BuildOptions) -> None:
    """Option errors that depend on the TensorRT version (before the GPU is touched)."""
    if opts.fp16_flag and (version[0] >= 11 or not hasattr(trt.BuilderFlag, "FP16")):
        raise BuildError(
            f"TensorRT {trt.__version__} has no FP16 builder flag (strong typing only): export an FP16 "
            "ONNX with `pconv export --precision fp16` and build that instead of using --fp16"
        )


def start_builder(trt: Any, trt_logger: trt.ILogger, device: int) -> trt.Builder:
    """A ``trt.Builder`` on the current device (one clear error if TensorRT cannot start)."""
    try:
        return trt.Builder(trt_logger)
    except Exception as exc:  # pybind raises if createInferBuilder returns null
        raise BuildError(
            f"TensorRT could not start on GPU {device} ({exc}{log_tail(trt_logger)}): check the NVIDIA "
            "driver (`nvidia-smi`) and that TensorRT matches the installed CUDA"
        ) from exc


def configure(
    trt: Any,
    builder: trt.Builder,
    net: Network,
    typed: Typing,
    profile: Profile,
    opts: BuildOptions,
    plugin_path: Path | None,
    trt_logger: trt.ILogger,
) -> trt.IBuilderConfig:
    """The builder config: workspace, precision flags, TF32, version compatibility, the profile."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opts.workspace_gib * 2**30))
    if typed.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if typed.int8_flag:  # explicit quantization: only the Q/DQ-wrapped convolutions run in int8
        config.set_flag(trt.BuilderFlag.INT8)
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if tf32 is not None and not opts.allow_tf32:
        config.clear_flag(tf32)
    if opts.version_compatible:
        vc_flag = getattr(trt.BuilderFlag, "VERSION_COMPATIBLE", None)
        if vc_flag is None:
            raise BuildError(f"TensorRT {trt.__version__} cannot build version-compatible engines")
        config.set_flag(vc_flag)
        if net.plugin_layers and plugin_path is not None:
            # The plan carries the plugin library, so a newer TensorRT can run it.
            config.plugins_to_serialize = [str(plugin_path.resolve())]
    add_profile(trt, builder, config, profile, trt_logger)
    return config


def add_profile(
    trt: Any, builder: trt.Builder, config: trt.IBuilderConfig, profile: Profile, trt_logger: trt.ILogger
) -> None:
    """The one optimisation profile, for both inputs (NCHW with each input's channel count)."""
    opt_profile = builder.create_optimization_profile()
    for name in INPUT_NAMES:
        c = INPUT_CHANNELS[name]
        lo, mid, hi = (trt.Dims([s[0], c, s[1], s[2]]) for s in (profile.min, profile.opt, profile.max))
        opt_profile.set_shape(name, lo, mid, hi)
    if config.add_optimization_profile(opt_profile) < 0:
        raise BuildError(f"TensorRT rejected the profile {profile.describe()}{log_tail(trt_logger)}")


def serialize(
    builder: trt.Builder, net: Network, config: trt.IBuilderConfig, trt_logger: trt.ILogger
) -> tuple[bytes, float]:
    """The serialized engine and the seconds TensorRT took to build it."""
    start = time.perf_counter()
    serialized = builder.build_serialized_network(net.network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise BuildError(
            f"TensorRT could not build the engine{log_tail(trt_logger)}: try a larger --workspace, a "
            "smaller --max profile, or --verbose for TensorRT's log"
        )
    # bytes() copies through the buffer protocol whatever format TensorRT's IHostMemory reports.
    return bytes(serialized), seconds


def make_sidecar(
    trt_version: str,
    gpu: Gpu,
    facts: OnnxFacts,
    profile: Profile,
    typed: Typing,
    net: Network,
    plugin_path: Path | None,
    opts: BuildOptions,
    data: bytes,
) -> EngineSidecar:
    """The engine's ``.json`` sidecar: everything the runtime needs to know, without the ONNX."""
    import hashlib

    used_plugin = plugin_path if plugin_path is not None and net.plugin_layers else None
    return EngineSidecar(
        onnx_metadata=dict(facts.metadata),
        tensorrt_version=trt_version,
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        profile_min=profile.min,
        profile_opt=profile.opt,
        profile_max=profile.max,
        io_dtypes=dict(net.io_dtypes),
        precision=typed.precision,
        strongly_typed=typed.strongly_typed,
        version_compatible=opts.version_compatible,
        plugin_layers=net.plugin_layers,
        plugin_library=used_plugin.name if used_plugin else None,
        plugin_serialized=bool(opts.version_compatible and net.plugin_layers),
        engine_bytes=len(data),
        engine_sha256=hashlib.sha256(data).hexdigest(),
        pconv_version=__version__,
        onnx_file=facts.path.name,
        # Where the library was at build time: the runtime's last resort if none is configured.
        extra={PLUGIN_PATH_KEY: str(used_plugin.resolve())} if used_plugin else {},
    )


def write(output: Path, data: bytes, sidecar: EngineSidecar) -> Path:
    """Write the engine, then its sidecar (both atomically); returns the sidecar's path."""
    from pconv.fileio import atomic_write_bytes

    atomic_write_bytes(output, data)
    return atomic_write_bytes(sidecar_path(output), sidecar.to_json().encode())


# -- the orchestration ------------------------------------------------------------------------------
def build_engine(
    onnx_path: str | Path,
    output: str | Path,
    *,
    min_shape: Shape3 | None = None,
    opt_shape: Shape3 | None = None,
    max_shape: Shape3 | None = None,
    plugin_library: str | Path | None = None,
    use_default_plugin: bool = True,
    timing_cache: str | Path | None = None,
    workspace_gib: float = DEFAULT_WORKSPACE_GIB,
    version_compatible: bool = False,
    fp16_flag: bool = False,
    allow_tf32: bool = False,
    device: int = 0,
    verbose: bool = False,
    progress: ProgressCallback | bool | None = None,
) -> BuildReport:
    """Build ``output`` (a TensorRT engine) and ``output.json`` (its sidecar) from a pconv ONNX.

    ``min_shape``/``opt_shape``/``max_shape`` are ``(N, H, W)`` tuples for the dynamic profile
    (see :func:`~pconv.engine.profile.resolve_profile` for defaults). ``plugin_library`` defaults to
    the package's built plugin (if present and the ONNX is plugin form); ``use_default_plugin=False``
    builds the explicit function bodies instead. ``timing_cache`` is read if it exists and merged
    back afterwards (under a lock). ``fp16_flag`` (TensorRT 10.x only) builds an FP32 ONNX with the
    FP16 builder flag; TF32 is off unless ``allow_tf32``, so FP32 engines match ONNX Runtime closely.
    ``progress(done, total, text)`` hears about each of :data:`STEPS`; the library draws nothing
    itself. A bool (the old on/off switch for a built-in bar) is accepted and means no callback.
    """
    opts = BuildOptions(
        min_shape=min_shape,
        opt_shape=opt_shape,
        max_shape=max_shape,
        plugin_library=None if plugin_library is None else Path(plugin_library),
        use_default_plugin=use_default_plugin,
        timing_cache=None if timing_cache is None else Path(timing_cache),
        workspace_gib=workspace_gib,
        version_compatible=version_compatible,
        fp16_flag=fp16_flag,
        allow_tf32=allow_tf32,
        device=device,
    )
    return build(Path(onnx_path), Path(output), opts, verbose=verbose, progress=progress)


def build(
    onnx_path: Path,
    output: Path,
    opts: BuildOptions,
    *,
    verbose: bool = False,
    progress: ProgressCallback | bool | None = None,
) -> BuildReport:
    """:func:`build_engine` with the options as one :class:`BuildOptions` (what ``pconv build`` passes)."""
    callback = None if isinstance(progress, bool) else progress
    report = run_steps(onnx_path, output, opts, _Announcer(callback))
    for text in report.warnings:
        logger.warning("%s", text)
    if verbose:
        logger.info("report: %s", json.dumps(report.to_dict()))
    return report


class _Announcer:
    """Logs each step and tells the caller's ``progress`` callback, if there is one."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self.progress = progress
        self.done = 0

    def __call__(self, text: str) -> None:
        logger.info("%s", text)
        if self.progress is not None:
            self.progress(self.done, len(STEPS), text)
        self.done += 1

    def finished(self) -> None:
        if self.progress is not None:
            self.progress(len(STEPS), len(STEPS), "done")


def run_steps(onnx_path: Path, output: Path, opts: BuildOptions, step: _Announcer) -> BuildReport:
    """The build, step by step (see the module docstring); TensorRT is imported at step 2."""
    warnings: list[str] = []
    step(STEPS[0])
    facts = read_onnx_facts(onnx_path)
    profile = opts.check(facts)
    step(STEPS[1])
    trt, version = require_tensorrt()
    trt_logger = make_trt_logger(trt, logging.getLogger("pconv.build.tensorrt"))
    check_flag_support(trt, version, opts)
    gpu = find_gpu(opts.device)
    builder = start_builder(trt, trt_logger, opts.device)
    step(STEPS[2])
    plugin_path = plugin.choose(facts, opts.plugin_library, opts.use_default_plugin, warnings)
    plugin.load(trt, facts, plugin_path, warnings)
    step(STEPS[3])
    typed = Typing.decide(version, facts, opts.fp16_flag)
    net = parse(trt, builder, trt_logger, facts, creation_flags(trt, version, typed), plugin_path is not None)
    if plugin_path is not None and (
        note := plugin_coverage_warning(str(trt.__version__), version, facts, net)
    ):
        warnings.append(note)
    step(STEPS[4])
    config = configure(trt, builder, net, typed, profile, opts, plugin_path, trt_logger)
    cache = timing_cache.CacheFile(opts.timing_cache) if opts.timing_cache is not None else None
    if cache is not None:
        cache.attach(config, warnings)
    step(STEPS[5])
    data, seconds = serialize(builder, net, config, trt_logger)
    sidecar = make_sidecar(str(trt.__version__), gpu, facts, profile, typed, net, plugin_path, opts, data)
    side = write(output, data, sidecar)
    if cache is not None:
        cache.save(config, warnings)
    step.finished()
    return BuildReport(
        sidecar=sidecar,
        engine_path=output,
        sidecar_path=side,
        onnx_path=facts.path,
        num_layers=net.num_layers,
        build_seconds=seconds,
        timing_cache=opts.timing_cache,
        timing_cache_note=cache.note if cache is not None else "",
        warnings=warnings,
    )
