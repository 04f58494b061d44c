"""``pconv build-plugin`` and the built library, without TensorRT's runtime or a GPU.

With TensorRT headers (``TENSORRT_ROOT``, or a system install) the whole plugin library is built
and loaded with dlopen by ``pconv_plugin_check``, which calls its ``getCreators`` and
``setLoggerFinder`` and drives the creator and the plugin through their TensorRT interfaces.
Without headers (CI) the kernels and their CPU check are built with ``--kernels-only`` and the
library tests skip with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import requires_nvcc

from pconv.config import ModelConfig
from pconv.errors import PconvError
from pconv.plugin_fields import FIELDS, PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION, attributes_for
from pconv.plugins import TensorRTHeadersNotFound, find_tensorrt_include, tensorrt_header_version
from pconv.plugins.build import BuildResult, build_plugin, parse_archs


def _headers() -> Path | None:
    try:
        return find_tensorrt_include()
    except TensorRTHeadersNotFound:
        return None


HEADERS = _headers()
requires_headers = pytest.mark.skipif(
    HEADERS is None,
    reason="needs TensorRT C++ headers: set TENSORRT_ROOT (a TensorRT install or a clone of "
    "github.com/NVIDIA/TensorRT) to build the full plugin library",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    if shutil.which("cmake") is None:
        pytest.skip("needs cmake")
    tmp = tmp_path_factory.mktemp("plugin_build")
    return build_plugin(
        tensorrt_include=HEADERS,
        kernels_only=HEADERS is None,
        archs=("80", "90"),
        out=tmp / "lib" / "libpconv_plugin.so",
        build_dir=tmp / "build",
        show_progress=False,
    )


@pytest.mark.slow
@requires_nvcc
def test_cmake_build_produces_the_kernels_and_their_cpu_check(built: BuildResult) -> None:
    assert built.kernels_archive.is_file() and built.kernels_archive.stat().st_size > 0
    assert built.host_check is not None  # a checkout builds the check programs from tests/cpp
    case = "smoke 2 6 9 8 70 3 3 1 1 1 1 1 1 1 1 0.2 2 4 2 3 1\n"
    proc = subprocess.run([str(built.host_check), "cases"], input=case, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK smoke")


def _plugin_check(built: BuildResult, cases: list[str]) -> list[str]:
    assert built.library is not None and built.plugin_check is not None
    proc = subprocess.run(
        [str(built.plugin_check), str(built.library)],
        input="\n".join(cases) + "\n",
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _case(name: str, values: dict[str, object]) -> str:
    def fmt(v: object) -> str:
        return ",".join(str(x) for x in v) if isinstance(v, list | tuple) else str(v)

    return name + " " + " ".join(f"{k}={fmt(v)}" for k, v in values.items())


@requires_nvcc
@requires_headers
def test_library_exports_only_the_tensorrt_entry_points(built: BuildResult) -> None:
    assert built.library is not None and built.library.is_file()
    assert built.tensorrt_version is not None and built.tensorrt_version[0].isdigit()
    nm = subprocess.run(["nm", "-D", "--defined-only", str(built.library)], capture_output=True, text=True)
    exported = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip()}
    assert exported == {"getCreators", "setLoggerFinder"}
    dynamic = subprocess.run(["readelf", "-d", str(built.library)], capture_output=True, text=True).stdout
    assert "nvinfer" not in dynamic  # headers only: no libnvinfer link dependency
    undefined = subprocess.run(
        ["nm", "-D", "--undefined-only", str(built.library)], capture_output=True, text=True
    )
    assert "nvinfer" not in undefined.stdout


@requires_nvcc
@requires_headers
def test_library_declares_the_python_fields(built: BuildResult) -> None:
    lines = _plugin_check(built, [])
    assert lines[0] == f"PLUGIN {PLUGIN_NAME} {PLUGIN_VERSION} {PLUGIN_NAMESPACE}"
    declared = [tuple(line.split()[1:]) for line in lines if line.startswith("FIELD ")]
    assert declared == [(f.name, f.trt_type, str(f.length or 0)) for f in FIELDS]


@requires_nvcc
@requires_headers
def test_every_layer_creates_serialises_and_round_trips(built: BuildResult) -> None:
    specs = ModelConfig(depth=8).layer_specs() + ModelConfig(depth=3, width=0.125).layer_specs()
    cases = [_case(f"{i}_{s.name}", attributes_for(s)) for i, s in enumerate(specs)]
    lines = _plugin_check(built, cases)
    for i, spec in enumerate(specs):
        name = f"{i}_{spec.name}"
        assert f"CREATED {name}" in lines
        assert f"CORE {name} {PLUGIN_NAME} {PLUGIN_NAMESPACE} 2" in lines
        assert f"ROUNDTRIP {name} ok" in lines
        (serialized,) = [line for line in lines if line.startswith(f"SERIALIZED {name} ")]
        got = dict(item.split("=") for item in serialized.split()[2:])
        expected = attributes_for(spec)
        assert list(got) == [f.name for f in FIELDS]
        for field in FIELDS:
            values = [float(v) for v in got[field.name].split(",")]
            want = expected[field.name] if isinstance(expected[field.name], list) else [expected[field.name]]
            assert values == pytest.approx([float(v) for v in want]), field.name
        assert f"OUTTYPES {name} f32 -> f32,f32 status=0" in lines
        assert f"OUTTYPES {name} f16 -> f16,f32 status=0" in lines
        # features/weight/bias/output FP32 or FP16 together; masks FP32; linear NCHW, and for FP16
        # with both channel counts known multiples of 8 also kHWC8 features and output.
        linear = "f32,f32,f32,f32,f32,f32;f16,f32,f16,f16,f16,f32"
        assert f"FORMATS {name} c16o64 {linear};f16/hwc8,f32,f16,f16,f16/hwc8,f32" in lines
        for channels in ("c3o64", "c16o3", "c-1o-1"):
            assert f"FORMATS {name} {channels} {linear}" in lines


def _onnx_conv_extent(size: int, pad_a: int, pad_b: int, dilation: int, kernel: int, stride: int) -> int:
    """ONNX Conv's output extent (auto_pad NOTSET, floor rounding), written out independently."""
    return (size + pad_a + pad_b - dilation * (kernel - 1) - 1) // stride + 1


