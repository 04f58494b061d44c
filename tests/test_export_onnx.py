"""ONNX export: parity with PyTorch (ORT and onnx.reference), graph structure, FP16, errors."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import make_tiny_model
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

import pconv
from pconv import plugin_fields
from pconv.config import ModelConfig
from pconv.contract import (
    MASK_CONVENTION,
    META_CONFIG,
    META_FORM,
    META_FORMAT,
    META_MASK,
    META_MULTIPLE,
    META_PRECISION,
    META_VERSION,
    ONNX_FORMAT,
)
from pconv.errors import PconvError
from pconv.export.onnx_export import (
    DEFAULT_OPSET,
    META_IO,
    MIN_OPSET,
    build_model,
    export_onnx,
    phase_kernel,
    subpixel_kernel,
)
from pconv.training.unet import composite

FP32_ATOL = 1e-5
FP16_ATOL = 1e-2


def random_inputs(batch: int, h: int, w: int, hole_ratios: list[float], seed: int = 0):
    """Image in [0,1] and a binary mask per batch element with the given fraction of hole pixels."""
    rng = np.random.default_rng(seed)
    image = rng.random((batch, 3, h, w), dtype=np.float32)
    mask = np.stack([(rng.random((1, h, w)) >= r).astype(np.float32) for r in hole_ratios])
    for i, r in enumerate(hole_ratios):  # exact extremes: all valid / all hole
        if r == 0.0:
            mask[i] = 1.0
        elif r == 1.0:
            mask[i] = 0.0
    return image, mask


def torch_outputs(model, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The PyTorch model's ``output`` and ``composite`` in FP32."""
    img, msk = torch.from_numpy(image), torch.from_numpy(mask)
    with torch.no_grad():
        out = model(img, msk)
        return out.numpy(), composite(img, msk, out).numpy()


def _mask_sum_float64(xs, masks):
    total = None
    for x, m in zip(xs, masks):
        m64 = m.detach().double()
        part = m64 * x.shape[1] if m64.shape[1] == 1 else m64.sum(dim=1, keepdim=True)
        total = part if total is None else total + part
    return total


def torch_exact(model, image: np.ndarray, mask: np.ndarray, monkeypatch) -> tuple[np.ndarray, np.ndarray]:
    """The same PyTorch model evaluated in float64: the ground truth for the 1e-5 FP32 bound.

    PyTorch's own FP32 result is up to ~1.4e-5 away from it on the tiny model (outputs reach
    |x| ~ 25 with untrained weights), so FP32-vs-FP32 would measure PyTorch's rounding, not the
    export's. The layer computes its mask sums in FP32 by design; the patch only lifts that to
    float64 for this ground truth.
    """
    from pconv.training.layers import PartialConv2d

    monkeypatch.setattr(PartialConv2d, "channel_mask_sum", staticmethod(_mask_sum_float64))
    model64 = copy.deepcopy(model).double()
    img, msk = torch.from_numpy(image).double(), torch.from_numpy(mask).double()
    with torch.no_grad():
        out = model64(img, msk)
        return out.numpy(), composite(img, msk, out).numpy()


