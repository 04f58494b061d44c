"""The fused kernel without a GPU: nvcc compiles it for sm_80/sm_90, and its block body runs on the CPU.

``tests/cpp/pconv_host_check.cpp`` runs ``pconv::tile::run_block`` (the code every GPU thread block
runs) for every block of a launch, playing the 128 threads in turn, and compares with a naive
double-precision partial convolution. Here it runs on every layer shape of the 512² network (at
small spatial sizes), on edge cases, on random shapes, against ``reference_partial_conv``, and as
the layers of a whole tiny network against PyTorch. The FP16 path runs the GPU's warp tiling with
the wmma:: calls replaced by a CPU model of their documented semantics; the tensor cores
themselves need a GPU (tests/test_plugin_gpu.py). Every case whose channels are multiples of 8
also runs the channels-last FP16 kernel (pconv_tile_nhwc.h), with cp.async modelled by its
commit/wait rules, and must meet the same bounds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_model, requires_nvcc

from pconv.config import LayerSpec, ModelConfig
from pconv.formula import effective_slope
from pconv.plugins import plugin_source_dir
from pconv.plugins.build import find_cuda_include

pytestmark = requires_nvcc
SRC = plugin_source_dir()
CHECKS = Path(__file__).resolve().parent / "cpp"  # the C++ check programs (not shipped)


@pytest.fixture(scope="module")
def host_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CPU check program, compiled with the host compiler from the kernel's own headers."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("needs a host C++ compiler (g++)")
    exe = tmp_path_factory.mktemp("host_check") / "pconv_host_check"
    subprocess.run(
        [
            cxx,
            "-std=c++17",
            "-O2",
            "-Wall",
            "-Werror",
            f"-I{find_cuda_include()}",
            f"-I{SRC}",
            str(CHECKS / "pconv_host_check.cpp"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    return exe


def case_line(
    name: str,
    *,
    n: int,
    c: int,
    h: int,
    w: int,
    c_out: int,
    k: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    dilation: tuple[int, int] = (1, 1),
    alpha: float = 1.0,
    mask_weights: tuple[float, ...] = (),
    holes: int = 0,
    seed: int = 0,
) -> str:
    """One line of the host check's case format (pads in ONNX order: top, left, bottom, right)."""
    weights = mask_weights or (float(c),)
    fields = [
        name,
        n,
        c,
        h,
        w,
        c_out,
        *k,
        *stride,
        *pads,
        *dilation,
        alpha,
        len(weights),
        *weights,
        holes,
        seed,
    ]
    return " ".join(str(f) for f in fields)


def spec_case(spec: LayerSpec, size: int, batch: int, holes: int, seed: int) -> str:
    p = spec.padding
    return case_line(
        f"{spec.name}_{size}px_holes{holes}",
        n=batch,
        c=spec.in_channels,
        h=size,
        w=size,
        c_out=spec.out_channels,
        k=(spec.kernel, spec.kernel),
        stride=(spec.stride, spec.stride),
        pads=(p, p, p, p),
        dilation=(spec.dilation, spec.dilation),
        alpha=effective_slope(spec.activation, spec.negative_slope),
        mask_weights=tuple(float(x) for x in spec.mask_channel_weights),
        holes=holes,
        seed=seed,
    )


def run_cases(exe: Path, lines: list[str]) -> dict[str, str]:
    proc = subprocess.run([str(exe), "cases"], input="\n".join(lines) + "\n", capture_output=True, text=True)
    results = {}
    for line in proc.stdout.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("OK", "FAIL", "BAD_CASE"):
            name = rest.split(" ")[0]
            results[name] = line
    failed = [line for line in results.values() if not line.startswith("OK")]
    assert not failed, "\n".join(failed)
    assert len(results) == len(lines), proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return results


