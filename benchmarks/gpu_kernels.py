"""Fused partial-convolution kernel vs the unfused cuDNN formulation, per layer and for the whole net.

Per layer shape of the 512² network (``ModelConfig(depth=8)`` at its per-layer input sizes), batch
1 and 16, FP16 and FP32: the fused kernel (the TensorRT plugin's launcher, through the PyTorch
harness) against the same layer written as PyTorch ops (mask-sum convolution + feature
convolution on cuDNN + element-wise renormalisation, bias, masking, activation). FP16 layers the
channels-last kernel takes are also timed channels-last, fused (weight reorder included, as the
plugin does it per call) and unfused (cuDNN on channels_last tensors). ``speedup`` is the unfused
time over the fused one in the same layout; ``speedup_vs_best_unfused`` compares the fastest fused
with the fastest unfused. Then the whole network in img/s at batch 32: fused kernels (both
layouts in FP16) vs the PyTorch model (both layouts in FP16). Prints JSON with the GPU name and
versions; ``--save`` also writes it under ``benchmarks/results/``.

    python benchmarks/gpu_kernels.py [--save] [--size 512] [--batches 1,16] [--net-batch 32]

Needs a CUDA GPU and a CUDA build of PyTorch (nvcc for the extension build).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cuda_time_ms(fn: Callable[[], object], warmup: int, iters: int) -> float:
    """Median wall time of ``fn`` in milliseconds, measured with CUDA events (per call)."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def environment() -> dict[str, Any]:
    import torch

    from pconv._version import __version__

    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": torch.cuda.get_device_name(0),
        "compute_capability": f"{props.major}.{props.minor}",
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "python": platform.python_version(),
        "pconv": __version__,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def bench_layers(size: int, batches: Sequence[int], warmup: int, iters: int) -> list[dict[str, Any]]:
    import torch

    from pconv.config import ModelConfig
    from pconv.plugins.torch_harness import (
        channels_last_supported,
        fused_partial_conv,
        layer_input_sizes,
        unfused_partial_conv,
    )

    rows = []
    for spec, in_size in layer_input_sizes(ModelConfig(depth=8), size):
        for batch in batches:
            for dtype in (torch.float16, torch.float32):
                g = torch.Generator(device="cuda").manual_seed(0)
                k = len(spec.mask_channel_weights)
                mask = (torch.rand(batch, k, in_size, in_size, device="cuda", generator=g) > 0.3).float()
                x = torch.randn(
                    batch, spec.in_channels, in_size, in_size, device="cuda", generator=g, dtype=dtype
                )
                w = torch.randn(
                    spec.out_channels, spec.in_channels, spec.kernel, spec.kernel, device="cuda", dtype=dtype
                )
                b = torch.randn(spec.out_channels, device="cuda", dtype=dtype)
                out = spec.output_size(in_size)
                flops = 2.0 * batch * out * out * spec.out_channels * spec.in_channels * spec.kernel**2
                layouts = ["nchw"]
                if dtype == torch.float16 and channels_last_supported(spec):
                    layouts.append("channels_last")
                times: dict[str, tuple[float, float]] = {}
                for layout in layouts:
                    cl = layout == "channels_last"
                    xl = x.contiguous(memory_format=torch.channels_last) if cl else x
                    wl = w.contiguous(memory_format=torch.channels_last) if cl else w
                    with torch.no_grad():
                        fused_call = partial(fused_partial_conv, xl, mask, w, b, spec, channels_last=cl)
                        fused = cuda_time_ms(fused_call, warmup, iters)
                        unfused = cuda_time_ms(
                            partial(unfused_partial_conv, xl, mask, wl, b, spec), warmup, iters
                        )
                    times[layout] = (fused, unfused)
                    rows.append(
                        {
                            "layer": spec.name,
                            "input": [batch, spec.in_channels, in_size, in_size],
                            "output": [batch, spec.out_channels, out, out],
                            "kernel": spec.kernel,
                            "stride": spec.stride,
                            "dtype": str(dtype).replace("torch.", ""),
                            "layout": layout,
                            "fused_ms": round(fused, 4),
                            "unfused_cudnn_ms": round(unfused, 4),
                            "speedup": round(unfused / fused, 3),
                            "fused_tflops": round(flops / fused / 1e9, 2),
                        }
                    )
                    print(
                        f"{spec.name:5s} b{batch:<3d} {rows[-1]['dtype']:8s} {layout:13s} "
                        f"fused {fused:8.3f} ms  unfused {unfused:8.3f} ms  x{unfused / fused:5.2f}",
                        file=sys.stderr,
                    )
                best_fused = min(f for f, _ in times.values())
                best_unfused = min(u for _, u in times.values())
                rows[-1]["speedup_vs_best_unfused"] = round(best_unfused / best_fused, 3)
    return rows