@requires_nvcc
@requires_headers
def test_output_shapes_configure_and_shape_change(built: BuildResult) -> None:
    """getOutputShapes' IExprBuilder arithmetic gives PyTorch's conv output size on every layer.

    The check program evaluates the plugin's expressions with constant inputs (it stands in for
    IExprBuilder on known integers only), then calls configurePlugin with static and with dynamic
    N/H/W and onShapeChange with the resulting shapes, all of which must accept them.
    """
    import torch

    specs = ModelConfig(depth=8).layer_specs() + ModelConfig(depth=3, width=0.125).layer_specs()
    cases, expected = [], {}
    for i, spec in enumerate(specs):
        for n, h, w in ((2, 512, 512), (1, 37, 41)):
            name = f"{i}_{spec.name}_{h}x{w}"
            io = f"@io={n},{spec.in_channels},{h},{w},{spec.out_channels},{len(spec.mask_channel_weights)}"
            cases.append(_case(name, attributes_for(spec)) + " " + io)
            out = torch.nn.functional.conv2d(
                torch.empty(n, spec.in_channels, h, w, device="meta"),
                torch.empty(spec.out_channels, spec.in_channels, spec.kernel, spec.kernel, device="meta"),
                stride=spec.stride,
                padding=spec.padding,
                dilation=spec.dilation,
            )
            expected[name] = tuple(out.shape)
    # Asymmetric ONNX pads (top, left, bottom, right), anisotropic kernel/stride/dilation.
    asym = {
        **attributes_for(specs[0]),
        "kernel_shape": [3, 5],
        "strides": [2, 1],
        "pads": [0, 2, 1, 3],
        "dilations": [1, 2],
    }
    cases.append(_case("asym", asym) + " @io=1,3,10,9,5,1")
    expected["asym"] = (1, 5, _onnx_conv_extent(10, 0, 1, 1, 3, 2), _onnx_conv_extent(9, 2, 3, 2, 5, 1))
    assert expected["asym"][2:] == (5, 6)
    # Two mask channels for a one-mask layer: every shape callback must refuse it.
    cases.append(_case("mask_channels_mismatch", attributes_for(specs[0])) + " @io=2,3,37,41,64,2")

    lines = _plugin_check(built, cases)
    for name, (n, c_out, oh, ow) in expected.items():
        assert f"SHAPES {name} out={n},{c_out},{oh},{ow} new_mask={n},1,{oh},{ow} status=0" in lines, name
        assert f"CONFIGURE {name} static=0 dynamic=0" in lines, name
    # FP16 layers the channels-last kernel takes need room for the reordered weight (+16 to align).
    for i, spec in enumerate(specs):
        name = f"{i}_{spec.name}_37x41"
        eligible = spec.in_channels % 8 == 0 and spec.out_channels % 8 == 0
        weight_bytes = 2 * spec.out_channels * spec.in_channels * spec.kernel**2
        assert f"WORKSPACE {name} f32=0 f16={weight_bytes + 16 if eligible else 0}" in lines, name
        assert f"ONSHAPECHANGE {name} 0" in lines, name
    assert "CONFIGURE mask_channels_mismatch static=-1 dynamic=-1" in lines
    assert "ONSHAPECHANGE mask_channels_mismatch -1" in lines


