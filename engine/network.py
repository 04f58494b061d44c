"""Step 4 of ``pconv build``: the typing decision and the ONNX parse into a TensorRT network.

Like Polygraphy's ``NetworkFromOnnxPath``: create the network with the right creation flags, parse,
and turn parser errors into one message with a hint. What the parse produced (which nodes became the
plugin, the I/O dtypes) is read back here because the report and the sidecar need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pconv import plugin_fields
from pconv.contract import INPUT_NAMES, OUTPUT_NAMES
from pconv.engine.errors import BuildError
from pconv.engine.facts import OnnxFacts
from pconv.trt.log import log_tail

if TYPE_CHECKING:
    import tensorrt as trt

#: First TensorRT whose ONNX parser prefers a registered plugin over a local function.
PLUGIN_OVER_FUNCTION_VERSION = (10, 7)


@dataclass(frozen=True)
class Typing:
    """How the network is typed: strongly (types from the graph) or weakly with builder flags.

    FP16 and INT8 ONNX files carry their types, so they build strongly typed; on 10.x ``--fp16``
    (FP16 flag on an FP32 graph) and INT8 QDQ (INT8 flag) build weakly typed. 11.x is always
    strongly typed.
    """

    strongly_typed: bool
    fp16_flag: bool
    int8_flag: bool
    precision: str  # the report's and sidecar's label: "fp32", "fp16", "fp16-flag" or "int8"

    @classmethod
    def decide(cls, version: tuple[int, ...], facts: OnnxFacts, fp16_flag: bool) -> Typing:
        int8_flag = facts.precision == "int8" and version[0] < 11
        return cls(
            strongly_typed=not (fp16_flag or int8_flag),
            fp16_flag=fp16_flag,
            int8_flag=int8_flag,
            precision="fp16-flag" if fp16_flag else facts.precision,
        )


@dataclass(frozen=True)
class Network:
    """A parsed network and what the build reads from it."""

    network: trt.INetworkDefinition
    parser: trt.OnnxParser  # must outlive the build: it owns the weights
    plugin_layers: tuple[str, ...]
    num_layers: int
    io_dtypes: dict[str, str]  # tensor name -> numpy dtype name


def creation_flags(trt: Any, version: tuple[int, ...], typed: Typing) -> int:
    """``create_network`` flags: STRONGLY_TYPED on 10.x when wanted (11.x: always; EXPLICIT_BATCH implied)."""
    if not typed.strongly_typed or version[0] >= 11:
        return 0
    typed_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if typed_flag is None:
        raise BuildError(f"TensorRT {trt.__version__} cannot build strongly typed networks")
    return 1 << int(typed_flag)


def parse(
    trt: Any, builder: trt.Builder, trt_logger: trt.ILogger, facts: OnnxFacts, flags: int, plugin_loaded: bool
) -> Network:
    """Parse ``facts.path`` into a new network; BuildError listing every parser error with a hint."""
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    parsed = parser.parse_from_file(str(facts.path))
    errors = parser_errors(parser)
    if not parsed or errors:
        listing = "\n  - ".join(errors or [f"parse failed{log_tail(trt_logger)}"])
        raise BuildError(
            f"TensorRT {trt.__version__} cannot parse {facts.path.name}:\n  - {listing}\n"
            f"hint: {parse_hint(facts, errors, plugin_loaded)}"
        )
    return Network(
        network=network,
        parser=parser,
        plugin_layers=plugin_layer_names(trt, network),
        num_layers=network.num_layers,
        io_dtypes=io_dtypes(trt, facts, network),
    )


def parser_errors(parser: trt.OnnxParser) -> list[str]:
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


def parse_hint(facts: OnnxFacts, errors: list[str], plugin_loaded: bool) -> str:
    """What to try after a failed parse, from the errors' text."""
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


def plugin_layer_names(trt: Any, network: trt.INetworkDefinition) -> tuple[str, ...]:
    """Names of the network's plugin layers (IPluginV3, or V2 for completeness)."""
    kinds = {
        getattr(trt.LayerType, name)
        for name in ("PLUGIN_V3", "PLUGIN_V2", "PLUGIN")
        if hasattr(trt.LayerType, name)
    }
    layers = (network.get_layer(i) for i in range(network.num_layers))
    return tuple(layer.name for layer in layers if layer.type in kinds)


def io_dtypes(trt: Any, facts: OnnxFacts, network: trt.INetworkDefinition) -> dict[str, str]:
    """``{tensor name: numpy dtype name}`` of the inputs and outputs, which must be pconv's four."""
    import numpy as np

    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    tensors += [network.get_output(i) for i in range(network.num_outputs)]
    found = {t.name: str(np.dtype(trt.nptype(t.dtype))) for t in tensors}
    expected = sorted((*INPUT_NAMES, *OUTPUT_NAMES))
    if sorted(found) != expected:
        raise BuildError(f"{facts.path.name} has I/O {sorted(found)}, expected {expected}")
    return found


def plugin_coverage_warning(
    trt_version: str, version: tuple[int, ...], facts: OnnxFacts, net: Network
) -> str | None:
    """Why fewer PartialConv2d nodes than expected became the plugin (with the library loaded)."""
    if len(net.plugin_layers) >= len(facts.plugin_nodes):
        return None
    why = (
        f"TensorRT {trt_version}'s parser prefers ONNX local functions over plugins (fixed in 10.7)"
        if version[:2] < PLUGIN_OVER_FUNCTION_VERSION
        else "the registry's creator did not match the nodes' name/version/namespace"
    )
    return (
        f"only {len(net.plugin_layers)} of {len(facts.plugin_nodes)} PartialConv2d nodes became the "
        f"plugin: {why}; the others run as explicit layers"
    )