def run_ort(path: Path, image: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output", "composite"], {"image": image, "mask": mask})


def run_reference(path: Path, image: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    outputs = ReferenceEvaluator(str(path)).run(["output", "composite"], {"image": image, "mask": mask})
    return list(outputs)


RUNNERS = {"ort": run_ort, "reference": run_reference}
CASES = [  # (batch, H, W, hole ratios per batch element)
    (1, 16, 16, [0.3]),
    (3, 24, 40, [0.0, 0.5, 1.0]),
    (3, 32, 16, [0.1, 0.9, 0.7]),
    (1, 40, 24, [1.0]),
    (1, 16, 32, [0.0]),
]


@pytest.fixture(scope="module")
def model():
    return make_tiny_model()


@pytest.mark.parametrize("runner", sorted(RUNNERS))
@pytest.mark.parametrize("form", ["explicit", "plugin"])
@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"n{c[0]}_{c[1]}x{c[2]}_holes{'-'.join(map(str, c[3]))}"
)
def test_fp32_parity_with_pytorch(tiny_onnx_factory, model, form, runner, case, monkeypatch) -> None:
    """Untrained tiny model (|output| up to ~27): ORT / onnx.reference within 1e-5 of PyTorch run
    in float64. At this output scale FP32 PyTorch itself is up to ~1.4e-5 from float64, so the
    literal FP32-vs-FP32 bound is checked at image scale by
    :func:`test_fp32_three_way_parity_at_image_scale`."""
    batch, h, w, ratios = case
    image, mask = random_inputs(batch, h, w, ratios, seed=h * w + batch)
    want_out, want_comp = torch_exact(model, image, mask, monkeypatch)
    fp32_out, _ = torch_outputs(model, image, mask)
    assert np.abs(fp32_out - want_out).max() <= 3e-5  # PyTorch FP32 itself, for scale
    out, comp = RUNNERS[runner](tiny_onnx_factory(form, "fp32"), image, mask)
    assert out.shape == want_out.shape and out.dtype == np.float32
    # 1e-5, or 1e-6 of the output scale where that is larger (|x| ~ 27: about 13 FP32 ulps; PyTorch's
    # own FP32 result above may be 3e-5 away). onnx 1.23's reference evaluator lands 1.66e-5 away on
    # one case here; at image scale the plain 1e-5 is checked below.
    tolerance = max(FP32_ATOL, 1e-6 * float(np.abs(want_out).max()))
    assert np.abs(out - want_out).max() <= tolerance
    assert np.abs(comp - want_comp).max() <= tolerance
    valid = np.broadcast_to(mask > 0.5, comp.shape)
    assert np.array_equal(comp[valid], image[valid])  # exactly the input where the mask is valid


def make_image_scale_model(scale: float = 1 / 30):
    """The tiny model with its last layer scaled so outputs have image scale (about [-0.1, 1.3]).

    The untrained tiny model's outputs reach |x| ~ 27, where one FP32 ulp is ~2e-6 and PyTorch's
    own rounding alone exceeds 1e-5 (see :func:`torch_exact`). A trained model's outputs lie
    near [0, 1]; scaling the last (linear, BatchNorm-free) layer gives that scale without
    training, so the issue's literal FP32-vs-FP32 bound can be checked meaningfully.
    """
    model = make_tiny_model()
    last = model.layers[model.specs[-1].name].conv
    assert not model.specs[-1].batch_norm and model.specs[-1].activation == "none"
    with torch.no_grad():
        last.weight.mul_(scale)
        last.bias.mul_(scale)
    return model


@pytest.fixture(scope="module")
def image_scale_model():
    return make_image_scale_model()


@pytest.mark.parametrize("form", ["explicit", "plugin"])
def test_fp32_three_way_parity_at_image_scale(image_scale_model, tmp_path, form) -> None:
    """The issue's literal bound: PyTorch FP32, ORT and onnx.reference pairwise max-abs <= 1e-5."""
    path = export_onnx(image_scale_model, tmp_path / f"{form}.onnx", form=form)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = ReferenceEvaluator(str(path))
    for batch, h, w, ratios in CASES:
        image, mask = random_inputs(batch, h, w, ratios, seed=h * w + batch)
        torch_out, torch_comp = torch_outputs(image_scale_model, image, mask)
        if min(ratios) < 1.0:  # image scale, not a near-constant output
            assert 0.5 < np.abs(torch_out).max() < 2.0
        feeds = {"image": image, "mask": mask}
        ort_out, ort_comp = session.run(["output", "composite"], feeds)
        ref_out, ref_comp = reference.run(["output", "composite"], feeds)
        for a, b in [(ort_out, torch_out), (ref_out, torch_out), (ort_out, ref_out)]:
            assert np.abs(a - b).max() <= FP32_ATOL
        for a, b in [(ort_comp, torch_comp), (ref_comp, torch_comp), (ort_comp, ref_comp)]:
            assert np.abs(a - b).max() <= FP32_ATOL


@pytest.mark.parametrize("form", ["explicit", "plugin"])
def test_fp16_at_image_scale_within_1e2_on_both_runners(image_scale_model, tmp_path, form) -> None:
    """FP16 export vs FP32 PyTorch <= 1e-2 for ORT and onnx.reference alike (no extra margin)."""
    path = export_onnx(image_scale_model, tmp_path / f"{form}16.onnx", form=form, precision="fp16")
    image, mask = random_inputs(3, 24, 40, [0.0, 0.6, 1.0], seed=3)
    want_out, want_comp = torch_outputs(image_scale_model, image, mask)
    for runner in RUNNERS.values():
        out, comp = runner(path, image, mask)
        assert np.isfinite(out).all() and np.isfinite(comp).all()
        assert np.abs(out - want_out).max() <= FP16_ATOL
        assert np.abs(comp - want_comp).max() <= FP16_ATOL


def _all_values_as_outputs(m: onnx.ModelProto) -> onnx.ModelProto:
    """Inline the local functions and expose every intermediate tensor as a graph output."""
    from onnx import inliner, shape_inference

    inlined = shape_inference.infer_shapes(inliner.inline_local_functions(m), strict_mode=True)
    graph = inlined.graph
    known = {v.name for v in graph.output}
    for value in graph.value_info:
        if value.name not in known:
            graph.output.append(value)
    return inlined


@pytest.mark.parametrize("form", ["explicit", "plugin"])
def test_fp16_no_nan_or_inf_anywhere_for_all_hole_inputs(tiny_onnx_factory, form) -> None:
    """Every intermediate tensor (function bodies inlined) stays finite, also for all-hole masks."""
    m = _all_values_as_outputs(onnx.load(str(tiny_onnx_factory(form, "fp16"))))
    assert len(m.graph.output) > 50
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    image, mask = random_inputs(2, 16, 24, [1.0, 0.97], seed=11)
    names = [o.name for o in m.graph.output]
    for name, value in zip(names, session.run(names, {"image": image, "mask": mask})):
        if np.issubdtype(value.dtype, np.floating):
            assert np.isfinite(value).all(), name


@pytest.mark.parametrize("form", ["explicit", "plugin"])
def test_fp16_mask_path_stays_fp32(tiny_onnx_factory, form) -> None:
    """Window sums, ratios and new masks are FP32; feature convolutions are FP16."""
    m = _all_values_as_outputs(onnx.load(str(tiny_onnx_factory(form, "fp16"))))
    types = {v.name: v.type.tensor_type.elem_type for v in m.graph.output}
    mask_ops = [n for n in m.graph.node if n.op_type in ("Clip", "Max", "Div")]
    assert mask_ops
    for node in mask_ops:
        assert types[node.output[0]] == onnx.TensorProto.FLOAT, node.name
    convs = [n for n in m.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    fp32_convs = [n for n in convs if types[n.output[0]] == onnx.TensorProto.FLOAT]
    fp16_convs = [n for n in convs if types[n.output[0]] == onnx.TensorProto.FLOAT16]
    assert len(fp32_convs) == 6 and len(fp16_convs) >= 6  # one FP32 mask sum per layer
    assert len(fp32_convs) + len(fp16_convs) == len(convs)


@pytest.mark.parametrize("form", ["explicit", "plugin"])
def test_resize_decoder_variant_matches_too(model, tmp_path, form, monkeypatch) -> None:
    path = export_onnx(model, tmp_path / "r.onnx", form=form, decoder="resize")
    image, mask = random_inputs(2, 24, 32, [0.4, 1.0])
    want, _ = torch_exact(model, image, mask, monkeypatch)
    assert np.abs(run_ort(path, image, mask)[0] - want).max() <= FP32_ATOL


def test_subpixel_kernel_equals_upsample_then_conv() -> None:
    rng = np.random.default_rng(1)
    h = torch.from_numpy(rng.standard_normal((2, 5, 6, 7)))
    weight = rng.standard_normal((4, 5, 3, 3))
    want = torch.nn.functional.conv2d(
        torch.nn.functional.interpolate(h, scale_factor=2.0, mode="nearest"),
        torch.from_numpy(weight),
        padding=1,
    )
    got = torch.nn.functional.conv_transpose2d(
        h, torch.from_numpy(subpixel_kernel(weight)), stride=2, padding=1
    )
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-12)


def test_phase_kernels_equal_upsample_then_conv() -> None:
    rng = np.random.default_rng(2)
    h = torch.from_numpy(rng.standard_normal((1, 4, 5, 6)))
    weight = rng.standard_normal((3, 4, 3, 3))
    want = torch.nn.functional.conv2d(
        torch.nn.functional.interpolate(h, scale_factor=2.0, mode="nearest"),
        torch.from_numpy(weight),
        padding=1,
    )
    for a in (0, 1):
        for b in (0, 1):
            padded = torch.nn.functional.pad(h, (1 - b, b, 1 - a, a))  # left, right, top, bottom
            got = torch.nn.functional.conv2d(padded, torch.from_numpy(phase_kernel(weight, a, b)))
            assert torch.allclose(got, want[:, :, a::2, b::2], atol=1e-12)


def test_explicit_decoder_runs_on_low_resolution_features(tiny_onnx_factory, model) -> None:
    m = onnx.load(str(tiny_onnx_factory("explicit", "fp32")))
    ops = Counter(n.op_type for n in m.graph.node)
    wide = [s for s in model.specs if s.upsample_input and s.out_channels >= 16]
    narrow = [s for s in model.specs if s.upsample_input and s.out_channels < 16]
    assert wide and narrow  # the tiny model exercises both paths
    assert ops["DepthToSpace"] == len(wide) and ops["ConvTranspose"] == len(narrow)
    assert ops["Resize"] == len(wide) + len(narrow)  # only the single-channel masks are upsampled


@pytest.mark.parametrize("runner", sorted(RUNNERS))
@pytest.mark.parametrize("form", ["explicit", "plugin"])
def test_fp16_is_finite_and_close_to_fp32_pytorch(tiny_onnx_factory, model, form, runner) -> None:
    image, mask = random_inputs(3, 24, 40, [0.0, 0.6, 1.0], seed=3)
    want_out, _ = torch_outputs(model, image, mask)
    path = tiny_onnx_factory(form, "fp16")
    out, comp = RUNNERS[runner](path, image, mask)
    assert out.dtype == np.float32  # I/O stays FP32 by default
    assert np.isfinite(out).all() and np.isfinite(comp).all()
    # The untrained model's outputs reach |x| ~ 10, where one FP16 step is ~0.008: 1e-2 of the output
    # scale, not absolute (the absolute 1e-2 is held at image scale, above). onnx.reference runs FP16
    # convolutions with FP16 accumulation (numpy): allow twice the margin.
    scale = max(1.0, float(np.abs(want_out).max()))
    assert np.abs(out - want_out).max() <= FP16_ATOL * scale * (1 if runner == "ort" else 2)
    assert np.abs(out[2] - want_out[2]).max() <= 1e-3  # all hole: the output is the bias path only


def test_fp16_io(model, tmp_path) -> None:
    path = export_onnx(model, tmp_path / "io16.onnx", precision="fp16", io="fp16")
    graph = onnx.load(str(path)).graph
    for value in [*graph.input, *graph.output]:
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    image, mask = random_inputs(2, 16, 24, [0.5, 1.0])
    out, comp = run_ort(path, image.astype(np.float16), mask.astype(np.float16))
    want, _ = torch_outputs(model, image.astype(np.float16).astype(np.float32), mask)
    assert out.dtype == np.float16 and np.isfinite(out).all()
    assert np.abs(out.astype(np.float32) - want).max() <= 2 * FP16_ATOL
    valid = np.broadcast_to(mask > 0.5, comp.shape)
    assert np.array_equal(comp[valid], image.astype(np.float16)[valid])


@pytest.mark.slow
def test_full_512_depth8_fp32_matches_pytorch(tmp_path) -> None:
    """The paper-size network (untrained, |output| up to ~40) against PyTorch FP32: ORT only."""
    full = make_tiny_model(depth=8, width=1.0, seed=1)
    path = export_onnx(full, tmp_path / "full.onnx")
    image, mask = random_inputs(1, 512, 512, [0.3], seed=5)
    want, _ = torch_outputs(full, image, mask)
    out, _ = run_ort(path, image, mask)
    assert np.abs(out - want).max() <= 1e-4


def test_dynamic_shapes_one_file_several_sizes(tiny_onnx_factory, model, monkeypatch) -> None:
    path = tiny_onnx_factory("explicit", "fp32")
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["N", "", "H", "W"] and dims[1].dim_value == 3
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, h, w in [(1, 8, 8), (2, 16, 48), (1, 56, 24), (4, 32, 32)]:
        image, mask = random_inputs(batch, h, w, [0.4] * batch, seed=batch + h)
        out, _ = session.run(["output", "composite"], {"image": image, "mask": mask})
        assert out.shape == (batch, 3, h, w)
        assert np.abs(out - torch_exact(model, image, mask, monkeypatch)[0]).max() <= FP32_ATOL


def test_fixed_shape_export(model, tmp_path, monkeypatch) -> None:
    path = export_onnx(model, tmp_path / "fixed.onnx", batch=2, height=16, width=24)
    graph = onnx.load(str(path)).graph
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        values = [d.dim_value for d in dims]
        assert values[0] == 2 and values[2:] == [16, 24]
    image, mask = random_inputs(2, 16, 24, [0.2, 0.8])
    want = torch_exact(model, image, mask, monkeypatch)[0]
    assert np.abs(run_ort(path, image, mask)[0] - want).max() <= FP32_ATOL


def test_metadata_for_the_runtime(tiny_onnx_factory, model) -> None:
    m = onnx.load(str(tiny_onnx_factory("plugin", "fp16")))
    props = {p.key: p.value for p in m.metadata_props}
    assert props[META_FORMAT] == ONNX_FORMAT
    assert ModelConfig.from_json(props[META_CONFIG]) == model.config
    assert props[META_MULTIPLE] == str(2**model.config.depth)
    assert props[META_MASK] == MASK_CONVENTION
    assert props[META_FORM] == "plugin" and props[META_PRECISION] == "fp16"
    assert props[META_VERSION] == pconv.__version__
    assert props[META_IO] == "fp32"


@pytest.mark.parametrize("form", ["explicit", "plugin"])
def test_graph_contract_names_dims_and_default_opset(tiny_onnx_factory, form) -> None:
    graph_model = onnx.load(str(tiny_onnx_factory(form, "fp32")))
    graph = graph_model.graph
    assert [v.name for v in graph.input] == ["image", "mask"]
    assert [v.name for v in graph.output] == ["output", "composite"]
    for value, channels in zip([*graph.input, *graph.output], [3, 1, 3, 3]):
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == ["N", channels, "H", "W"]
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert next(o.version for o in graph_model.opset_import if o.domain == "") == DEFAULT_OPSET == 18


def _initializers(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


def test_explicit_form_ops_and_single_channel_mask_convs(tiny_onnx_factory, model) -> None:
    m = onnx.load(str(tiny_onnx_factory("explicit", "fp32")))
    ops = Counter(n.op_type for n in m.graph.node)
    n_layers = len(model.specs)
    assert {"Conv", "Clip", "Max", "Div", "Mul", "Resize", "Concat"} <= set(ops)
    assert ops["Clip"] == n_layers and ops["Max"] == n_layers  # one ratio / new mask per layer
    assert "Identity" not in ops and "Cast" not in ops  # FP32 in, FP32 out: nothing to cast
    assert not {"BatchNormalization", "Dropout"} & set(ops)  # BatchNorm folded, nothing for training
    inits = _initializers(m)
    # Layer outputs are stored masked: every feature convolution reads an activation's output
    # (or the masked input image), never a fresh input masking.
    producers = {o: n for n in m.graph.node for o in n.output}
    for node in m.graph.node:
        if node.op_type in ("Conv", "ConvTranspose") and not node.input[1].endswith("mask_kernel"):
            source = producers[node.input[0]]
            assert source.op_type in ("Relu", "LeakyRelu") or source.output[0] == "input/masked", node.name
    mask_convs = 0
    specs = {s.name: s for s in model.specs}
    for node in m.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        weight = inits[node.input[1]]
        constant = np.all(weight == weight.flat[0])
        assert not (constant and weight.shape[0] > 1), f"{node.name}: a C_out x C_in constant conv"
        if node.input[1].endswith("mask_kernel"):
            spec = specs[node.name.split("/")[0]]
            k = len(spec.mask_channel_weights)
            assert weight.shape == (1, k, spec.kernel, spec.kernel)
            for j, w in enumerate(spec.mask_channel_weights):
                assert np.all(weight[0, j] == w)
            mask_convs += 1
    assert mask_convs == n_layers


def test_no_clutter_onnxscript_optimizer_finds_nothing(tiny_onnx_factory) -> None:
    from onnxscript import optimizer

    m = onnx.load(str(tiny_onnx_factory("explicit", "fp32")))
    optimized = optimizer.optimize(onnx.load(str(tiny_onnx_factory("explicit", "fp32"))))
    assert Counter(n.op_type for n in optimized.graph.node) == Counter(n.op_type for n in m.graph.node)
    assert len(optimized.graph.initializer) == len(m.graph.initializer)


@pytest.mark.parametrize("form", ["explicit", "plugin"])
def test_fp16_casts_are_all_needed(tiny_onnx_factory, model, form) -> None:
    m = onnx.load(str(tiny_onnx_factory(form, "fp16")))
    graph_nodes = list(m.graph.node)
    bodies = [n for f in m.functions for n in f.node]
    assert not [n for n in graph_nodes + bodies if n.op_type == "Identity"]
    casts = [n for n in graph_nodes if n.op_type == "Cast"]
    per_layer = 2 if form == "explicit" else 0  # ratio and new mask -> FP16 (in the function: CastLike)
    assert len(casts) == 2 + per_layer * len(model.specs)  # image -> FP16 once, output -> FP32 once
    producers = {o: n for n in graph_nodes for o in n.output}
    for cast in casts:  # never a cast of a cast
        assert producers.get(cast.input[0]) is None or producers[cast.input[0]].op_type != "Cast"
    weights = [t for t in m.graph.initializer if t.dims and len(t.dims) == 4 and t.dims[0] > 1]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights if "mask" not in t.name)


def test_plugin_nodes_carry_the_field_list(tiny_onnx_factory, model) -> None:
    m = onnx.load(str(tiny_onnx_factory("plugin", "fp32")))
    nodes = [n for n in m.graph.node if n.op_type == plugin_fields.PLUGIN_NAME]
    assert len(nodes) == len(model.specs)
    assert not [n for n in m.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert not [n for n in m.graph.node if n.op_type in ("Identity", "Cast")]  # FP32: nothing to cast
    initializers = _initializers(m)
    for node, spec in zip(nodes, model.specs):
        assert node.domain == plugin_fields.PLUGIN_DOMAIN
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        parser = {k: attrs.pop(k).decode() for k in plugin_fields.PARSER_ATTRIBUTES}
        assert parser == plugin_fields.PARSER_ATTRIBUTES
        attrs = {k: list(v) if isinstance(v, list) else v for k, v in attrs.items()}
        expected = plugin_fields.attributes_for(spec)
        assert attrs.keys() == expected.keys()
        for key, value in expected.items():  # floats went through float32 attributes
            assert attrs[key] == pytest.approx(value), key
        plugin_fields.validate(attrs)
        assert len(node.input) == len(plugin_fields.INPUTS) and len(node.output) == len(plugin_fields.OUTPUTS)
        weight, bias = (initializers[name] for name in node.input[2:])  # weights are initializers
        assert weight.shape == (spec.out_channels, spec.in_channels, spec.kernel, spec.kernel)
        assert bias.shape == (spec.out_channels,)
    (function,) = m.functions
    assert (function.domain, function.name) == (plugin_fields.PLUGIN_DOMAIN, plugin_fields.PLUGIN_NAME)
    assert list(function.input) == list(plugin_fields.INPUTS)
    assert list(function.output) == list(plugin_fields.OUTPUTS)
    declared = set(function.attribute)
    assert {f.name for f in plugin_fields.FIELDS} | set(plugin_fields.PARSER_ATTRIBUTES) == declared
    body_ops = Counter(n.op_type for n in function.node)
    assert body_ops["Conv"] == 2 and body_ops["CastLike"] == 3 and body_ops["PRelu"] == 1
    assert {o.domain for o in m.opset_import} == {"", plugin_fields.PLUGIN_DOMAIN}


@pytest.mark.parametrize("opset", [MIN_OPSET, 17, 21])
@pytest.mark.parametrize("form", ["explicit", "plugin"])
def test_selectable_opset(model, tmp_path, opset, form, monkeypatch) -> None:
    path = export_onnx(model, tmp_path / f"o{opset}.onnx", form=form, opset=opset)
    m = onnx.load(str(path))
    assert next(o.version for o in m.opset_import if o.domain == "") == opset
    image, mask = random_inputs(1, 16, 16, [0.5])
    want = torch_exact(model, image, mask, monkeypatch)[0]
    assert np.abs(run_ort(path, image, mask)[0] - want).max() <= FP32_ATOL


def test_checker_full_check_passes(tiny_onnx_factory) -> None:
    for form in ("explicit", "plugin"):
        for precision in ("fp32", "fp16"):
            onnx.checker.check_model(onnx.load(str(tiny_onnx_factory(form, precision))), full_check=True)


def test_clear_errors(model, tmp_path) -> None:
    with pytest.raises(PconvError, match="multiple of 2\\^depth = 8"):
        export_onnx(model, tmp_path / "x.onnx", height=20, width=16)
    with pytest.raises(PconvError, match="opset 12 is too old"):
        build_model(model, opset=12)
    with pytest.raises(PconvError, match="form must be"):
        build_model(model, form="fused")  # type: ignore[arg-type]
    from safetensors.torch import save_file

    stranger = tmp_path / "stranger.safetensors"
    save_file({"w": torch.zeros(2)}, str(stranger))
    with pytest.raises(PconvError, match="not a pconv checkpoint"):
        export_onnx(stranger, tmp_path / "y.onnx")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(PconvError):
        export_onnx(junk, tmp_path / "z.onnx")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()


def test_export_from_checkpoint_path(tiny_checkpoint, tmp_path, monkeypatch) -> None:
    path = export_onnx(tiny_checkpoint, tmp_path / "from_ckpt.onnx")
    image, mask = random_inputs(1, 16, 24, [0.3])
    want = torch_exact(make_tiny_model(), image, mask, monkeypatch)[0]
    assert np.abs(run_ort(path, image, mask)[0] - want).max() <= FP32_ATOL