@requires_nvcc
@requires_headers
def test_bad_attribute_sets_are_rejected(built: BuildResult) -> None:
    good = attributes_for(ModelConfig(depth=3).layer_specs()[0])
    bad = {
        "relu_with_slope": {**good, "activation": 1, "activation_alpha": 0.2},
        "none_with_slope": {**good, "activation": 0, "activation_alpha": 0.0},
        "unknown_activation": {**good, "activation": 7},
        "short_pads": {**good, "pads": [1, 1]},
        "zero_stride": {**good, "strides": [0, 1]},
        "negative_pad": {**good, "pads": [1, -1, 1, 1]},
        "five_masks": {**good, "mask_channel_weights": [1, 1, 1, 1, 1]},
        "missing_dilations": {k: v for k, v in good.items() if k != "dilations"},
    }
    lines = _plugin_check(built, [_case(name, values) for name, values in bad.items()])
    for name in bad:
        assert f"REJECTED {name}" in lines


def test_missing_headers_error_names_what_and_where(tmp_path: Path) -> None:
    (tmp_path / "NvInferRuntime.h").write_text("// partial install\n")
    with pytest.raises(TensorRTHeadersNotFound) as info:
        find_tensorrt_include(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "--tensorrt-include" in message
    assert "NvInferRuntimePlugin.h" in message and "NvInferRuntime.h," not in message
    proc = subprocess.run(
        [sys.executable, "-m", "pconv", "build-plugin", "--tensorrt-include", str(tmp_path / "nope"), "-q"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_tensorrt_10_0_to_10_5_headers_are_accepted(tmp_path: Path) -> None:
    """Before 10.6 there is no NvInferPluginBase.h (IPluginV3 lives in NvInferRuntime*.h)."""
    for header in ("NvInferRuntime.h", "NvInferRuntimePlugin.h", "NvInferVersion.h"):
        (tmp_path / header).write_text("// TensorRT 10.0 layout\n")
    assert find_tensorrt_include(tmp_path) == tmp_path.resolve()


def test_arch_list_is_validated() -> None:
    assert parse_archs("80, 90") == ("80", "90")
    assert parse_archs("90a") == ("90a",)
    for bad in ("", "sm_80", "80;90", "eight"):
        with pytest.raises(PconvError):
            parse_archs(bad)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        (
            "#define TRT_MAJOR_ENTERPRISE 11\n#define TRT_MINOR_ENTERPRISE 1\n"
            "#define TRT_PATCH_ENTERPRISE 0\n#define TRT_BUILD_ENTERPRISE 106\n"
            "#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE\n",
            "11.1.0.106",
        ),
        (
            "#define NV_TENSORRT_MAJOR 10 //!< major\n#define NV_TENSORRT_MINOR 7\n"
            "#define NV_TENSORRT_PATCH 0\n#define NV_TENSORRT_BUILD 23\n",
            "10.7.0.23",
        ),
    ],
)
def test_header_version_is_read_for_tensorrt_10_and_11(tmp_path: Path, text: str, version: str) -> None:
    (tmp_path / "NvInferVersion.h").write_text(text)
    assert tensorrt_header_version(tmp_path) == version


def test_check_programs_are_built_only_from_a_checkout(monkeypatch, tmp_path: Path) -> None:
    """A wheel install has no tests/cpp: build-plugin must not ask CMake for the check targets."""
    from pconv.plugins import build

    assert build.check_programs_dir() == Path(__file__).resolve().parent / "cpp"
    installed = tmp_path / "site-packages" / "pconv" / "plugins" / "csrc"
    installed.mkdir(parents=True)
    monkeypatch.setattr(build, "plugin_source_dir", lambda: installed)
    assert build.check_programs_dir() is None
