"""The plugin inside real TensorRT: registry loading, engine build, serialisation, execution.

Needs TensorRT, a CUDA GPU and the plugin library (built here from TensorRT's headers when they
are found, else taken from ``pconv.plugins.default_library_path()``); skips with the reason
otherwise. One-layer networks made with ``add_plugin_v3`` in strongly typed mode (TensorRT 10 and
11), FP32 and FP16, static and dynamic shapes (the output size comes from the plugin's
IExprBuilder arithmetic), compared with ``reference_partial_conv`` plus the activation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import requires_tensorrt

from pconv.config import LayerSpec, ModelConfig
from pconv.plugin_fields import FIELDS, PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION, attributes_for

pytestmark = [requires_tensorrt, pytest.mark.tensorrt]

SPECS = {s.name: s for s in ModelConfig(depth=3, width=0.25).layer_specs()}


@pytest.fixture(scope="module")
def trt_plugin(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tensorrt module with the plugin library loaded into its global registry."""
    import tensorrt as trt

    from pconv.plugins import TensorRTHeadersNotFound, find_library, find_tensorrt_include
    from pconv.plugins.build import build_plugin

    registry = trt.get_plugin_registry()
    if registry.get_creator(PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE) is None:
        library: Path | None
        try:
            include = find_tensorrt_include()
            out = tmp_path_factory.mktemp("trt_plugin") / "libpconv_plugin.so"
            import torch

            major, minor = torch.cuda.get_device_capability()
            arch = f"{major}{minor}"  # this GPU's architecture, whatever the default list
            library = build_plugin(
                tensorrt_include=include, archs=(arch,), out=out, show_progress=False
            ).library
        except TensorRTHeadersNotFound:
            library = find_library()
        if library is None:
            pytest.skip("no plugin library: install TensorRT's headers or run `pconv build-plugin` first")
        assert registry.load_library(str(library)) is not None
    assert registry.get_creator(PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE) is not None
    return trt


def _plugin_fields(trt: Any, spec: LayerSpec) -> Any:
    values = attributes_for(spec)
    fields = []
    for field in FIELDS:
        value = values[field.name]
        items = value if isinstance(value, list) else [value]
        if field.trt_type == "kINT32":
            fields.append(trt.PluginField(field.name, np.array(items, np.int32), trt.PluginFieldType.INT32))
        else:
            fields.append(
                trt.PluginField(field.name, np.array(items, np.float32), trt.PluginFieldType.FLOAT32)
            )
    return trt.PluginFieldCollection(fields)


def build_engine(trt: Any, spec: LayerSpec, weight: Any, bias: Any, fp16: bool, dims: dict[str, Any]) -> Any:
    """One plugin layer; ``dims`` maps "static" to (N, H, W) or "profile" to (min, opt, max) of those."""
    logger = trt.Logger(trt.Logger.WARNING)
    creator = trt.get_plugin_registry().get_creator(PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE)
    plugin = creator.create_plugin(spec.name, _plugin_fields(trt, spec), trt.TensorRTPhase.BUILD)
    assert plugin is not None
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    config = builder.create_builder_config()
    k = len(spec.mask_channel_weights)
    feature_type = trt.float16 if fp16 else trt.float32
    if "static" in dims:
        n, h, w = dims["static"]
        x_shape, m_shape = (n, spec.in_channels, h, w), (n, k, h, w)
    else:
        x_shape, m_shape = (-1, spec.in_channels, -1, -1), (-1, k, -1, -1)
        profile = builder.create_optimization_profile()
        lo, opt, hi = dims["profile"]
        for name, channels in (("x", spec.in_channels), ("mask", k)):
            profile.set_shape(name, *[(d[0], channels, d[1], d[2]) for d in (lo, opt, hi)])
        config.add_optimization_profile(profile)
    x = network.add_input("x", feature_type, x_shape)
    mask = network.add_input("mask", trt.float32, m_shape)
    np_type = np.float16 if fp16 else np.float32
    # TensorRT does not copy constant weights before the build: keep the arrays alive until then.
    w_array, b_array = np.ascontiguousarray(weight, np_type), np.ascontiguousarray(bias, np_type)
    w_const = network.add_constant(w_array.shape, trt.Weights(w_array))
    b_const = network.add_constant(b_array.shape, trt.Weights(b_array))
    layer = network.add_plugin_v3([x, mask, w_const.get_output(0), b_const.get_output(0)], [], plugin)
    layer.get_output(0).name = "y"
    layer.get_output(1).name = "new_mask"
    network.mark_output(layer.get_output(0))
    network.mark_output(layer.get_output(1))
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "engine build failed"
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)  # re-creates the plugin from its fields
    assert engine is not None
    return engine


