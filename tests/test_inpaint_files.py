"""Real-world files through ``pconv inpaint``: orientation, bit depth, masks as people make them, bad
files in a folder, output names/formats/metadata, and faults while writing (issue 12)."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from pconv.apps.cli import main
from pconv.errors import ImageFileError
from pconv.imagefiles import MASK_THRESHOLD, read_mask_file, read_rgb
from pconv.runtime import cli as runtime_cli
from pconv.runtime import imageio

ORIENTATION = 0x0112


def _photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _hole_mask(h: int, w: int, box: tuple[int, int, int, int] = (5, 20, 8, 30)) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    top, bottom, left, right = box
    mask[top:bottom, left:right] = 255
    return mask


def _inpaint(model: Path, image: Path, mask: Path, out: Path, *extra: str) -> int:
    argv = ["inpaint", "--model", str(model), "--image", str(image), "--mask", str(mask), "--out", str(out)]
    return main([*argv, *extra])


def test_the_mask_threshold_is_stated_once() -> None:
    """Every command's --mask-threshold default is pconv.contract's constant, never a copy."""
    import re

    from pconv.eval.options import EvalOptions
    from pconv.runtime.options import InpaintOptions
    from pconv.training.options import TrainOptions

    root = Path(__file__).resolve().parents[1]
    defined = [
        str(path.relative_to(root))
        for folder in ("pconv", "training", "export", "engine", "plugins", "runtime", "eval", "apps")
        for path in (root / folder).rglob("*.py")
        if re.search(r"^MASK_THRESHOLD\s*=", path.read_text(), re.MULTILINE)
    ]
    assert defined == ["pconv/contract.py"]
    assert TrainOptions().mask_threshold == EvalOptions.mask_threshold == MASK_THRESHOLD
    assert InpaintOptions.mask_threshold == MASK_THRESHOLD
    assert not hasattr(runtime_cli, "MASK_THRESHOLD") and not hasattr(runtime_cli, "DEFAULT_QUALITY")


# -- orientation and bit depth ----------------------------------------------------------------------
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_everywhere(tmp_path: Path, orientation: int, tiny_onnx_factory) -> None:
    stored = _photo(32, 48)
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[ORIENTATION] = orientation
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=100)
    with Image.open(path) as im:
        shown = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert shown.shape[:2] == ((48, 32) if orientation in (6, 8) else (32, 48))
    assert np.array_equal(read_rgb(path), shown)
    from pconv.data.images import read_rgb as training_read
    from pconv.eval.evaluate import ImageRef
    from pconv.training.dataset import InpaintingDataset

    assert np.array_equal(training_read(path), shown)
    assert np.array_equal(ImageRef("p", path).load(), shown)
    dataset = InpaintingDataset([path], 16, lambda rng: np.zeros((16, 16), bool))
    assert dataset.sample(0)[0].shape == (16, 16, 3)
    # the mask is drawn on the upright photo: it fits, the output is upright, and its EXIF no longer rotates
    h, w = shown.shape[:2]
    Image.fromarray(_hole_mask(h, w)).save(tmp_path / "mask.png")
    out = tmp_path / "out"
    assert _inpaint(tiny_onnx_factory(), path, tmp_path / "mask.png", out) == 0
    with Image.open(out / "phone.png") as result:
        assert result.size == (w, h)
        assert result.getexif().get(ORIENTATION) in (None, 1)
        valid = _hole_mask(h, w) == 0
        assert np.array_equal(np.asarray(result)[valid], shown[valid])


def test_sixteen_bit_and_float_images_are_scaled_by_their_depth(tmp_path: Path) -> None:
    ramp = (np.arange(16 * 16).reshape(16, 16) * 256).astype(np.uint16)  # 0 .. 65280
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    got = imageio.read_image(tmp_path / "g16.png")
    assert got.shape == (16, 16, 3) and (got[..., 0] == got[..., 2]).all()
    assert np.abs(got[..., 0].astype(int) - np.rint(ramp / 257.0)).max() <= 1  # not clipped to white
    floats = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(floats).save(tmp_path / "f.tif")
    assert np.array_equal(
        imageio.read_image(tmp_path / "f.tif")[..., 1], np.rint(floats * 255).astype(np.uint8)
    )
    Image.fromarray(floats * 1000).save(tmp_path / "hdr.tif")
    with pytest.raises(ImageFileError, match=r"float image with values in \[0, 1000\]"):
        imageio.read_image(tmp_path / "hdr.tif")


# -- masks as people make them ----------------------------------------------------------------------
def test_mask_threshold_alpha_dilate_and_resize(tmp_path: Path, tiny_onnx_factory, capsys) -> None:
    noisy = _hole_mask(48, 64)
    noisy[noisy == 0] = 40  # JPEG-style noise around a painted hole: not a hole at mid-grey
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    assert read_mask_file(tmp_path / "noisy.png").sum() == 15 * 22
    assert read_mask_file(tmp_path / "noisy.png", threshold=0.0).all()  # 0 = any non-zero pixel
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[..., :3] = 255  # transparent white background
    rgba[5:20, 8:30, 3] = 255  # opaque white strokes
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(read_mask_file(tmp_path / "rgba.png"), _hole_mask(48, 64) != 0)

    image = tmp_path / "img.png"
    photo = _photo()
    Image.fromarray(photo).save(image)
    model = tiny_onnx_factory()
    assert _inpaint(model, image, tmp_path / "rgba.png", tmp_path / "a", "--mask-dilate", "2") == 0
    grown = np.zeros((48, 64), bool)
    grown[3:22, 6:32] = True
    result = np.asarray(Image.open(tmp_path / "a" / "img.png"))
    assert np.array_equal(result[~grown], photo[~grown])
    assert not np.array_equal(result[3, 6:32], photo[3, 6:32])  # the grown border was filled
    # one small mask for a bigger photo: an error naming --resize-mask, or resized (nearest) with it
    Image.fromarray(_hole_mask(24, 32, (2, 10, 4, 15))).save(tmp_path / "small.png")
    assert _inpaint(model, image, tmp_path / "small.png", tmp_path / "b") == 2
    assert "--resize-mask" in capsys.readouterr().err
    assert _inpaint(model, image, tmp_path / "small.png", tmp_path / "b", "--resize-mask") == 0
    holes = np.zeros((48, 64), bool)
    holes[4:20, 8:30] = True
    result = np.asarray(Image.open(tmp_path / "b" / "img.png"))
    assert np.array_equal(result[~holes], photo[~holes])
    assert _inpaint(model, image, tmp_path / "rgba.png", tmp_path / "c", "--mask-threshold", "1.5") == 2
    assert "mask threshold must be in [0, 1)" in capsys.readouterr().err


# -- one bad file must not end a long job -----------------------------------------------------------
def test_folder_goes_on_past_bad_files_skips_hidden_ones_and_reruns(
    tmp_path: Path, tiny_onnx_factory, capsys
) -> None:
    img = tmp_path / "img"
    img.mkdir()
    for stem in ("a", "c"):
        Image.fromarray(_photo(seed=ord(stem))).save(img / f"{stem}.png")
    (img / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # unreadable, in the middle
    (img / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS resource fork
    (img / ".DS_Store").write_bytes(b"Bud1")
    Image.fromarray(_hole_mask(48, 64)).save(tmp_path / "mask.png")
    out = tmp_path / "out"
    model = tiny_onnx_factory()
    rc = _inpaint(model, img, tmp_path / "mask.png", out, "--batch", "3")
    captured = capsys.readouterr()
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    assert "skipped b.png:" in captured.err and "not a readable image" in captured.err
    assert "._a" not in captured.err and "DS_Store" not in captured.err
    assert "wrote 2 image(s)" in captured.out and "Traceback" not in captured.err
    # rerun: existing results are left alone
    (img / "b.png").unlink()
    before = (out / "a.png").stat().st_mtime_ns
    assert _inpaint(model, img, tmp_path / "mask.png", out, "--skip-existing") == 0
    assert "wrote 0 image(s)" in capsys.readouterr().out and (out / "a.png").stat().st_mtime_ns == before


# -- output people can use --------------------------------------------------------------------------
def test_out_file_formats_and_metadata(tmp_path: Path, tiny_onnx_factory, capsys) -> None:
    photo = _photo()
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x010F] = "PhoneMaker"  # Make
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = tmp_path / "photo.png"
    Image.fromarray(photo).save(image, exif=exif.tobytes(), icc_profile=icc)
    Image.fromarray(_hole_mask(48, 64)).save(tmp_path / "mask.png")
    model = tiny_onnx_factory()
    assert _inpaint(model, image, tmp_path / "mask.png", tmp_path / "result.png") == 0
    assert (tmp_path / "result.png").is_file()
    with Image.open(tmp_path / "result.png") as result:
        assert result.info.get("icc_profile") == icc and result.getexif().get(0x010F) == "PhoneMaker"
    assert _inpaint(model, image, tmp_path / "mask.png", tmp_path / "r.jpg", "--quality", "80") == 0
    with Image.open(tmp_path / "r.jpg") as result:
        assert result.format == "JPEG" and result.info.get("icc_profile") == icc
    folder = tmp_path / "webp"
    assert _inpaint(model, image, tmp_path / "mask.png", folder, "--format", "webp") == 0
    with Image.open(folder / "photo.webp") as result:
        assert result.format == "WEBP"
    capsys.readouterr()
    assert _inpaint(model, image, tmp_path / "mask.png", tmp_path / "x.png", "--format", "jpg") == 2
    assert "does not match" in capsys.readouterr().err
    # --out naming an existing non-image file, and a file name for a folder of images
    (tmp_path / "notes.txt").write_text("mine")
    assert _inpaint(model, image, tmp_path / "mask.png", tmp_path / "notes.txt") == 2
    err = capsys.readouterr().err
    assert "is an existing file" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert _inpaint(model, folder, tmp_path / "mask.png", tmp_path / "one.png") == 2
    assert "pass a folder as --out" in capsys.readouterr().err


# -- faults while writing ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "says"), [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "choose another --out")]
)
def test_a_failed_write_is_one_line_and_leaves_no_partial_file(
    tmp_path: Path, tiny_onnx_factory, capsys, monkeypatch, code: int, says: str
) -> None:
    image = tmp_path / "photo.png"
    Image.fromarray(_photo()).save(image)
    Image.fromarray(_hole_mask(48, 64)).save(tmp_path / "mask.png")
    out = tmp_path / "out"
    real_save = Image.Image.save

    def torn_save(self, fp, *args, **kwargs):  # write half a file, then fail like the disk would
        real_save(self, fp, *args, **kwargs)
        Path(fp).write_bytes(Path(fp).read_bytes()[:100])
        raise OSError(code, "simulated")

    monkeypatch.setattr(Image.Image, "save", torn_save)
    assert _inpaint(tiny_onnx_factory(), image, tmp_path / "mask.png", out) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(out.iterdir()) == []  # no truncated result, no temp file


def test_a_decompression_bomb_is_one_line(tmp_path: Path, monkeypatch) -> None:
    Image.fromarray(_photo(40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 px is more than twice the limit
    with pytest.raises(ImageFileError, match="larger than PIL's safety limit"):
        imageio.read_image(tmp_path / "big.png")


def test_an_image_the_model_cannot_take_is_skipped_not_fatal(
    tmp_path: Path, tiny_onnx_factory, capsys
) -> None:
    img = tmp_path / "img"
    img.mkdir()
    for stem, (h, w) in {"a": (40, 50), "big": (100, 100), "c": (48, 64)}.items():
        Image.fromarray(_photo(h, w)).save(img / f"{stem}.png")
        Image.fromarray(_hole_mask(h, w)).save(img / f"{stem}_mask.png")
    fixed = tiny_onnx_factory(batch=1, height=64, width=64)
    out = tmp_path / "out"
    assert _inpaint(fixed, img, img, out, "--strategy", "full", "--batch", "3") == 1
    err = capsys.readouterr().err
    assert "skipped big.png:" in err and "larger than the model accepts" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]


def test_training_and_eval_honour_the_mask_threshold(tmp_path: Path) -> None:
    """One threshold, settable everywhere a mask file is read: train --masks, eval --masks, masks --from."""
    from pconv.eval import masksets
    from pconv.training.dataset import make_mask_source

    grey = np.zeros((64, 64), np.uint8)
    grey[8:40, 8:40] = 100  # a hole painted at 40 % grey: a hole at threshold 0.3, not at 0.5
    grey[44:60, 44:60] = 255
    Image.fromarray(grey).save(tmp_path / "m.png")
    assert masksets.load_mask(tmp_path / "m.png").sum() == 16 * 16
    assert masksets.load_mask(tmp_path / "m.png", threshold=0.3).sum() == 16 * 16 + 32 * 32
    assert masksets.bin_folder(tmp_path, threshold=0.3, progress=False).entries[0].bin == 3  # ~0.31
    assert masksets.bin_folder(tmp_path, progress=False).entries[0].bin == 0  # ~0.06
    rng = np.random.default_rng(0)
    low = make_mask_source(str(tmp_path), 64, threshold=0.3)(np.random.default_rng(0))
    mid = make_mask_source(str(tmp_path), 64)(rng)
    assert low.sum() > mid.sum()