def test_kernels_compile_for_sm80_and_sm90(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            "nvcc",
            "-std=c++17",
            "-O3",
            "--resource-usage",
            f"-I{SRC}",
            # PyTorch extensions build with these (torch_harness): no implicit __half conversions.
            "-D__CUDA_NO_HALF_OPERATORS__",
            "-D__CUDA_NO_HALF_CONVERSIONS__",
            "-D__CUDA_NO_HALF2_OPERATORS__",
            "-gencode",
            "arch=compute_80,code=sm_80",
            "-gencode",
            "arch=compute_90,code=sm_90",
            "-c",
            str(SRC / "pconv_kernels.cu"),
            "-o",
            str(tmp_path / "pconv_kernels.o"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "pconv_kernels.o").stat().st_size > 0
    compiled = re.findall(r"Compiling entry function '(\w+)' for '(sm_\d+)'", proc.stdout + proc.stderr)
    for arch in ("sm_80", "sm_90"):
        kernels = [name for name, a in compiled if a == arch]
        assert any("WmmaExecutor" in k for k in kernels), f"no FP16 tensor-core kernel for {arch}"
        assert any("SimtExecutor" in k for k in kernels), f"no FP32 kernel for {arch}"
        nhwc = [k for k in kernels if "partial_conv2d_nhwc_kernel" in k]
        assert len(nhwc) == 2, f"channels-last kernels (BlockN 64 and 128) for {arch}: {nhwc}"
        narrow = [k for k in kernels if "partial_conv2d_narrow_kernel" in k]
        assert len(narrow) == 4, f"narrow kernels (FP32/FP16 x 4/8 channels) for {arch}: {narrow}"
    assert "bytes spill" not in re.sub(r"\b0 bytes spill", "", proc.stdout + proc.stderr)
    # 2 blocks of 256 threads per SM (__launch_bounds__): at most 128 registers per thread.
    usage = re.findall(
        r"Compiling entry function '(\w+)'.*?Used (\d+) registers", proc.stdout + proc.stderr, re.S
    )
    assert all(int(regs) <= 128 for name, regs in usage if "nhwc_kernel" in name), usage


def test_channels_last_kernel_uses_cp_async_and_tensor_cores(tmp_path: Path) -> None:
    """The PTX of the channels-last kernel: 16-byte cp.async with commit/wait groups, and WMMA."""
    ptx = tmp_path / "pconv_kernels.ptx"
    subprocess.run(
        [
            "nvcc",
            "-std=c++17",
            "-O3",
            f"-I{SRC}",
            "-arch=sm_80",
            "-ptx",
            str(SRC / "pconv_kernels.cu"),
            "-o",
            str(ptx),
        ],
        check=True,
    )
    text = ptx.read_text()
    bodies = re.split(r"\.entry ", text)
    nhwc = [b for b in bodies if b.split("(")[0].find("partial_conv2d_nhwc_kernel") >= 0]
    assert len(nhwc) == 2
    for body in nhwc:
        assert "cp.async.cg.shared.global" in body
        assert "cp.async.commit_group" in body
        assert "cp.async.wait_group" in body
        assert "wmma.mma.sync" in body
        assert "st.global.v4" in body  # 16-byte epilogue stores of 8 channels
        assert "ld.shared.v4.f32" in body  # 16-byte accumulator reads (no 4-way bank conflicts)


def test_torch_harness_binding_compiles_against_installed_torch(tmp_path: Path) -> None:
    """torch_binding.cpp is built on a GPU machine only; here it is compiled (syntax and types)
    against this machine's torch headers, so a GPU session does not spend its time on a typo."""
    import sysconfig

    from torch.utils import cpp_extension

    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("needs a host C++ compiler (g++)")
    includes = [Path(p) for p in cpp_extension.include_paths()]
    if not any((p / "c10/cuda/CUDAStream.h").exists() for p in includes):
        pytest.skip("this torch build ships no c10/cuda headers")
    if not any((p / "c10/cuda/impl/cuda_cmake_macros.h").exists() for p in includes):
        # Generated by CUDA builds of torch only; it holds export macros, nothing the binding uses.
        stub = tmp_path / "c10/cuda/impl"
        stub.mkdir(parents=True)
        (stub / "cuda_cmake_macros.h").write_text("#pragma once\n")
    proc = subprocess.run(
        [
            cxx,
            "-std=c++20",  # what torch.utils.cpp_extension builds with
            "-fsyntax-only",
            f"-I{tmp_path}",
            *(f"-I{p}" for p in includes),
            f"-I{sysconfig.get_paths()['include']}",
            f"-I{find_cuda_include()}",
            f"-I{SRC}",
            "-DTORCH_EXTENSION_NAME=pconv_fused_kernels",
            str(SRC / "torch_binding.cpp"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


def _size_for(spec: LayerSpec, budget: float = 4e6) -> tuple[int, int]:
    """Largest small input size (and batch) whose convolution stays within ``budget`` MACs."""
    macs_per_pixel = spec.out_channels * spec.in_channels * spec.kernel**2
    for batch, size in ((2, 16), (2, 12), (2, 8), (1, 8), (1, 6), (1, 4)):
        out = spec.output_size(size)
        if batch * out * out * macs_per_pixel <= budget:
            return batch, size
    return 1, 4


def test_every_layer_shape_of_the_512_network(host_check: Path) -> None:
    """All 16 layer shapes of ModelConfig(depth=8): channels, kernels, strides, masks, activations."""
    lines = []
    for i, spec in enumerate(ModelConfig(depth=8).layer_specs()):
        batch, size = _size_for(spec)
        lines.append(spec_case(spec, size, batch, holes=0 if i % 2 else 3, seed=i))
    results = run_cases(host_check, lines)
    assert len(results) == 16
    # The channels-last kernel takes all but enc1 (3 input channels) and dec1 (67 in, 3 out);
    # the launchers run dec1 on the narrow kernel (one thread per pixel, all 3 channels).
    nhwc = sorted(line.split()[1].split("_")[0] for line in results.values() if " nhwc=1 " in line)
    assert nhwc == sorted(f"{side}{i}" for side in ("enc", "dec") for i in range(2, 9))
    narrow = [line.split()[1].split("_")[0] for line in results.values() if line.endswith(" narrow=1")]
    assert narrow == ["dec1"]


def test_all_hole_windows_give_exact_zeros(host_check: Path) -> None:
    """All-hole inputs and hole blocks: y is exactly 0 and finite where the new mask is 0."""
    specs = {s.name: s for s in ModelConfig(depth=3, width=0.25).layer_specs()}
    lines = [
        spec_case(specs["enc1"], 12, 2, holes=1, seed=1),
        spec_case(specs["dec1"], 12, 2, holes=1, seed=2),
        spec_case(specs["enc2"], 10, 2, holes=3, seed=3),
        spec_case(specs["dec2"], 10, 1, holes=2, seed=4),
    ]
    results = run_cases(host_check, lines)
    assert all("holes_zero=1" in r and "finite=1" in r for r in results.values())


def test_edge_shapes(host_check: Path) -> None:
    """Tile edges, asymmetric padding, dilation, strides, 1..4 mask channels, odd batch and sizes."""
    lines = [
        case_line("one_pixel_tile_edge", n=1, c=1, h=1, w=1, c_out=1, k=(1, 1)),
        case_line("cout65_k33", n=3, c=11, h=9, w=7, c_out=65, k=(1, 3), pads=(0, 1, 0, 1), holes=3),
        case_line(
            "asym_pads", n=2, c=5, h=13, w=11, c_out=7, k=(3, 2), pads=(2, 0, 1, 3), alpha=0.1, holes=3
        ),
        case_line("dilated", n=1, c=6, h=15, w=14, c_out=9, k=(3, 3), pads=(2, 2, 2, 2), dilation=(2, 2)),
        case_line("dil_anisotropic", n=2, c=4, h=12, w=17, c_out=5, k=(2, 3), dilation=(3, 1), stride=(1, 2)),
        case_line("stride3", n=2, c=8, h=19, w=20, c_out=70, k=(5, 5), stride=(3, 3), pads=(2, 2, 2, 2)),
        case_line("kernel_over_input", n=1, c=3, h=3, w=2, c_out=4, k=(7, 7), pads=(3, 3, 3, 3), holes=3),
        case_line(
            "four_masks", n=2, c=10, h=9, w=9, c_out=66, k=(3, 3), pads=(1,) * 4, mask_weights=(1, 2, 3, 4)
        ),
        case_line(
            "three_masks", n=1, c=6, h=8, w=10, c_out=3, k=(3, 3), pads=(1,) * 4, mask_weights=(2, 2, 2)
        ),
        case_line("pixels_over_tiles", n=5, c=2, h=16, w=13, c_out=2, k=(3, 3), pads=(1,) * 4, holes=3),
        case_line("relu_alpha0", n=2, c=9, h=8, w=8, c_out=130, k=(3, 3), pads=(1,) * 4, alpha=0.0),
    ]
    run_cases(host_check, lines)


def test_channels_last_kernel_edges(host_check: Path) -> None:
    """Channels-last tiles: partial pixel/channel tiles, k not a multiple of 32, both BlockN, strides."""
    lines = [
        case_line("nhwc_c8_k1", n=1, c=8, h=1, w=1, c_out=8, k=(1, 1)),
        case_line("nhwc_o136", n=2, c=16, h=11, w=10, c_out=136, k=(3, 3), stride=(2, 2), pads=(1,) * 4),
        case_line("nhwc_o72_rows", n=3, c=24, h=13, w=9, c_out=72, k=(3, 2), pads=(1, 0, 2, 1), holes=3),
        case_line("nhwc_o256", n=1, c=40, h=7, w=6, c_out=256, k=(3, 3), pads=(1,) * 4, alpha=0.2),
        case_line("nhwc_k5s2", n=1, c=64, h=16, w=16, c_out=64, k=(5, 5), stride=(2, 2), pads=(2,) * 4),
        case_line(
            "nhwc_dilated",
            n=1,
            c=24,
            h=12,
            w=13,
            c_out=72,
            k=(3, 2),
            stride=(1, 2),
            dilation=(2, 1),
            mask_weights=(8, 8, 8),
        ),
        case_line("nhwc_all_holes", n=2, c=32, h=8, w=8, c_out=128, k=(3, 3), pads=(1,) * 4, holes=1),
        case_line(
            "nhwc_concat",
            n=2,
            c=48,
            h=9,
            w=9,
            c_out=16,
            k=(3, 3),
            pads=(1,) * 4,
            mask_weights=(32, 16),
            holes=3,
        ),
    ]
    results = run_cases(host_check, lines)
    assert all(" nhwc=1 nhwc_ok=1 " in line for line in results.values())


def test_narrow_kernel_edges(host_check: Path) -> None:
    """C_out <= 8 runs the narrow kernel (4- and 8-wide registers); k up to its 1024 limit, then tiles."""
    lines = [
        case_line("narrow_o1", n=1, c=1, h=1, w=1, c_out=1, k=(1, 1)),
        case_line(
            "narrow_o3_dec1", n=2, c=11, h=13, w=12, c_out=3, k=(3, 3), pads=(1,) * 4, mask_weights=(8, 3)
        ),
        case_line("narrow_o5", n=1, c=6, h=8, w=10, c_out=5, k=(3, 3), pads=(1,) * 4, holes=3, alpha=0.2),
        case_line(
            "narrow_o8_strided", n=3, c=5, h=9, w=7, c_out=8, k=(3, 2), stride=(2, 1), pads=(0, 1, 2, 0)
        ),
        case_line("narrow_dilated", n=1, c=6, h=15, w=14, c_out=4, k=(3, 3), pads=(2,) * 4, dilation=(2, 2)),
        case_line("narrow_all_holes", n=2, c=4, h=8, w=8, c_out=7, k=(3, 3), pads=(1,) * 4, holes=1),
        case_line("narrow_k1017", n=1, c=113, h=5, w=6, c_out=3, k=(3, 3), pads=(1,) * 4, holes=3),
        case_line("tiled_k1026", n=1, c=114, h=5, w=6, c_out=3, k=(3, 3), pads=(1,) * 4, holes=3),
        case_line("tiled_o9", n=1, c=6, h=8, w=8, c_out=9, k=(3, 3), pads=(1,) * 4),
    ]
    results = run_cases(host_check, lines)
    for name, line in results.items():
        assert line.endswith(" narrow=0" if name.startswith("tiled") else " narrow=1"), line


def test_empty_output_is_rejected_not_launched(host_check: Path) -> None:
    """A window larger than the padded input has no output pixel: the launcher refuses it."""
    line = case_line("too_small", n=1, c=2, h=3, w=3, c_out=2, k=(5, 5))
    proc = subprocess.run([str(host_check), "cases"], input=line + "\n", capture_output=True, text=True)
    assert proc.returncode != 0
    assert "FAIL too_small status fp32=1 fp16=1" in proc.stdout


def _random_cases(count: int, seed: int) -> Iterator[str]:
    rng = np.random.default_rng(seed)
    for i in range(count):
        kh, kw = (int(v) for v in rng.integers(1, 6, size=2))
        dh, dw = (int(v) for v in rng.integers(1, 3, size=2))
        pads = tuple(int(v) for v in rng.integers(0, 3, size=4))
        h = int(rng.integers(dh * (kh - 1) + 1, 14))
        w = int(rng.integers(dw * (kw - 1) + 1, 14))
        k = int(rng.integers(1, 5))
        weights = tuple(int(v) for v in rng.integers(1, 6, size=k))
        yield case_line(
            f"random{i}",
            n=int(rng.integers(1, 4)),
            c=sum(weights),
            h=h,
            w=w,
            c_out=int(rng.integers(1, 80)),
            k=(kh, kw),
            stride=(int(rng.integers(1, 4)), int(rng.integers(1, 4))),
            pads=(pads[0], pads[1], pads[2], pads[3]),
            dilation=(dh, dw),
            alpha=float(rng.choice([0.0, 0.2, 1.0])),
            mask_weights=tuple(float(v) for v in weights),
            holes=int(rng.choice([0, 0, 1, 2, 3])),
            seed=i,
        )


def test_random_shapes(host_check: Path) -> None:
    run_cases(host_check, list(_random_cases(60, seed=2026)))


# -- the emulated kernel against the PyTorch reference -------------------------------------------
class EmulatedKernel:
    """``partial_conv(x, mask, weight, bias, spec)`` backed by the CPU emulation of the kernel."""

    def __init__(self, exe: Path, workdir: Path, precision: str = "fp32", activate: bool = True) -> None:
        self.exe, self.workdir, self.precision, self.activate = exe, workdir, precision, activate
        self.used: list[str] = []

    def __call__(self, x, mask, weight, bias, spec: LayerSpec):  # type: ignore[no-untyped-def]
        import torch

        n, c, h, w = x.shape
        precision = self.precision
        if precision == "fp16_nhwc" and (c % 8 or weight.shape[0] % 8):
            precision = "fp16"  # what a caller does for the layers the channels-last kernel does not take
        self.used.append(precision)
        alpha = effective_slope(spec.activation, spec.negative_slope) if self.activate else 1.0
        p = spec.padding
        line = case_line(
            spec.name,
            n=n,
            c=c,
            h=h,
            w=w,
            c_out=weight.shape[0],
            k=(spec.kernel, spec.kernel),
            stride=(spec.stride, spec.stride),
            pads=(p, p, p, p),
            dilation=(spec.dilation, spec.dilation),
            alpha=alpha,
            mask_weights=tuple(float(v) for v in spec.mask_channel_weights),
        )
        src, dst = self.workdir / "in.bin", self.workdir / "out.bin"
        arrays = [x, mask, weight, bias]
        src.write_bytes(b"".join(a.detach().float().contiguous().numpy().tobytes() for a in arrays))
        subprocess.run([str(self.exe), "run", precision, line, str(src), str(dst)], check=True)
        out = np.fromfile(dst, dtype=np.float32)
        h_out, w_out = spec.output_size(h), spec.output_size(w)
        y_size = n * weight.shape[0] * h_out * w_out
        assert out.size == y_size + n * h_out * w_out
        y = torch.from_numpy(out[:y_size].reshape(n, weight.shape[0], h_out, w_out).copy())
        new_mask = torch.from_numpy(out[y_size:].reshape(n, 1, h_out, w_out).copy())
        return y, new_mask


def _layer_inputs(spec: LayerSpec, size: int, batch: int, seed: int):  # type: ignore[no-untyped-def]
    import torch

    g = torch.Generator().manual_seed(seed)
    masks = (torch.rand(batch, len(spec.mask_channel_weights), size, size, generator=g) > 0.4).float()
    masks[:, :, : size // 2, : size // 2] = 0.0  # a block of all-hole windows
    full = torch.cat(
        [masks[:, j : j + 1].expand(-1, int(c), -1, -1) for j, c in enumerate(spec.mask_channel_weights)],
        dim=1,
    )
    x = torch.randn(batch, spec.in_channels, size, size, generator=g) * full
    weight = torch.randn(spec.out_channels, spec.in_channels, spec.kernel, spec.kernel, generator=g)
    weight /= (spec.in_channels * spec.kernel**2) ** 0.5
    bias = 0.1 * torch.randn(spec.out_channels, generator=g)
    return x, masks, full, weight, bias


@pytest.mark.parametrize("name", ["enc1", "enc2", "dec2", "dec1"])
def test_emulated_kernel_matches_reference_partial_conv(host_check: Path, tmp_path: Path, name: str) -> None:
    """The emulated kernel vs ``pconv.training.reference`` (full multi-channel masks), FP32 and FP16."""
    import torch

    from pconv.training.reference import reference_partial_conv

    spec = {s.name: s for s in ModelConfig(depth=3, width=0.25).layer_specs()}[name]
    x, masks, full, weight, bias = _layer_inputs(spec, 12, 2, seed=len(name))
    ref, ref_mask = reference_partial_conv(x, full, weight, bias, spec.stride, spec.padding, spec.dilation)
    y, new_mask = EmulatedKernel(host_check, tmp_path, "fp32", activate=False)(x, masks, weight, bias, spec)
    assert torch.equal(new_mask, ref_mask)
    assert (y - ref).abs().max().item() <= 1e-4
    assert torch.all(y[ref_mask.expand_as(y) == 0] == 0)
    # FP16: the same inputs rounded to half, reference in FP32; 1e-2 relative to the output scale.
    x16, w16, b16 = (t.half().float() for t in (x, weight, bias))
    ref16, _ = reference_partial_conv(x16, full, w16, b16, spec.stride, spec.padding, spec.dilation)
    y16, mask16 = EmulatedKernel(host_check, tmp_path, "fp16", activate=False)(x16, masks, w16, b16, spec)
    assert torch.equal(mask16, ref_mask)
    assert (y16 - ref16).abs().max().item() <= 1e-2 * ref16.abs().max().item()


def test_emulated_whole_tiny_network_matches_pytorch(host_check: Path, tmp_path: Path) -> None:
    """The plugin-form wiring (folded BatchNorm, masked features) with the emulated kernel per layer."""
    import torch

    from pconv.plugins.torch_harness import fused_unet_forward

    model = make_tiny_model()
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 16, 16, generator=g)
    mask = (torch.rand(2, 1, 16, 16, generator=g) > 0.3).float()
    mask[0, :, 2:10, 3:12] = 0.0
    with torch.no_grad():
        expected = model(image, mask)
        got = fused_unet_forward(
            model, image, mask, partial_conv=EmulatedKernel(host_check, tmp_path, "fp32")
        )
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4


def test_emulated_whole_tiny_network_fp16_channels_last(host_check: Path, tmp_path: Path) -> None:
    """The FP16 net with the channels-last kernel on every layer it takes (WMMA NCHW on the rest)."""
    import torch

    from pconv.plugins.torch_harness import fused_unet_forward

    model = make_tiny_model(width=0.25)
    g = torch.Generator().manual_seed(2)
    image = torch.rand(2, 3, 16, 16, generator=g)
    mask = (torch.rand(2, 1, 16, 16, generator=g) > 0.3).float()
    mask[1, :, 4:14, 0:9] = 0.0
    kernel = EmulatedKernel(host_check, tmp_path, "fp16_nhwc")
    with torch.no_grad():
        expected = model(image, mask)
        got = fused_unet_forward(model, image, mask, partial_conv=kernel)
    assert kernel.used.count("fp16_nhwc") == len(kernel.used) - 2  # all but enc1 and dec1
    assert torch.isfinite(got).all()
    assert (got - expected).abs().max().item() <= 1e-2 * max(1.0, expected.abs().max().item())


def test_unfused_benchmark_baseline_matches_the_model() -> None:
    """The benchmark's unfused cuDNN formulation is the same layer (checked on the CPU here)."""
    import torch

    from pconv.plugins.torch_harness import fused_unet_forward, unfused_partial_conv

    model = make_tiny_model()
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 16, 16, generator=g)
    mask = (torch.rand(2, 1, 16, 16, generator=g) > 0.3).float()
    with torch.no_grad():
        expected = model(image, mask)
        got = fused_unet_forward(model, image, mask, partial_conv=unfused_partial_conv)
    assert (got - expected).abs().max().item() <= 1e-4
