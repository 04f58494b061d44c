"""The runtime (ONNX Runtime, CPU) against PyTorch on tiny exported models, and the Inpainter contract."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_model
from PIL import Image

from pconv.runtime import Inpainter, InputError, NoHoleWarning
from pconv.runtime.backend import Backend, ModelInfo


def _torch_output(image_nchw: np.ndarray, mask_n1hw: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return make_tiny_model()(torch.from_numpy(image_nchw), torch.from_numpy(mask_n1hw)).numpy()


def _torch_full_inpaint(image: np.ndarray, holes: np.ndarray, multiple: int) -> np.ndarray:
    """What `strategy="full"` must compute, written independently: pad with hole, run torch, crop."""
    h, w = holes.shape
    ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    x = np.zeros((1, 3, ph, pw), np.float32)
    m = np.zeros((1, 1, ph, pw), np.float32)
    valid = (~holes).astype(np.float32)
    x[0, :, :h, :w] = (image.astype(np.float32) / 255.0 * valid[..., None]).transpose(2, 0, 1)
    m[0, 0, :h, :w] = valid
    return _torch_output(x, m)[0, :, :h, :w].transpose(1, 2, 0)


def _random_case(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(3):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        mask[y : y + int(rng.integers(2, h // 2 + 3)), x : x + int(rng.integers(2, w // 2 + 3))] = 255
    return image, mask


@pytest.fixture(scope="module")
def onnx_path(tiny_onnx_factory) -> Path:
    return tiny_onnx_factory()


@pytest.fixture(scope="module")
def inpainter(onnx_path: Path) -> Inpainter:
    return Inpainter(onnx_path, backend="onnxruntime")


def test_metadata_gives_the_size_multiple_and_convention(inpainter: Inpainter) -> None:
    assert inpainter.info.size_multiple == 8  # depth 3
    assert inpainter.info.mask_convention == "1=valid,0=hole"
    assert inpainter.info.config["depth"] == 3
    assert inpainter.backend.name == "onnxruntime"


@pytest.mark.parametrize("form", ["explicit", "plugin"])
def test_raw_outputs_match_pytorch(tiny_onnx_factory, form: str) -> None:
    rng = np.random.default_rng(1)
    image = rng.random((2, 3, 40, 48), dtype=np.float32)
    mask = (rng.random((2, 1, 40, 48)) > 0.3).astype(np.float32)
    with Inpainter(tiny_onnx_factory(form=form)) as inp:
        raw = inp.backend.run(image, mask)
    expected = _torch_output(image, mask)
    assert np.abs(raw["output"] - expected).max() <= 1e-5
    composite = mask * image + (1 - mask) * expected
    assert np.abs(raw["composite"] - composite).max() <= 1e-5


@pytest.mark.parametrize("size", [(37, 61), (300, 200), (8, 8), (1, 1)])
def test_odd_sizes_match_padded_pytorch_and_keep_valid_pixels(inpainter: Inpainter, size) -> None:
    rng = np.random.default_rng(sum(size))
    image, mask = _random_case(rng, *size)
    mask[0, 0] = 255  # at least one hole
    holes = mask != 0
    result = inpainter(image, mask, strategy="full")
    assert result.shape == image.shape and result.dtype == np.uint8
    assert np.array_equal(result[~holes], image[~holes])  # bit-for-bit
    expected = np.rint(np.clip(_torch_full_inpaint(image, holes, 8), 0, 1) * 255)
    assert np.abs(result[holes].astype(np.int32) - expected[holes].astype(np.int32)).max() <= 1


def test_float32_input_keeps_valid_pixels_exactly_and_fills_with_network_output(inpainter: Inpainter) -> None:
    rng = np.random.default_rng(3)
    image = rng.random((24, 40, 3), dtype=np.float32)
    holes = np.zeros((24, 40), bool)
    holes[5:15, 10:30] = True
    result = inpainter(image, holes, strategy="full")
    assert result.dtype == np.float32 and result.shape == image.shape
    assert np.array_equal(result[~holes], image[~holes])
    x = np.zeros((1, 3, 24, 40), np.float32)
    x[0] = (image * (~holes)[..., None]).transpose(2, 0, 1)
    expected = np.clip(_torch_output(x, (~holes)[None, None].astype(np.float32))[0].transpose(1, 2, 0), 0, 1)
    assert np.abs(result[holes] - expected[holes]).max() <= 1e-5


def test_types_are_returned_as_given(inpainter: Inpainter) -> None:
    rng = np.random.default_rng(4)
    image, mask = _random_case(rng, 30, 50)
    as_uint8 = inpainter(image, mask)
    pil = inpainter(Image.fromarray(image), Image.fromarray(mask))
    assert isinstance(pil, Image.Image) and pil.mode == "RGB" and pil.size == (50, 30)
    assert np.array_equal(np.asarray(pil), as_uint8)
    for dtype in (np.float16, np.float64):
        out = inpainter(image.astype(dtype) / 255, mask)
        assert out.dtype == dtype and out.shape == image.shape
    nhwc = inpainter(np.stack([image, image]), np.stack([mask, mask]))
    assert isinstance(nhwc, np.ndarray) and nhwc.shape == (2, 30, 50, 3)
    assert np.array_equal(nhwc[0], as_uint8) and np.array_equal(nhwc[1], as_uint8)
    shared_mask = inpainter(np.stack([image, image]), mask)  # one 2-D mask for the whole batch
    assert np.array_equal(shared_mask, nhwc)
    as_tuple = inpainter((image,), (mask,))
    assert isinstance(as_tuple, tuple) and np.array_equal(as_tuple[0], as_uint8)


def test_mask_is_hole_false_flips_the_convention(inpainter: Inpainter) -> None:
    rng = np.random.default_rng(5)
    image, mask = _random_case(rng, 32, 32)
    hole_first = inpainter(image, mask)
    valid_first = inpainter(image, (mask == 0).astype(np.uint8), mask_is_hole=False)
    assert np.array_equal(hole_first, valid_first)


def test_batch_of_different_sizes_equals_one_by_one(inpainter: Inpainter) -> None:
    rng = np.random.default_rng(6)
    sizes = [(37, 61), (40, 64), (20, 20), (37, 61), (100, 30), (17, 18)]
    cases = [_random_case(rng, h, w) for h, w in sizes]
    images, masks = [c[0] for c in cases], [c[1] for c in cases]
    batched = inpainter(images, masks, batch_size=3)
    assert isinstance(batched, list) and len(batched) == len(images)
    for image, mask, out in zip(images, masks, batched):
        assert np.array_equal(out, inpainter(image, mask))


def test_fp16_io_model(tiny_onnx_factory) -> None:
    rng = np.random.default_rng(7)
    image, mask = _random_case(rng, 33, 47)
    with Inpainter(tiny_onnx_factory(precision="fp16", io="fp16")) as inp:
        assert inp.info.io_dtype == np.float16
        result = inp(image, mask)
    holes = mask != 0
    assert np.array_equal(result[~holes], image[~holes])
    expected = np.rint(np.clip(_torch_full_inpaint(image, holes, 8), 0, 1) * 255)
    assert np.abs(result[holes].astype(int) - expected[holes].astype(int)).max() <= 3  # fp16 graph


def test_static_shape_model_pads_and_fills_the_batch(tiny_onnx_factory) -> None:
    rng = np.random.default_rng(8)
    with (
        Inpainter(tiny_onnx_factory(batch=1, height=64, width=64)) as fixed,
        Inpainter(tiny_onnx_factory()) as dyn,
    ):
        assert fixed.info.fixed_shape == (1, 64, 64)
        images, masks = zip(*[_random_case(rng, 40, 50) for _ in range(3)])
        out = fixed(list(images), list(masks), batch_size=4)
        holes = [m != 0 for m in masks]
        for image, hole, o in zip(images, holes, out):
            assert np.array_equal(o[~hole], image[~hole])
        # 64x64 with hole padding is a different network input than 40x56, so only check it is filled
        assert all(o.shape == (40, 50, 3) for o in out)
        assert dyn.info.fixed_shape is None


@pytest.mark.parametrize("fixed", [{"height": 32}, {"width": 32}])
def test_half_fixed_export_is_honoured(tiny_onnx_factory, fixed: dict[str, int]) -> None:
    """`pconv export --height 32` (W dynamic): images are padded to the fixed dimension, not refused."""
    rng = np.random.default_rng(9)
    with Inpainter(tiny_onnx_factory(**fixed)) as half:
        image, mask = _random_case(rng, 20, 28)
        out = half(image, mask)
        holes = mask != 0
        assert out.shape == image.shape and np.array_equal(out[~holes], image[~holes])
        big, big_mask = _random_case(rng, 50, 50)  # larger than the fixed side: auto tiles it
        assert np.array_equal(half(big, big_mask)[big_mask == 0], big[big_mask == 0])


def test_no_hole_returns_input_with_a_warning(inpainter: Inpainter) -> None:
    image = np.full((16, 16, 3), 7, np.uint8)
    with pytest.warns(NoHoleWarning, match="no hole") as record:
        out = inpainter(image, np.zeros((16, 16), np.uint8))
    assert np.array_equal(out, image) and out is not image
    assert record[0].filename == __file__  # the warning points at the caller's line, not pconv's


def test_all_hole_mask_is_allowed_and_gives_the_network_fill(inpainter: Inpainter) -> None:
    image = np.random.default_rng(9).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = inpainter(image, np.ones((24, 24), np.uint8))
    expected = np.rint(np.clip(_torch_full_inpaint(image, np.ones((24, 24), bool), 8), 0, 1) * 255)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    # with no context the fill does not depend on the (fully masked) pixels
    assert np.array_equal(out, inpainter(255 - image, np.ones((24, 24), np.uint8)))


def test_crop_strategy_keeps_valid_pixels_and_fills_every_hole(inpainter: Inpainter) -> None:
    rng = np.random.default_rng(10)
    image = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
    holes = np.zeros((300, 200), bool)
    holes[10:30, 20:40] = True  # two far-apart regions -> two crops
    holes[250:280, 150:190] = True
    holes[120, 100] = True
    crop = inpainter(image, holes, strategy="crop", batch_size=2)
    full = inpainter(image, holes, strategy="full")
    assert np.array_equal(crop[~holes], image[~holes])
    for y0, y1, x0, x1 in [(10, 30, 20, 40), (250, 280, 150, 190)]:
        assert not np.array_equal(crop[y0:y1, x0:x1], image[y0:y1, x0:x1])
    # every hole pixel is written: put a sentinel value in the holes of a float image (the network
    # never sees hole pixels, so its fill cannot reproduce the sentinel)
    sentinel = np.float32(0.123456789)
    floats = image.astype(np.float32) / 255
    floats[holes] = sentinel
    filled = inpainter(floats, holes, strategy="crop")
    assert not np.any(filled[holes] == sentinel)
    assert np.array_equal(filled[~holes], floats[~holes])
    # the crop result differs from full inference only inside holes, and only moderately
    diff = np.abs(crop.astype(int) - full.astype(int))
    assert diff[~holes].max() == 0
    assert diff[holes].mean() < 64


def test_crop_tile_matches_running_that_crop_alone(inpainter: Inpainter) -> None:
    """A crop tile is exactly full inference on its box: check it against a manual crop."""
    from pconv.runtime.strategy import plan_crop

    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    holes = np.zeros((200, 300), bool)
    holes[90:110, 140:170] = True
    (tile,) = plan_crop(0, holes, inpainter.info, margin=16)
    assert tile.write.slices == (slice(90, 110), slice(140, 170))
    box = tile.box.slices
    manual = inpainter(image[box], holes[box], strategy="full")
    crop = inpainter(image, holes, strategy="crop")
    # margin default is 64 here vs 16 above, so rebuild with the same margin:
    crop16 = Inpainter.from_backend(inpainter.backend, margin=16)(image, holes, strategy="crop")
    assert np.array_equal(crop16[box], manual)
    assert np.array_equal(crop[~holes], image[~holes])


class _LimitedInfo(Backend):
    """A real ONNX Runtime backend whose reported shape limits are narrowed, like a TensorRT profile."""

    def __init__(self, backend, max_hw: int, min_n: int = 1, max_n: int = 2) -> None:
        self.inner = backend
        self.name = backend.name
        info = backend.info
        self.info = ModelInfo(
            info.size_multiple,
            info.mask_convention,
            info.io_dtype,
            info.config,
            (min_n, 8, 8),
            (max_n, max_hw, max_hw),
        )
        self.seen: list[tuple[int, ...]] = []

    def run(self, image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        assert self.info.min_shape[0] <= image.shape[0] <= self.info.max_shape[0]
        assert image.shape[2] <= self.info.max_shape[1] and image.shape[3] <= self.info.max_shape[2]
        self.seen.append(image.shape)
        return self.inner.run(image, mask)

    def close(self) -> None:
        pass


def test_auto_switches_to_crop_past_the_max_shape_and_downscales_big_regions(inpainter: Inpainter) -> None:
    limited = _LimitedInfo(inpainter.backend, max_hw=64)
    inp = Inpainter.from_backend(limited, margin=8)
    rng = np.random.default_rng(12)
    image = rng.integers(0, 256, (150, 170, 3), dtype=np.uint8)
    holes = np.zeros((150, 170), bool)
    holes[5:15, 5:15] = True  # small: native-resolution tile
    holes[60:140, 40:160] = True  # bigger than 64 with margin: downscaled tile
    with pytest.raises(InputError, match="larger than the model accepts"):
        inp(image, holes, strategy="full")
    out = inp(image, holes, strategy="auto", batch_size=8)
    assert np.array_equal(out[~holes], image[~holes])
    assert all(s[2] <= 64 and s[3] <= 64 and s[0] <= 2 for s in limited.seen)
    assert not np.array_equal(out[60:140, 40:160], image[60:140, 40:160])


def test_concurrent_calls_from_threads_match_serial_results(inpainter: Inpainter) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(13)
    cases = [_random_case(rng, 30 + 7 * i, 40 + 5 * i) for i in range(6)]
    serial = [inpainter(image, mask) for image, mask in cases]
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(lambda c: inpainter(*c), cases))
    for a, b in zip(serial, threaded):
        assert np.array_equal(a, b)


def test_batches_are_padded_up_to_the_profile_minimum(inpainter: Inpainter) -> None:
    limited = _LimitedInfo(inpainter.backend, max_hw=512, min_n=3, max_n=4)
    inp = Inpainter.from_backend(limited)
    rng = np.random.default_rng(14)
    images, masks = zip(*[_random_case(rng, 30, 30) for _ in range(5)])
    out = inp(list(images), list(masks), batch_size=4)
    assert [s[0] for s in limited.seen] == [4, 3]  # 4 + 1 real images; the second call padded to 3
    for image, mask, o in zip(images, masks, out):
        assert np.array_equal(o, inpainter(image, mask))


def test_providers_are_preferred_in_order_and_logged_once(onnx_path: Path, caplog, monkeypatch) -> None:
    from pconv.runtime import onnxruntime_backend as ortb

    every = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert ortb.choose_providers(every, None) == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert ortb.choose_providers(["AzureExecutionProvider", "CPUExecutionProvider"], None) == [
        "CPUExecutionProvider"
    ]
    assert ortb.choose_providers(every, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    monkeypatch.setattr(ortb, "_logged", set())  # other tests in this process may have logged already
    with caplog.at_level("INFO", logger="pconv.runtime"):
        for _ in range(2):
            Inpainter(onnx_path).close()
    logged = [r.getMessage() for r in caplog.records if "providers" in r.getMessage()]
    assert logged == ["ONNX Runtime providers: CPUExecutionProvider"]