def _time_pytorch_model(
    model: Any, image: Any, mask: Any, dtype: Any, warmup: int, iters: int, channels_last: bool = False
) -> float:
    """The PyTorch model (unfused: cuDNN convolutions + mask ops per layer) in ``dtype``."""
    import copy

    import torch

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    reference = copy.deepcopy(model).to(dtype=dtype, memory_format=fmt)
    img, msk = image.to(dtype).contiguous(memory_format=fmt), mask.to(dtype).contiguous(memory_format=fmt)
    with torch.no_grad():
        return cuda_time_ms(lambda: reference(img, msk), warmup, iters)


def bench_network(size: int, batch: int, warmup: int, iters: int) -> list[dict[str, Any]]:
    import torch

    from pconv.plugins.torch_harness import folded_parameters, fused_unet_forward
    from pconv.training.unet import PConvUNet

    model = PConvUNet(depth=8).cuda().eval()
    image = torch.rand(batch, 3, size, size, device="cuda")
    mask = (torch.rand(batch, 1, size, size, device="cuda") > 0.3).float()
    rows = []
    runs = [(torch.float16, False), (torch.float16, True), (torch.float32, False)]
    for dtype, channels_last in runs:
        folded = folded_parameters(model, dtype, image.device)
        with torch.no_grad():
            run = partial(
                fused_unet_forward,
                model,
                image,
                mask,
                dtype=dtype,
                folded=folded,
                channels_last=channels_last,
            )
            fused = cuda_time_ms(run, warmup, iters)
            unfused = _time_pytorch_model(model, image, mask, dtype, warmup, iters, channels_last)
        rows.append(
            {
                "network": f"PConvUNet(depth=8) {size}x{size}",
                "batch": batch,
                "dtype": str(dtype).replace("torch.", ""),
                "layout": "channels_last" if channels_last else "nchw",
                "fused_ms": round(fused, 3),
                "fused_img_per_s": round(batch / fused * 1e3, 1),
                "pytorch_ms": round(unfused, 3),
                "pytorch_img_per_s": round(batch / unfused * 1e3, 1),
                "speedup": round(unfused / fused, 3),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
        torch.cuda.empty_cache()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=512, help="image size (default 512)")
    parser.add_argument("--batches", default="1,16", help="per-layer batch sizes (default 1,16)")
    parser.add_argument("--net-batch", type=int, default=32, help="whole-network batch (default 32)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--skip-layers", action="store_true", help="only the whole network")
    parser.add_argument("--save", action="store_true", help="also write the JSON to benchmarks/results/")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("gpu_kernels.py needs a CUDA GPU and a CUDA build of PyTorch", file=sys.stderr)
        return 2
    from pconv.plugins.torch_harness import load_kernels

    torch.backends.cudnn.benchmark = True  # the unfused baseline gets cuDNN's best algorithms
    load_kernels()
    batches = [int(b) for b in args.batches.split(",") if b]
    result: dict[str, Any] = {"environment": environment()}
    if not args.skip_layers:
        result["layers"] = bench_layers(args.size, batches, args.warmup, args.iters)
    result["network"] = bench_network(args.size, args.net_batch, args.warmup, args.iters)
    text = json.dumps(result, indent=2)
    print(text)
    if args.save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        gpu = "".join(c if c.isalnum() else "_" for c in result["environment"]["gpu"]).strip("_")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = RESULTS_DIR / f"gpu_kernels_{gpu}_{stamp}.json"
        path.write_text(text + "\n")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
