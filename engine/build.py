"""Build a TensorRT engine from a pconv ONNX model: ``pconv build model.onnx -o model.engine``.

The steps run in order, each failing with one clear :class:`~pconv.errors.PconvError` (the same
order Polygraphy's loaders use): check the ONNX and the profile shapes (no TensorRT needed) →
import TensorRT and find the GPU → load the plugin library → parse → configure → build → write.

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
runtime never needs the ONNX. Both files are written atomically.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pconv import plugin_fields
from pconv._version import __version__
from pconv.contract import (
    INPUT_CHANNELS,
    INPUT_NAMES,
    INT8_TARGETS,
    META_FORM,
    META_FORMAT,
    META_INT8_ACTIVATIONS,
    META_IO,
    META_MULTIPLE,
    META_PRECISION,
    ONNX_FORMAT,
    OUTPUT_NAMES,
    Shape3,
    format_nhw,
    round_up,
)
from pconv.errors import MissingDependencyError, PconvError, require
from pconv.fileio import atomic_write_bytes
from pconv.trt import INSTALL_HINT, import_tensorrt, parse_version
from pconv.trt.cuda import Cuda
from pconv.trt.log import log_tail, make_trt_logger
from pconv.trt.registry import find_library, load_plugin_library
from pconv.trt.sidecar import EngineSidecar, sidecar_path

if TYPE_CHECKING:
    import tensorrt as trt

logger = logging.getLogger("pconv.build")

DEFAULT_WORKSPACE_GIB = 4.0
#: Default profile when no shape is given and the ONNX leaves N, H, W dynamic (min = the size multiple).
DEFAULT_OPT_HW = 512
DEFAULT_MAX_HW = 1024
#: First TensorRT whose ONNX parser prefers a registered plugin over a local function.
PLUGIN_OVER_FUNCTION_VERSION = (10, 7)


class BuildError(PconvError):
    """The ONNX, the shapes or the TensorRT build failed; the message says what to change."""


# -- shapes -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """One optimisation profile: inclusive (N, H, W) ranges of the ``image``/``mask`` inputs."""

    min: Shape3
    opt: Shape3
    max: Shape3

    def describe(self) -> str:
        return f"min {format_nhw(self.min)}, opt {format_nhw(self.opt)}, max {format_nhw(self.max)}"


@dataclass(frozen=True)
class OnnxFacts:
    """What the builder needs from the ONNX file, read with the ``onnx`` package (no TensorRT)."""

    path: Path
    metadata: dict[str, str]
    size_multiple: int
    precision: str  # "fp32", "fp16" or "int8": the feature precision of the graph
    io: str  # "fp32" or "fp16": the element type of the inputs/outputs
    form: str  # "explicit" or "plugin"
    fixed_dims: dict[str, int | None]  # "N", "H", "W" -> the static value, or None if dynamic
    plugin_nodes: tuple[str, ...]  # names of the pconv::PartialConv2d nodes
    plugin_nodes_without_namespace: tuple[str, ...]  # those the parser would not map to the plugin
    int8_activations: str | None = None  # int8 exports: "int8" (symmetric) or "uint8" (asymmetric)


def read_onnx_facts(onnx_path: str | Path) -> OnnxFacts:
    """Check that ``onnx_path`` is a pconv ONNX model and read its metadata, dims and plugin nodes."""
    path = Path(onnx_path)
    if not path.is_file():
        raise BuildError(f"ONNX file not found: {path}")
    if path.stat().st_size == 0:
        raise BuildError(f"ONNX file is empty: {path}")
    onnx: Any = require("onnx", "export", "the onnx package (needed to read the model's metadata)")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, onnx's own errors: any means "not ONNX"
        raise BuildError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get(META_FORMAT) != ONNX_FORMAT:
        raise BuildError(
            f"{path} is not a pconv ONNX model (no '{META_FORMAT}' = {ONNX_FORMAT!r} metadata): export "
            "one with `pconv export CHECKPOINT -o model.onnx`"
        )
    try:
        multiple = int(meta[META_MULTIPLE])
    except (KeyError, ValueError) as exc:
        raise BuildError(f"{path}: damaged pconv metadata ({exc}); re-export the model") from exc
    inputs = {vi.name: vi for vi in model.graph.input}
    missing = [name for name in INPUT_NAMES if name not in inputs]
    if missing:
        raise BuildError(f"{path} has no input(s) {missing}; re-export it with `pconv export`")
    dims = list(inputs["image"].type.tensor_type.shape.dim)
    if len(dims) != 4:
        raise BuildError(f"{path}: input 'image' must be 4-D (N, 3, H, W), got {len(dims)} dims")
    fixed: dict[str, int | None] = {}
    for axis, dim in zip("NHW", (dims[0], dims[2], dims[3])):
        fixed[axis] = int(dim.dim_value) if dim.HasField("dim_value") and dim.dim_value > 0 else None
    plugin_nodes = [
        n
        for n in model.graph.node
        if n.op_type == plugin_fields.PLUGIN_NAME and n.domain == plugin_fields.PLUGIN_DOMAIN
    ]
    without_ns = [n.name for n in plugin_nodes if "plugin_namespace" not in {a.name for a in n.attribute}]
    return OnnxFacts(
        path=path,
        metadata=meta,
        size_multiple=multiple,
        precision=meta.get(META_PRECISION, "fp32"),
        io=meta.get(META_IO, "fp32"),
        form=meta.get(META_FORM, "plugin" if plugin_nodes else "explicit"),
        fixed_dims=fixed,
        plugin_nodes=tuple(n.name for n in plugin_nodes),
        plugin_nodes_without_namespace=tuple(without_ns),
        int8_activations=meta.get(META_INT8_ACTIVATIONS),
    )


def resolve_profile(
    facts: OnnxFacts,
    min_shape: Shape3 | None = None,
    opt_shape: Shape3 | None = None,
    max_shape: Shape3 | None = None,
) -> Profile:
    """The profile to build, from the given shapes (any may be None) checked against the ONNX.

    Missing shapes: ``opt`` defaults to the given ``min``/``max``, and ``min``/``max`` to ``opt``;
    with none given, static ONNX dims are used and dynamic ones get batch 1, size from the model's
    size multiple (min) over 512 (opt) to 1024 (max). Checks: H and W are multiples of the size
    multiple, static ONNX dims are respected, and min <= opt <= max on every axis.
    """
    m = facts.size_multiple
    if min_shape is None and opt_shape is None and max_shape is None:
        defaults = {
            "min": (1, m, m),
            "opt": (1, round_up(DEFAULT_OPT_HW, m), round_up(DEFAULT_OPT_HW, m)),
            "max": (1, round_up(DEFAULT_MAX_HW, m), round_up(DEFAULT_MAX_HW, m)),
        }
        shapes: dict[str, Shape3] = {}
        for key, shape in defaults.items():
            n, h, w = (facts.fixed_dims[a] or v for a, v in zip("NHW", shape))
            shapes[key] = (n, h, w)
        lo, mid, hi = shapes["min"], shapes["opt"], shapes["max"]
        labels = {"min": "default min", "opt": "default opt", "max": "default max"}
    else:
        mid_given = opt_shape or min_shape or max_shape
        assert mid_given is not None
        mid = mid_given
        lo = min_shape or mid
        hi = max_shape or mid
        mid_flag = "--opt" if opt_shape else "--min" if min_shape else "--max"
        labels = {
            "opt": mid_flag,
            "min": "--min" if min_shape else mid_flag,
            "max": "--max" if max_shape else mid_flag,
        }
    profile = Profile(min=lo, opt=mid, max=hi)
    for key, shape in (("opt", mid), ("min", lo), ("max", hi)):
        label = labels[key]
        for axis, value in zip("NHW", shape):
            fixed = facts.fixed_dims[axis]
            if fixed is not None and value != fixed:
                raise BuildError(
                    f"{label} {format_nhw(shape)}: {facts.path.name} has a static {axis} = {fixed}, so "
                    f"every profile shape must use {axis} = {fixed} (or re-export with a dynamic {axis})"
                )
        for axis, value in zip("HW", shape[1:]):
            if value % m:
                lower = max(m, value // m * m)
                raise BuildError(
                    f"{label} {format_nhw(shape)}: {'height' if axis == 'H' else 'width'} {value} is not "
                    f"a multiple of {m} (2^depth for this model); use {lower} or {lower + m}"
                )
    for i, axis in enumerate("NHW"):
        if not lo[i] <= mid[i] <= hi[i]:
            raise BuildError(
                f"profile {profile.describe()}: {axis} must satisfy min <= opt <= max "
                f"({lo[i]} <= {mid[i]} <= {hi[i]} is false)"
            )
    return profile


# -- the report ---------------------------------------------------------------------------------
@dataclass
class BuildReport:
    """What ``pconv build`` built: printed by the CLI and returned by :func:`build_engine`."""

    engine_path: Path
    sidecar_path: Path
    onnx_path: Path
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str  # "fp32", "fp16", "fp16-flag" or "int8"
    strongly_typed: bool
    profile: Profile
    io_dtypes: dict[str, str]
    num_layers: int
    plugin_library: Path | None
    plugin_layers: list[str]
    engine_bytes: int
    build_seconds: float
    version_compatible: bool
    timing_cache: Path | None = None
    timing_cache_note: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def precision_text(self) -> str:
        return {
            "fp32": "FP32 (strongly typed" + (")" if self.strongly_typed else ", weakly typed)"),
            "fp16": "FP16 (strongly typed: FP16 features, FP32 mask path as exported)",
            "fp16-flag": "FP16 builder flag on an FP32 ONNX (weakly typed, TensorRT 10.x)",
            "int8": "INT8 explicit quantization (QDQ feature convolutions, FP32 mask path; "
            + ("strongly typed)" if self.strongly_typed else "INT8 builder flag, weakly typed)"),
        }.get(self.precision, self.precision)

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
        ]
        if self.plugin_layers:
            lines.append(
                f"plugin     {len(self.plugin_layers)} of {self.num_layers} network layers are "
                f"{plugin_fields.PLUGIN_NAMESPACE}::{plugin_fields.PLUGIN_NAME} "
                f"(from {self.plugin_library}): {', '.join(self.plugin_layers)}"
            )
        else:
            lines.append(f"plugin     none ({self.num_layers} network layers, standard TensorRT layers only)")
        if self.timing_cache is not None:
            lines.append(f"cache      {self.timing_cache} ({self.timing_cache_note})")
        lines += [f"warning    {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("engine_path", "sidecar_path", "onnx_path", "plugin_library", "timing_cache"):
            data[key] = None if data[key] is None else str(data[key])
        data["profile"] = {k: list(v) for k, v in asdict(self.profile).items()}
        data["compute_capability"] = list(self.compute_capability)
        return data


# -- the build ----------------------------------------------------------------------------------
def _require_tensorrt() -> tuple[int, ...]:
    """Import TensorRT (clear error naming the install command) and return its version."""
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
    return version


def _gpu(device: int) -> tuple[str, tuple[int, int]]:
    """Select ``device`` and return its name and compute capability (clear error without a GPU)."""
    try:
        cuda = Cuda()
    except MissingDependencyError as exc:
        raise MissingDependencyError(f"`pconv build` needs cuda-python: {exc}") from exc
    cuda.set_device(device)
    return cuda.device_properties(device)


def _parser_errors(parser: trt.OnnxParser) -> list[str]:
    """Every parser error with its node name, operator and local-function stack."""
    lines: list[str] = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        desc = str(err.desc()) if hasattr(err, "desc") else str(err)
        where = []
        node_name = err.node_name() if hasattr(err, "node_name") else ""
        node_op = err.node_operator() if hasattr(err, "node_operator") else ""
        if node_name:
            where.append(f"node {node_name!r}")
        if node_op:
            where.append(f"({node_op})")
        stack = list(err.local_function_stack()) if hasattr(err, "local_function_stack") else []
        if stack:
            where.append("in function " + " > ".join(stack))
        lines.append((" ".join(where) + ": " if where else "") + desc)
    return lines


def _parse_hint(facts: OnnxFacts, errors: list[str], plugin_loaded: bool) -> str:
    text = " ".join(errors)
    if plugin_fields.PLUGIN_NAME in text and not plugin_loaded:
        return (
            "the PartialConv2d nodes could not be imported as a function or plugin; load the plugin "
            "with --plugin LIB (build it with `pconv build-plugin`), or export --form explicit"
        )
    if "opset" in text.lower() or "ir_version" in text.lower() or "IR version" in text:
        return (
            "this TensorRT's parser does not support the model's opset/IR version: re-export with --opset 17"
        )
    return f"check that {facts.path.name} passes `pconv export`'s parity check; TensorRT cannot import it"


def _plugin_layer_names(trt_module: Any, network: trt.INetworkDefinition) -> tuple[list[str], int]:
    """Names of the network's plugin layers (IPluginV3, or V2 for completeness) and the layer count."""
    kinds = {
        getattr(trt_module.LayerType, name)
        for name in ("PLUGIN_V3", "PLUGIN_V2", "PLUGIN")
        if hasattr(trt_module.LayerType, name)
    }
    names = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in kinds:
            names.append(layer.name)
    return names, network.num_layers


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
    progress: bool = True,
) -> BuildReport:
    """Build ``output`` (a TensorRT engine) and ``output.json`` (its sidecar) from a pconv ONNX.

    ``min_shape``/``opt_shape``/``max_shape`` are ``(N, H, W)`` tuples for the dynamic profile
    (see :func:`resolve_profile` for defaults). ``plugin_library`` defaults to the package's built
    plugin (if present and the ONNX is plugin form); ``use_default_plugin=False`` builds the explicit
    function bodies instead. ``timing_cache`` is read if it exists and updated afterwards.
    ``fp16_flag`` (TensorRT 10.x only) builds an FP32 ONNX with the FP16 builder flag; TF32 is off
    unless ``allow_tf32``, so FP32 engines match ONNX Runtime closely.
    """
    from tqdm import tqdm

    output = Path(output)
    from pconv.terminal import show_progress

    steps = tqdm(total=6, desc="pconv build", unit="step", disable=not show_progress(progress), leave=False)
    warnings: list[str] = []

    def step(text: str) -> None:
        steps.set_postfix_str(text)
        logger.info("%s", text)

    try:
        # 1. The ONNX and the shapes: checked before TensorRT is even imported.
        step("checking the ONNX")
        facts = read_onnx_facts(onnx_path)
        profile = resolve_profile(facts, min_shape, opt_shape, max_shape)
        if workspace_gib <= 0:
            raise BuildError(f"--workspace must be positive (GiB), got {workspace_gib}")
        if plugin_library is not None and not Path(plugin_library).expanduser().is_file():
            raise BuildError(
                f"--plugin {plugin_library}: no such file; build the library with `pconv build-plugin` "
                "(it prints the path) or leave --plugin out to use the package's built one"
            )
        if fp16_flag and facts.precision == "fp16":
            raise BuildError(
                f"{facts.path.name} is already an FP16 ONNX; drop --fp16 (it is built strongly typed)"
            )
        check_int8_facts(facts, fp16_flag)
        steps.update()

        # 2. TensorRT and the GPU.
        step("starting TensorRT")
        version = _require_tensorrt()
        import tensorrt as trt

        trt_logger = make_trt_logger(trt, logging.getLogger("pconv.build.tensorrt"))
        if fp16_flag and (version[0] >= 11 or not hasattr(trt.BuilderFlag, "FP16")):
            raise BuildError(
                f"TensorRT {trt.__version__} has no FP16 builder flag (strong typing only): export an FP16 "
                "ONNX with `pconv export --precision fp16` and build that instead of using --fp16"
            )
        gpu_name, compute_capability = _gpu(device)
        try:
            builder = trt.Builder(trt_logger)
        except Exception as exc:  # pybind raises if createInferBuilder returns null
            raise BuildError(
                f"TensorRT could not start on GPU {device} ({exc}{log_tail(trt_logger)}): check the NVIDIA "
                "driver (`nvidia-smi`) and that TensorRT matches the installed CUDA"
            ) from exc
        steps.update()

        # 3. The plugin library, before parsing, so the parser can find the creator.
        step("loading the plugin")
        plugin_path: Path | None = None
        if plugin_library is not None:
            plugin_path = Path(plugin_library)
        elif use_default_plugin and facts.form == "plugin":
            plugin_path = find_library()
            if plugin_path is None:
                warnings.append(
                    "plugin-form ONNX but no plugin library found (build it with `pconv build-plugin` or "
                    "pass --plugin): TensorRT uses the nodes' explicit function bodies"
                )
        if plugin_path is not None:
            if facts.form != "plugin":
                warnings.append(
                    f"{facts.path.name} is explicit form (no PartialConv2d nodes): the plugin is not used; "
                    "export with `pconv export --form plugin` to use it"
                )
                plugin_path = None
            else:
                load_plugin_library(trt, plugin_path)
                if facts.plugin_nodes_without_namespace:
                    warnings.append(
                        f"{len(facts.plugin_nodes_without_namespace)} PartialConv2d nodes lack the "
                        "plugin_namespace attribute, so the parser will inline them; re-export the ONNX"
                    )
        steps.update()

        # 4. Parse.
        step("parsing the ONNX")
        int8_flag = facts.precision == "int8" and version[0] < 11
        strongly_typed = not (fp16_flag or int8_flag)
        flags = 0
        if strongly_typed and version[0] < 11:
            typed_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
            if typed_flag is None:
                raise BuildError(f"TensorRT {trt.__version__} cannot build strongly typed networks")
            flags |= 1 << int(typed_flag)
        # TensorRT 11.x networks are always strongly typed; EXPLICIT_BATCH is implied since 10.0.
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, trt_logger)  # must outlive the build (it owns the weights)
        parsed = parser.parse_from_file(str(facts.path))
        errors = _parser_errors(parser)
        if not parsed or errors:
            listing = "\n  - ".join(errors or [f"parse failed{log_tail(trt_logger)}"])
            raise BuildError(
                f"TensorRT {trt.__version__} cannot parse {facts.path.name}:\n  - {listing}\n"
                f"hint: {_parse_hint(facts, errors, plugin_path is not None)}"
            )
        plugin_layers, num_layers = _plugin_layer_names(trt, network)
        if plugin_path is not None and len(plugin_layers) < len(facts.plugin_nodes):
            too_old = version[:2] < PLUGIN_OVER_FUNCTION_VERSION
            why = (
                f"TensorRT {trt.__version__}'s parser prefers ONNX local functions over plugins "
                "(fixed in 10.7)"
                if too_old
                else "the registry's creator did not match the nodes' name/version/namespace"
            )
            warnings.append(
                f"only {len(plugin_layers)} of {len(facts.plugin_nodes)} PartialConv2d nodes became the "
                f"plugin: {why}; the others run as explicit layers"
            )
        io_dtypes: dict[str, str] = {}
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            io_dtypes[tensor.name] = _numpy_name(trt, tensor.dtype)
        for i in range(network.num_outputs):
            tensor = network.get_output(i)
            io_dtypes[tensor.name] = _numpy_name(trt, tensor.dtype)
        if sorted(io_dtypes) != sorted((*INPUT_NAMES, *OUTPUT_NAMES)):
            raise BuildError(
                f"{facts.path.name} has I/O {sorted(io_dtypes)}, "
                f"expected {sorted((*INPUT_NAMES, *OUTPUT_NAMES))}"
            )
        steps.update()

        # 5. Configure: profile, workspace, precision flags, timing cache, compatibility.
        step("configuring")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
        if fp16_flag:
            config.set_flag(trt.BuilderFlag.FP16)
        if int8_flag:  # explicit quantization: only the Q/DQ-wrapped convolutions run in int8
            config.set_flag(trt.BuilderFlag.INT8)
        tf32 = getattr(trt.BuilderFlag, "TF32", None)
        if tf32 is not None and not allow_tf32:
            config.clear_flag(tf32)
        if version_compatible:
            vc_flag = getattr(trt.BuilderFlag, "VERSION_COMPATIBLE", None)
            if vc_flag is None:
                raise BuildError(f"TensorRT {trt.__version__} cannot build version-compatible engines")
            config.set_flag(vc_flag)
            if plugin_layers and plugin_path is not None:
                # The plan carries the plugin library, so a newer TensorRT can run it.
                config.plugins_to_serialize = [str(plugin_path.resolve())]
        opt_profile = builder.create_optimization_profile()
        for name in INPUT_NAMES:
            c = INPUT_CHANNELS[name]
            shapes = [trt.Dims([s[0], c, s[1], s[2]]) for s in (profile.min, profile.opt, profile.max)]
            opt_profile.set_shape(name, shapes[0], shapes[1], shapes[2])
        if config.add_optimization_profile(opt_profile) < 0:
            raise BuildError(f"TensorRT rejected the profile {profile.describe()}{log_tail(trt_logger)}")
        cache_path = Path(timing_cache) if timing_cache is not None else None
        cache_note = ""
        cache_before = b""
        if cache_path is not None:
            cache_before = cache_path.read_bytes() if cache_path.is_file() else b""
            cache_note = _attach_timing_cache(config, cache_before, warnings)
        steps.update()

        # 6. Build and write (engine, then sidecar, then timing cache).
        step("building (this takes a while)")
        start = time.perf_counter()
        serialized = builder.build_serialized_network(network, config)
        seconds = time.perf_counter() - start
        if serialized is None:
            raise BuildError(
                f"TensorRT could not build the engine{log_tail(trt_logger)}: try a larger --workspace, a "
                "smaller --max profile, or --verbose for TensorRT's log"
            )
        # bytes() copies through the buffer protocol whatever format TensorRT's IHostMemory reports.
        data = bytes(serialized)
        engine_bytes = len(data)
        atomic_write_bytes(output, data)
        sidecar = EngineSidecar(
            onnx_metadata=dict(facts.metadata),
            tensorrt_version=str(trt.__version__),
            gpu_name=gpu_name,
            compute_capability=compute_capability,
            profile_min=profile.min,
            profile_opt=profile.opt,
            profile_max=profile.max,
            io_dtypes=io_dtypes,
            precision="fp16-flag" if fp16_flag else facts.precision,
            strongly_typed=strongly_typed,
            version_compatible=version_compatible,
            plugin_layers=tuple(plugin_layers),
            plugin_library=plugin_path.name if plugin_path is not None and plugin_layers else None,
            plugin_serialized=bool(version_compatible and plugin_layers),
            engine_bytes=engine_bytes,
            engine_sha256=_sha256(data),
            pconv_version=__version__,
            onnx_file=facts.path.name,
            # Where the library was at build time: the runtime's last resort if none is configured.
            extra={"plugin_library_path": str(plugin_path.resolve())}
            if plugin_path and plugin_layers
            else {},
        )
        side = atomic_write_bytes(sidecar_path(output), sidecar.to_json().encode())
        if cache_path is not None:
            cache_note = _save_timing_cache(config, cache_path, cache_before, cache_note, warnings)
        steps.update()
    finally:
        steps.close()

    report = BuildReport(
        engine_path=output,
        sidecar_path=side,
        onnx_path=facts.path,
        tensorrt_version=str(trt.__version__),
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        precision=sidecar.precision,
        strongly_typed=strongly_typed,
        profile=profile,
        io_dtypes=io_dtypes,
        num_layers=num_layers,
        plugin_library=plugin_path if plugin_layers else None,
        plugin_layers=plugin_layers,
        engine_bytes=engine_bytes,
        build_seconds=seconds,
        version_compatible=version_compatible,
        timing_cache=cache_path,
        timing_cache_note=cache_note,
        warnings=warnings,
    )
    for text in warnings:
        logger.warning("%s", text)
    if verbose:
        logger.info("report: %s", json.dumps(report.to_dict()))
    return report


