"""TensorRT engine builder and runtime backend.

Without TensorRT (CI, this machine) these tests check everything that does not need it: clear
errors naming the install command, shape parsing and profile validation against real exported
ONNX models, the engine sidecar, the version/GPU compatibility rules and the
``__cuda_array_interface__`` validation (with plain objects carrying only the interface dict; no
TensorRT is mocked). The ``tensorrt``-marked tests build real engines and compare them with ONNX
Runtime through Polygraphy; they skip here and run with ``pytest -m tensorrt`` on a GPU machine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from conftest import requires_tensorrt

from pconv.apps.cli import main as cli_main
from pconv.contract import META_FORMAT, ONNX_FORMAT
from pconv.contract import parse_nhw as parse_shape
from pconv.engine.build import build_engine
from pconv.engine.errors import BuildError
from pconv.engine.facts import read_onnx_facts
from pconv.engine.profile import resolve_profile
from pconv.engine.report import BuildReport
from pconv.errors import (
    DeviceInputError,
    EngineIncompatibleError,
    InputError,
    MissingDependencyError,
    ModelLoadError,
    PconvError,
)
from pconv.fileio import atomic_write_bytes
from pconv.runtime.device_arrays import DeviceArray, cuda_array_view, stream_handle
from pconv.runtime.sidecar import (
    check_batch_shape,
    check_compatibility,
    model_info_from_sidecar,
    read_sidecar,
)
from pconv.runtime.tensorrt_backend import TensorRTBackend
from pconv.trt import parse_version, tensorrt_available
from pconv.trt.sidecar import EngineSidecar, sidecar_path

INSTALL = "pip install 'pconv[trt]'"
HAVE_TRT = tensorrt_available()
no_tensorrt = pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here; this checks its absence")


# -- shapes and profiles --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [("1x512x512", (1, 512, 512)), (" 8X64x128 ", (8, 64, 128)), ("2×32×32", (2, 32, 32))],
)
def test_parse_shape_accepts_nxhxw(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_shape(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("512x512", "expected NxHxW"), ("1x0x8", "positive"), ("axbxc", "integers"), ("1x2x3x4", "NxHxW")],
)
def test_parse_shape_rejects_other_text(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_shape(text)


def test_profile_defaults_for_a_dynamic_onnx(tiny_onnx_factory: Any) -> None:
    facts = read_onnx_facts(tiny_onnx_factory())
    assert facts.size_multiple == 8 and facts.fixed_dims == {"N": None, "H": None, "W": None}
    profile = resolve_profile(facts)
    assert profile.min == (1, 8, 8) and profile.opt == (1, 512, 512) and profile.max == (1, 1024, 1024)
    # One given shape fills the others.
    only_opt = resolve_profile(facts, opt_shape=(2, 64, 96))
    assert only_opt.min == only_opt.opt == only_opt.max == (2, 64, 96)
    ranged = resolve_profile(facts, min_shape=(1, 32, 32), max_shape=(4, 128, 128))
    assert (ranged.min, ranged.opt, ranged.max) == ((1, 32, 32), (1, 32, 32), (4, 128, 128))


def test_profile_rejects_sizes_the_model_cannot_take(tiny_onnx_factory: Any) -> None:
    facts = read_onnx_facts(tiny_onnx_factory())
    with pytest.raises(BuildError, match=r"--opt 1x60x64: height 60 is not a multiple of 8.*56 or 64"):
        resolve_profile(facts, opt_shape=(1, 60, 64))
    with pytest.raises(BuildError, match=r"--max 1x64x100: width 100 .* multiple of 8"):
        resolve_profile(facts, opt_shape=(1, 64, 64), max_shape=(1, 64, 100))
    with pytest.raises(BuildError, match=r"min <= opt <= max \(64 <= 32 <= 32"):
        resolve_profile(facts, min_shape=(1, 64, 64), opt_shape=(1, 32, 32))
    with pytest.raises(BuildError, match=r"N must satisfy"):
        resolve_profile(facts, min_shape=(1, 32, 32), opt_shape=(4, 32, 32), max_shape=(2, 32, 32))


def test_profile_respects_static_onnx_dims(tiny_onnx_factory: Any) -> None:
    facts = read_onnx_facts(tiny_onnx_factory(batch=1, height=64, width=64))
    assert facts.fixed_dims == {"N": 1, "H": 64, "W": 64}
    profile = resolve_profile(facts)
    assert profile.min == profile.opt == profile.max == (1, 64, 64)
    with pytest.raises(BuildError, match=r"static N = 1"):
        resolve_profile(facts, opt_shape=(2, 64, 64))
    with pytest.raises(BuildError, match=r"static H = 64"):
        resolve_profile(facts, opt_shape=(1, 128, 64))


def test_onnx_facts_find_the_plugin_nodes(tiny_onnx_factory: Any) -> None:
    plugin = read_onnx_facts(tiny_onnx_factory(form="plugin"))
    explicit = read_onnx_facts(tiny_onnx_factory(form="explicit", precision="fp16"))
    assert plugin.form == "plugin" and len(plugin.plugin_nodes) == 6  # depth 3: 3 encoder + 3 decoder
    assert plugin.plugin_nodes_without_namespace == ()
    assert explicit.form == "explicit" and explicit.plugin_nodes == () and explicit.precision == "fp16"


def test_non_pconv_and_broken_onnx_files_are_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save_model(helper.make_model(graph), str(foreign))
    with pytest.raises(BuildError, match=r"not a pconv model.*pconv export"):
        read_onnx_facts(foreign)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not onnx at all\xff" * 10)
    with pytest.raises(BuildError, match="not a readable ONNX model"):
        read_onnx_facts(garbage)
    with pytest.raises(BuildError, match="not found"):
        read_onnx_facts(tmp_path / "missing.onnx")


# -- without TensorRT: clear errors naming the install command --------------------------------------
@no_tensorrt
def test_build_without_tensorrt_names_the_install_command(tiny_onnx_factory: Any, tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError, match=r"pip install 'pconv\[trt\]'"):
        build_engine(tiny_onnx_factory(), tmp_path / "m.engine", opt_shape=(1, 64, 64))
    assert not (tmp_path / "m.engine").exists()


@no_tensorrt
def test_cli_build_without_tensorrt_is_one_clear_line(
    tiny_onnx_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(["build", str(tiny_onnx_factory()), "-o", str(tmp_path / "m.engine")])
    err = capsys.readouterr().err
    assert code == 2
    assert INSTALL in err and "Traceback" not in err
    assert err.strip().startswith("pconv build: error:")


def test_cli_shape_errors_are_caught_before_tensorrt(
    tiny_onnx_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(["build", str(tiny_onnx_factory()), "--min", "1x64x64", "--opt", "1x60x64"])
    assert code == 2
    assert "height 60 is not a multiple of 8" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli_main(["build", str(tiny_onnx_factory()), "--opt", "64x64"])
    assert usage.value.code == 2
    assert "expected NxHxW" in capsys.readouterr().err


def test_missing_plugin_library_is_caught_before_tensorrt(
    tiny_onnx_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx_path = str(tiny_onnx_factory(form="plugin"))
    code = cli_main(
        ["build", onnx_path, "-o", str(tmp_path / "m.engine"), "--plugin", str(tmp_path / "no.so")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "no.so: no such file" in err and "pconv build-plugin" in err
    assert not (tmp_path / "m.engine").exists()


def test_build_report_prints_precision_profile_plugin_layers_and_size(tmp_path: Path) -> None:
    """What `pconv build` prints after a build (the report itself is filled in by TensorRT runs)."""
    library = tmp_path / "libpconv_plugin.so"
    sidecar = _sidecar(
        tensorrt_version="10.7.0.23",
        profile_min=(1, 256, 256),
        profile_opt=(8, 512, 512),
        profile_max=(16, 1024, 1024),
        io_dtypes={"image": "float32", "mask": "float32", "output": "float32", "composite": "float32"},
        plugin_layers=("enc1/pconv", "dec1/pconv"),
        engine_bytes=3 * 2**20,
        extra={"plugin_library_path": str(library)},
    )
    report = BuildReport(
        sidecar=sidecar,
        engine_path=tmp_path / "m.engine",
        sidecar_path=tmp_path / "m.engine.json",
        onnx_path=tmp_path / "m.onnx",
        num_layers=40,
        build_seconds=12.5,
    )
    text = report.summary()
    assert "m.engine (3.00 MiB, built in 12.5 s)" in text
    assert "precision  FP16 (strongly typed" in text
    assert "min 1x256x256, opt 8x512x512, max 16x1024x1024" in text
    assert "2 of 40 network layers are pconv::PartialConv2d" in text and "enc1/pconv, dec1/pconv" in text
    assert f"(from {library})" in text
    assert "10.7.0.23 on NVIDIA H100 80GB HBM3 (sm_90)" in text
    data = report.to_dict()
    # The --json object keeps the keys (and order) it had before the report held a sidecar.
    assert list(data) == [
        "engine_path",
        "sidecar_path",
        "onnx_path",
        "tensorrt_version",
        "gpu_name",
        "compute_capability",
        "precision",
        "strongly_typed",
        "profile",
        "io_dtypes",
        "num_layers",
        "plugin_library",
        "plugin_layers",
        "engine_bytes",
        "build_seconds",
        "version_compatible",
        "timing_cache",
        "timing_cache_note",
        "warnings",
    ]
    assert data["profile"]["max"] == [16, 1024, 1024] and data["compute_capability"] == [9, 0]
    assert data["plugin_layers"] == ["enc1/pconv", "dec1/pconv"] and data["plugin_library"] == str(library)
    json.dumps(data)  # the --json output is serialisable
    plain = dataclasses.replace(report, sidecar=dataclasses.replace(sidecar, plugin_layers=()))
    assert "plugin     none (40 network layers" in plain.summary()
    assert plain.plugin_library is None and plain.to_dict()["plugin_library"] is None


def test_cli_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["build", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--min",
        "--opt",
        "--max",
        "--plugin",
        "--no-plugin",
        "--timing-cache",
        "--workspace",
        "--version-compatible",
        "--fp16",
        "--verbose",
    ):
        assert flag in out
    assert INSTALL in out


def test_runtime_module_imports_without_torch_onnx_or_tensorrt(tmp_path: Path) -> None:
    """`import pconv.runtime.tensorrt_backend` works bare; using it names the install command."""
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not really an engine")
    sidecar_path(engine).write_text(_sidecar(engine_bytes=engine.stat().st_size).to_json())
    script = textwrap.dedent(
        f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "onnx", "tensorrt", "onnxruntime"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        from pconv.runtime.tensorrt_backend import TensorRTBackend
        from pconv.errors import BackendUnavailableError
        try:
            TensorRTBackend({str(engine)!r})
        except BackendUnavailableError as exc:
            print("ERROR:", exc)
        assert "torch" not in sys.modules and "onnx" not in sys.modules
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert "ERROR: TensorRT is not installed" in out.stdout and INSTALL in out.stdout


# -- the sidecar and compatibility rules --------------------------------------------------------------
def _sidecar(**changes: Any) -> EngineSidecar:
    base: dict[str, Any] = {
        "onnx_metadata": {
            META_FORMAT: ONNX_FORMAT,
            "pconv_size_multiple": "8",
            "pconv_config": json.dumps({"depth": 3, "width": 0.125}),
            "pconv_mask_convention": "1=valid,0=hole",
        },
        "tensorrt_version": "10.13.0.35",
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "compute_capability": (9, 0),
        "profile_min": (1, 32, 32),
        "profile_opt": (2, 64, 64),
        "profile_max": (4, 128, 128),
        "io_dtypes": {"image": "float16", "mask": "float16", "output": "float16", "composite": "float16"},
        "precision": "fp16",
        "strongly_typed": True,
        "plugin_layers": ("enc1/pconv_node", "enc2/pconv_node"),
        "plugin_library": "libpconv_plugin.so",
    }
    base.update(changes)
    return EngineSidecar(**base)


def test_sidecar_round_trip_and_model_info(tmp_path: Path) -> None:
    sidecar = _sidecar()
    assert EngineSidecar.from_json(sidecar.to_json()) == sidecar
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"x" * 10)
    path = sidecar_path(engine)
    assert path.name == "model.engine.json"
    import hashlib

    written = _sidecar(engine_bytes=10, engine_sha256=hashlib.sha256(b"x" * 10).hexdigest())
    path.write_text(written.to_json())
    assert read_sidecar(engine) == written
    info = model_info_from_sidecar(written, engine.name)
    assert info.size_multiple == 8 and info.io_dtype == np.float16
    assert info.min_shape == (1, 32, 32) and info.max_shape == (4, 128, 128) and info.fixed_shape is None
    assert info.config["depth"] == 3
    fixed = model_info_from_sidecar(_sidecar(profile_min=(1, 64, 64), profile_max=(1, 64, 64)), "m")
    assert fixed.fixed_shape == (1, 64, 64)


def test_sidecar_problems_are_clear(tmp_path: Path) -> None:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"x" * 10)
    with pytest.raises(ModelLoadError, match=r"no sidecar model\.engine\.json.*pconv build"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(_sidecar(engine_bytes=99).to_json())
    with pytest.raises(ModelLoadError, match="describes a different engine"):
        read_sidecar(engine)
    sidecar_path(engine).write_text('{"format": "something else"}')
    with pytest.raises(ModelLoadError, match="not a valid pconv engine sidecar"):
        read_sidecar(engine)
    foreign = _sidecar(onnx_metadata={"producer": "x"})
    with pytest.raises(ModelLoadError, match="not built from a pconv ONNX"):
        model_info_from_sidecar(foreign, "m.engine")


def test_backend_refuses_an_engine_without_sidecar(tmp_path: Path) -> None:
    engine = tmp_path / "model.plan"
    engine.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="no sidecar"):
        TensorRTBackend(engine)
    with pytest.raises(ModelLoadError, match="not found"):
        TensorRTBackend(tmp_path / "missing.engine")


def test_version_and_gpu_compatibility_rules() -> None:
    sidecar = _sidecar()
    check_compatibility(sidecar, "10.13.0.35", (9, 0))
    with pytest.raises(
        EngineIncompatibleError, match=r"built with TensorRT 10\.13\.0\.35 but this is TensorRT 10\.14"
    ):
        check_compatibility(sidecar, "10.14.1.48", (9, 0))
    with pytest.raises(EngineIncompatibleError, match=r"sm_90.*cannot run on NVIDIA A100.*sm_80"):
        check_compatibility(sidecar, "10.13.0.35", (8, 0), "NVIDIA A100")
    portable = _sidecar(version_compatible=True)
    check_compatibility(portable, "10.16.0.1", (9, 0))  # newer minor, same major: fine
    for too_old_or_other_major in ("10.12.0.1", "11.1.0.3"):
        with pytest.raises(EngineIncompatibleError, match="version-compatible"):
            check_compatibility(portable, too_old_or_other_major, (9, 0))


def test_parse_version() -> None:
    assert parse_version("10.13.0.35") == (10, 13, 0, 35)
    assert parse_version("11.1.0") == (11, 1, 0)
    assert parse_version("11.0.0rc1") == (11, 0, 0)
    assert parse_version("") == ()


def test_batch_shape_checks_against_the_profile() -> None:
    info = model_info_from_sidecar(_sidecar(), "m.engine")
    check_batch_shape(info, 2, 64, 128)
    with pytest.raises(InputError, match="not a multiple of 8"):
        check_batch_shape(info, 1, 60, 64)
    with pytest.raises(InputError, match=r"outside the profile.*max 4x128x128"):
        check_batch_shape(info, 1, 256, 64)
    with pytest.raises(InputError, match="outside the profile"):
        check_batch_shape(info, 8, 64, 64)


# -- __cuda_array_interface__ validation ------------------------------------------------------------
class FakeDeviceArray:
    """Carries only a ``__cuda_array_interface__`` dict: exercises the validation, not TensorRT."""

    def __init__(self, **cai: Any) -> None:
        self.__cuda_array_interface__ = {
            "shape": (1, 3, 8, 8),
            "typestr": "<f2",
            "data": (0x7F0000000000, False),
            "version": 3,
            "strides": None,
            **cai,
        }


def test_cuda_array_view_accepts_contiguous_arrays() -> None:
    view = cuda_array_view(FakeDeviceArray(), "image")
    assert view.ptr == 0x7F0000000000 and view.shape == (1, 3, 8, 8)
    assert view.dtype == np.float16 and view.nbytes == 3 * 64 * 2 and view.stream is None
    # Explicit C-contiguous strides, and arbitrary strides on length-1 axes (PyTorch reports those).
    strided = FakeDeviceArray(strides=(999, 128, 16, 2), stream=2)
    assert cuda_array_view(strided).stream == 2


@pytest.mark.parametrize(
    ("cai", "message"),
    [
        ({"strides": (384, 128, 2, 16)}, "not C-contiguous"),
        ({"mask": (1, False)}, "masked"),
        ({"data": (0, False)}, "NULL"),
        ({"stream": 0}, "stream 0"),
        ({"typestr": ">f4"}, "big-endian"),
        ({"shape": "abc"}, "malformed"),
    ],
)
def test_cuda_array_view_rejects_what_tensorrt_cannot_bind(cai: dict[str, Any], message: str) -> None:
    with pytest.raises(DeviceInputError, match=message):
        cuda_array_view(FakeDeviceArray(**cai))


def test_cuda_array_view_explains_missing_interfaces() -> None:
    with pytest.raises(DeviceInputError, match=r"no __cuda_array_interface__.*CuPy"):
        cuda_array_view(np.zeros((1, 3, 8, 8), np.float32), "image")

    class NoVersion:
        __cuda_array_interface__: ClassVar[dict[str, Any]] = {
            "shape": (1,),
            "typestr": "<f4",
            "data": (1, False),
        }

    with pytest.raises(DeviceInputError, match="lacks version"):
        cuda_array_view(NoVersion())


def test_device_array_interface_round_trips() -> None:
    arr = DeviceArray(0xABC000, (2, 3, 16, 16), np.float32, stream=7)
    cai = arr.__cuda_array_interface__
    assert cai["version"] == 3 and cai["typestr"] == "<f4" and cai["data"] == (0xABC000, False)
    view = cuda_array_view(arr)
    assert (view.ptr, view.shape, view.dtype, view.stream) == (0xABC000, (2, 3, 16, 16), np.float32, 7)
    assert arr.nbytes == 2 * 3 * 16 * 16 * 4


def test_stream_handles_from_common_libraries() -> None:
    class TorchLike:
        cuda_stream = 1234

    class CupyLike:
        ptr = 5678

    assert stream_handle(None) == 0 and stream_handle(42) == 42
    assert stream_handle(TorchLike()) == 1234 and stream_handle(CupyLike()) == 5678
    with pytest.raises(DeviceInputError, match="cannot use str as a CUDA stream"):
        stream_handle("default")


def test_atomic_write_bytes_replaces_without_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "model.engine"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, memoryview(b"second"))
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["model.engine"]


# -- with TensorRT and a GPU: real engines vs ONNX Runtime ---------------------------------------------
def _feeds(n: int, h: int, w: int, dtype: Any, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.random((n, 3, h, w), dtype=np.float32)
    mask = (rng.random((n, 1, h, w)) > 0.3).astype(np.float32)
    mask[:, :, h // 4 : h // 2, w // 4 : w // 2] = 0  # a solid hole, so some windows are all-hole
    return {"image": image.astype(dtype), "mask": mask.astype(dtype)}


def _plugin_library_or_skip() -> Path:
    from pconv.trt.registry import find_library

    library = find_library()
    if library is None:
        pytest.skip("the PartialConv2d plugin library is not built: run `pconv build-plugin` first")
    return library


VARIANTS = [
    pytest.param("explicit", None, id="explicit"),
    pytest.param("plugin", None, id="plugin-form-inlined"),
    pytest.param("plugin", "plugin", id="plugin-fused"),
]


@pytest.mark.tensorrt
@requires_tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize(("form", "plugin"), VARIANTS)
def test_engine_matches_onnxruntime(
    tiny_onnx_factory: Any, tmp_path: Path, precision: str, form: str, plugin: str | None
) -> None:
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.backend.trt import EngineFromPath, TrtRunner
    from polygraphy.comparator import Comparator, CompareFunc

    library = _plugin_library_or_skip() if plugin else None
    onnx_path = tiny_onnx_factory(form=form, precision=precision)
    engine = tmp_path / f"{form}_{precision}.engine"
    report = build_engine(
        onnx_path,
        engine,
        min_shape=(1, 32, 32),
        opt_shape=(2, 64, 64),
        max_shape=(2, 64, 96),
        plugin_library=library,
        use_default_plugin=False,
        timing_cache=tmp_path / "timing.cache",
        workspace_gib=1.0,
    )
    assert engine.stat().st_size == report.engine_bytes > 0
    assert (tmp_path / "timing.cache").stat().st_size > 0
    assert report.precision == precision and report.strongly_typed
    assert len(report.plugin_layers) == (6 if plugin else 0), report.summary()
    assert read_sidecar(engine).plugin_layers == tuple(report.plugin_layers)

    atol = rtol = 1e-4 if precision == "fp32" else 2e-2
    feeds = [_feeds(2, 64, 64, np.float32, seed) for seed in range(2)] + [_feeds(1, 32, 96, np.float32, 9)]
    runners = [OnnxrtRunner(SessionFromOnnx(str(onnx_path))), TrtRunner(EngineFromPath(str(engine)))]
    results = Comparator.run(runners, data_loader=feeds)
    assert bool(Comparator.compare_accuracy(results, compare_func=CompareFunc.simple(atol=atol, rtol=rtol)))

    # pconv's own backend agrees with ONNX Runtime too, and valid pixels are the input exactly.
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with TensorRTBackend(engine, plugin_library=library) as backend:
        assert backend.info.min_shape == (1, 32, 32) and backend.info.max_shape == (2, 64, 96)
        for feed in feeds:
            expected = dict(zip(["output", "composite"], session.run(["output", "composite"], feed)))
            got = backend.run(feed["image"], feed["mask"])
            for name in ("output", "composite"):
                np.testing.assert_allclose(got[name], expected[name], atol=atol, rtol=rtol)
            valid = np.broadcast_to(feed["mask"] > 0, feed["image"].shape)
            assert np.array_equal(got["composite"][valid], feed["image"][valid])


@pytest.mark.tensorrt
@requires_tensorrt
def test_device_io_and_cuda_graphs_match_host_io(tiny_onnx_factory: Any, tmp_path: Path) -> None:
    import torch

    engine = tmp_path / "m.engine"
    build_engine(tiny_onnx_factory(), engine, opt_shape=(1, 64, 64), use_default_plugin=False)
    feed = _feeds(1, 64, 64, np.float32, 3)
    with TensorRTBackend(engine) as plain, TensorRTBackend(engine, use_cuda_graph=True) as graphed:
        host = plain.run(feed["image"], feed["mask"])
        for _ in range(3):  # first run warms up, second captures, third replays the graph
            replay = graphed.run(feed["image"], feed["mask"])
            np.testing.assert_array_equal(replay["output"], host["output"])
        image = torch.from_numpy(feed["image"]).cuda()
        mask = torch.from_numpy(feed["mask"]).cuda()
        device = plain.run_device(image, mask)
        as_torch = torch.as_tensor(device["output"], device="cuda")
        np.testing.assert_array_equal(as_torch.cpu().numpy(), host["output"])
        np.testing.assert_array_equal(device["composite"].to_host(), host["composite"])
        stream = torch.cuda.Stream()
        async_out = plain.run_device(image, mask, stream=stream)
        stream.synchronize()
        np.testing.assert_array_equal(async_out["output"].to_host(), host["output"])
        with pytest.raises(DeviceInputError, match="dtype float16"):
            plain.run_device(image.half(), mask.half())


@pytest.mark.tensorrt
@requires_tensorrt
def test_engine_from_another_tensorrt_is_refused_before_deserialising(
    tiny_onnx_factory: Any, tmp_path: Path
) -> None:
    engine = tmp_path / "m.engine"
    build_engine(tiny_onnx_factory(), engine, opt_shape=(1, 32, 32), use_default_plugin=False)
    side = sidecar_path(engine)
    data = json.loads(side.read_text())
    data["tensorrt_version"] = "9.0.0.1"
    side.write_text(json.dumps(data))
    with pytest.raises(EngineIncompatibleError, match=r"built with TensorRT 9\.0\.0\.1"):
        TensorRTBackend(engine)


@pytest.mark.tensorrt
@requires_tensorrt
def test_fp16_builder_flag_on_tensorrt_10(tiny_onnx_factory: Any, tmp_path: Path) -> None:
    import tensorrt as trt

    onnx_path = tiny_onnx_factory()
    if parse_version(trt.__version__)[0] >= 11:
        with pytest.raises(PconvError, match="no FP16 builder flag"):
            build_engine(onnx_path, tmp_path / "m.engine", fp16_flag=True)
        return
    report = build_engine(onnx_path, tmp_path / "m.engine", opt_shape=(1, 64, 64), fp16_flag=True)
    assert report.precision == "fp16-flag" and not report.strongly_typed
    feed = _feeds(1, 64, 64, np.float32, 5)
    import onnxruntime as ort

    expected = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(["output"], feed)[
        0
    ]
    with TensorRTBackend(tmp_path / "m.engine") as backend:
        np.testing.assert_allclose(backend.run(feed["image"], feed["mask"])["output"], expected, atol=5e-2)
