"""Every bad input or bad model gets one clear PconvError subclass, never a deep traceback."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from pconv.errors import PconvError
from pconv.runtime import (
    BackendUnavailableError,
    DeviceInputError,
    ImageFileError,
    Inpainter,
    InputError,
    ModelLoadError,
    open_backend,
)
from pconv.runtime.backend import model_info_from_metadata
from pconv.runtime.imageio import read_image, read_mask
from pconv.trt import tensorrt_available


@pytest.fixture(scope="module")
def inpainter(tiny_onnx_factory) -> Inpainter:
    return Inpainter(tiny_onnx_factory())


IMAGE = np.zeros((16, 24, 3), np.uint8)
MASK = np.ones((16, 24), np.uint8)


@pytest.mark.parametrize(
    ("image", "mask", "match"),
    [
        (IMAGE, np.ones((16, 23), np.uint8), "16x23 .* image is 16x24"),
        (np.zeros((16, 24), np.uint8), MASK, "grayscale"),
        (np.zeros((16, 24, 4), np.uint8), MASK, "RGBA"),
        (np.zeros((3, 16, 24), np.uint8), np.ones((3, 16)), "CHW"),
        (np.zeros((16, 24, 3), np.int32), MASK, "dtype int32"),
        (np.zeros((16, 24, 3), np.uint16), MASK, "dtype uint16"),
        (np.zeros((0, 24, 3), np.uint8), np.ones((0, 24)), "empty"),
        (np.full((16, 24, 3), np.nan, np.float32), MASK, "NaN or Inf"),
        (np.full((16, 24, 3), np.inf, np.float32), MASK, "NaN or Inf"),
        (np.full((16, 24, 3), 255.0, np.float32), MASK, r"must be in \[0, 1\]"),
        (IMAGE, np.ones((16, 24, 3), np.uint8), "2-D"),
        (IMAGE, np.full((16, 24), np.nan), "mask contains NaN"),
        (IMAGE, "mask.png", "2-D numpy array or a PIL image"),
        ("image.png", MASK, "numpy HWC array or a PIL image"),
        ([IMAGE, IMAGE], [MASK], "2 images"),
        ([], [], "empty"),
        (np.stack([IMAGE, IMAGE]), np.stack([MASK] * 3), "3 masks for 2 images"),
    ],
)
def test_bad_inputs_raise_one_input_error(inpainter: Inpainter, image, mask, match: str) -> None:
    with pytest.raises(InputError, match=match):
        inpainter(image, mask)


def test_bad_options(inpainter: Inpainter) -> None:
    with pytest.raises(InputError, match="strategy must be one of"):
        inpainter(IMAGE, MASK, strategy="tiles")
    with pytest.raises(InputError, match="batch_size"):
        inpainter(IMAGE, MASK, batch_size=0)


def test_pil_image_in_wrong_mode(inpainter: Inpainter) -> None:
    from PIL import Image

    with pytest.raises(InputError, match=r"convert\('RGB'\) \(an alpha channel is not inpainted\)"):
        inpainter(Image.new("RGBA", (24, 16)), MASK)
    with pytest.raises(InputError, match=r"mode 'L'; .*convert\('RGB'\)$"):
        inpainter(Image.new("L", (24, 16)), MASK)


class _DeviceArray:
    """Any object exposing ``__cuda_array_interface__`` (CuPy, torch CUDA, PyCUDA) is a GPU input."""

    __cuda_array_interface__: ClassVar[dict[str, object]] = {
        "shape": (1, 3, 16, 16),
        "typestr": "<f4",
        "data": (0, False),
        "version": 3,
    }


def test_gpu_inputs_on_a_backend_without_device_support(inpainter: Inpainter) -> None:
    with pytest.raises(DeviceInputError, match="mask_is_hole=False"):
        inpainter(_DeviceArray(), _DeviceArray())
    with pytest.raises(DeviceInputError, match="onnxruntime backend cannot take GPU arrays"):
        inpainter(_DeviceArray(), _DeviceArray(), mask_is_hole=False)
    with pytest.raises(InputError, match="GPU array"):
        inpainter([IMAGE, _DeviceArray()], MASK)


def test_unreadable_and_empty_image_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a png")
    with pytest.raises(ImageFileError, match="empty"):
        read_image(empty)
    with pytest.raises(ImageFileError, match="not a readable image"):
        read_mask(junk)
    with pytest.raises(ImageFileError, match="not found"):
        read_image(tmp_path / "missing.png")


def test_missing_empty_truncated_and_non_onnx_models(tmp_path: Path, tiny_onnx_factory) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        Inpainter(tmp_path / "missing.onnx")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        Inpainter(empty)
    data = tiny_onnx_factory().read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated or not ONNX"):
        Inpainter(truncated)
    text = tmp_path / "notes.onnx"
    text.write_text("hello")
    with pytest.raises(ModelLoadError, match="could not be loaded as an ONNX model"):
        Inpainter(text)
    other = tmp_path / "model.bin"
    other.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="cannot tell the model type"):
        Inpainter(other)
    for checkpoint in ("model.safetensors", "model.pt"):
        (tmp_path / checkpoint).write_bytes(b"x")
        with pytest.raises(ModelLoadError, match=r"training checkpoint.*`pconv export .* -o model\.onnx`"):
            Inpainter(tmp_path / checkpoint)
    with pytest.raises(ModelLoadError, match="backend must be one of"):
        open_backend(tiny_onnx_factory(), backend="openvino")


def test_onnx_models_that_are_not_ours(tmp_path: Path, tiny_onnx_factory) -> None:
    import onnx
    from onnx import TensorProto, helper

    stripped = onnx.load(str(tiny_onnx_factory()))
    del stripped.metadata_props[:]
    onnx.save(stripped, tmp_path / "stripped.onnx")
    with pytest.raises(ModelLoadError, match=r"not a pconv model .*no 'pconv_format' metadata"):
        Inpainter(tmp_path / "stripped.onnx")

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "foreign", [x], [y])
    foreign = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(foreign, tmp_path / "foreign.onnx")
    with pytest.raises(ModelLoadError, match="not a pconv model"):
        Inpainter(tmp_path / "foreign.onnx")


def test_metadata_checks() -> None:
    good = {"pconv_format": "pconv-onnx-v1", "pconv_size_multiple": "256", "pconv_config": "{}"}
    assert model_info_from_metadata(good, "m").size_multiple == 256
    with pytest.raises(ModelLoadError, match="damaged"):
        model_info_from_metadata({**good, "pconv_size_multiple": "x"}, "m")
    with pytest.raises(ModelLoadError, match="mask convention"):
        model_info_from_metadata({**good, "pconv_mask_convention": "1=hole"}, "m")


def test_unavailable_execution_provider_names_the_fix(tiny_onnx_factory) -> None:
    with pytest.raises(ModelLoadError, match=r"pconv\[gpu\]"):
        Inpainter(tiny_onnx_factory(), providers=["NoSuchExecutionProvider"])


def test_engine_without_tensorrt_says_what_to_install(tmp_path: Path) -> None:
    if tensorrt_available():
        pytest.skip("TensorRT is installed here; this checks the message when it is not")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\x00" * 64)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'pconv\[trt\]'"):
        Inpainter(engine)
    with pytest.raises(PconvError):
        Inpainter(engine, backend="tensorrt")


def test_missing_plugin_library_names_the_build_command(tmp_path: Path) -> None:
    """The path check comes before TensorRT is touched, so it runs (and must be clear) without it."""
    from pconv.runtime import PluginLibraryError
    from pconv.trt.registry import load_plugin_library

    with pytest.raises(PluginLibraryError, match=r"not found: build it with `pconv build-plugin`"):
        load_plugin_library(None, tmp_path / "libpconv_plugin.so")
    assert issubclass(PluginLibraryError, ModelLoadError)


def test_onnxruntime_refusal_is_one_line(tiny_onnx_factory) -> None:
    fixed = Inpainter(tiny_onnx_factory(batch=1, height=64, width=64))
    with pytest.raises(InputError, match=r"ONNX Runtime failed on inputs of shape \(1, 3, 40, 40\)") as info:
        fixed.backend.run(np.zeros((1, 3, 40, 40), np.float32), np.ones((1, 1, 40, 40), np.float32))
    assert "\n" not in str(info.value)