def run_engine(engine: Any, x: Any, mask: Any, spec: LayerSpec) -> tuple[Any, Any]:
    import torch

    context = engine.create_execution_context()
    context.set_input_shape("x", tuple(x.shape))
    context.set_input_shape("mask", tuple(mask.shape))
    n, _, h, w = x.shape
    ho, wo = spec.output_size(h), spec.output_size(w)
    assert tuple(context.get_tensor_shape("y")) == (n, spec.out_channels, ho, wo)
    assert tuple(context.get_tensor_shape("new_mask")) == (n, 1, ho, wo)
    y = torch.empty(n, spec.out_channels, ho, wo, device="cuda", dtype=x.dtype)
    new_mask = torch.empty(n, 1, ho, wo, device="cuda", dtype=torch.float32)
    for name, tensor in (("x", x), ("mask", mask), ("y", y), ("new_mask", new_mask)):
        context.set_tensor_address(name, tensor.data_ptr())
    stream = torch.cuda.current_stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    return y, new_mask


def reference(x: Any, masks: Any, weight: Any, bias: Any, spec: LayerSpec) -> tuple[Any, Any]:
    import torch

    from pconv import formula
    from pconv.training.layers import TORCH_OPS
    from pconv.training.reference import reference_partial_conv

    full = torch.cat(
        [masks[:, j : j + 1].expand(-1, int(c), -1, -1) for j, c in enumerate(spec.mask_channel_weights)], 1
    )
    y, new_mask = reference_partial_conv(
        x.float(), full, weight, bias, spec.stride, spec.padding, spec.dilation
    )
    return formula.activate(y, spec.activation, spec.negative_slope, TORCH_OPS), new_mask


def inputs(spec: LayerSpec, n: int, h: int, w: int, seed: int) -> tuple[Any, Any, Any, Any]:
    import torch

    g = torch.Generator(device="cuda").manual_seed(seed)
    masks = (torch.rand(n, len(spec.mask_channel_weights), h, w, device="cuda", generator=g) > 0.3).float()
    masks[:, :, : h // 2, : w // 3] = 0.0
    weight = torch.randn(
        spec.out_channels, spec.in_channels, spec.kernel, spec.kernel, device="cuda", generator=g
    )
    weight /= (spec.in_channels * spec.kernel**2) ** 0.5
    bias = 0.1 * torch.randn(spec.out_channels, device="cuda", generator=g)
    parts = [masks[:, j : j + 1].expand(-1, int(c), -1, -1) for j, c in enumerate(spec.mask_channel_weights)]
    x = torch.randn(n, spec.in_channels, h, w, device="cuda", generator=g) * torch.cat(parts, 1)
    return x, masks, weight, bias


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
@pytest.mark.parametrize("name", ["enc1", "enc2", "dec2", "dec1"])
def test_plugin_layer_in_a_tensorrt_engine(trt_plugin: Any, name: str, fp16: bool) -> None:
    import torch

    torch.backends.cudnn.allow_tf32 = False
    spec = SPECS[name]
    x, masks, weight, bias = inputs(spec, 2, 24, 20, seed=len(name))
    if fp16:
        x, weight, bias = x.half(), weight.half(), bias.half()
    engine = build_engine(
        trt_plugin,
        spec,
        weight.float().cpu().numpy(),
        bias.float().cpu().numpy(),
        fp16,
        {"static": (2, 24, 20)},
    )
    y, new_mask = run_engine(engine, x, masks, spec)
    ref, ref_mask = reference(x, masks, weight.float(), bias.float(), spec)
    assert torch.equal(new_mask, ref_mask)
    tol = 1e-2 * ref.abs().max().item() if fp16 else 1e-4
    assert (y.float() - ref).abs().max().item() <= tol


def test_dynamic_shapes_follow_the_plugin_output_size(trt_plugin: Any) -> None:
    import torch

    torch.backends.cudnn.allow_tf32 = False
    spec = SPECS["enc1"]  # stride 2, kernel 7, pad 3: output size from IExprBuilder
    _, _, weight, bias = inputs(spec, 1, 8, 8, seed=0)
    profile = ((1, 8, 8), (2, 24, 24), (4, 41, 37))
    engine = build_engine(
        trt_plugin, spec, weight.cpu().numpy(), bias.cpu().numpy(), False, {"profile": profile}
    )
    for n, h, w in ((1, 8, 8), (3, 41, 30), (4, 17, 37)):
        x, masks, _, _ = inputs(spec, n, h, w, seed=h)
        y, new_mask = run_engine(engine, x, masks, spec)
        ref, ref_mask = reference(x, masks, weight, bias, spec)
        assert torch.equal(new_mask, ref_mask)
        assert (y - ref).abs().max().item() <= 1e-4