def check_int8_facts(facts: OnnxFacts, fp16_flag: bool) -> None:
    """One-line errors for an INT8 ONNX TensorRT cannot build as exported (no TensorRT needed)."""
    if facts.precision != "int8":
        return
    if facts.int8_activations != INT8_TARGETS["tensorrt"]:
        raise BuildError(
            f"{facts.path.name} has {facts.int8_activations or 'unknown'} (asymmetric) activations for "
            "ONNX Runtime; TensorRT takes only symmetric int8: re-export with `pconv export CKPT -o "
            "model_int8_trt.onnx --precision int8 --calibration builtin --int8-target tensorrt`"
        )
    if fp16_flag:
        raise BuildError(
            f"{facts.path.name} is an INT8 ONNX: drop --fp16 (it would let TensorRT run the FP32 mask "
            "path in FP16; the INT8 engine keeps it FP32)"
        )


def _numpy_name(trt_module: Any, dtype: Any) -> str:
    import numpy as np

    return str(np.dtype(trt_module.nptype(dtype)))


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _attach_timing_cache(config: trt.IBuilderConfig, previous: bytes, warnings: list[str]) -> str:
    """Give the builder the cache's contents (or an empty cache); returns a note for the report."""
    note = "read and updated" if previous else "created"
    cache = None
    if previous:
        try:
            cache = config.create_timing_cache(previous)
        except Exception:  # a corrupt file: start over rather than fail the build
            cache = None
        if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
            warnings.append("the timing cache is from another GPU/TensorRT or damaged; starting a new one")
            note = "replaced (incompatible)"
            cache = None
    if cache is None:
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return note


def _save_timing_cache(
    config: trt.IBuilderConfig,
    path: Path,
    previous: bytes,
    note: str,
    warnings: list[str],
) -> str:
    """Write the builder's timing cache back, merged with what another build wrote meanwhile."""
    cache = config.get_timing_cache()
    if cache is None:
        warnings.append("TensorRT returned no timing cache; it was not saved")
        return "not saved"
    current = path.read_bytes() if path.is_file() else b""
    if current and current != previous:
        try:
            other = config.create_timing_cache(current)
            if other is None or not cache.combine(other, ignore_mismatch=True):
                warnings.append("could not merge the timing cache written by another build")
        except Exception as exc:
            warnings.append(f"could not merge the timing cache written by another build ({exc})")
    atomic_write_bytes(path, bytes(cache.serialize()))
    return note
