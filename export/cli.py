"""``pconv export`` and ``pconv check``. Only stdlib at import time; onnx/torch load inside commands."""

from __future__ import annotations

import argparse
from pathlib import Path

_FORMS = ("explicit", "plugin")
_PRECISIONS = ("fp32", "fp16")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``export`` and ``check`` subcommands."""
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (explicit mask ops or PartialConv2d plugin nodes)",
        description=(
            "Build the ONNX graph of a pconv checkpoint directly from its layer specs, with BatchNorm "
            "folded into the convolutions. Inputs: image (N,3,H,W) in [0,1] and mask (N,1,H,W), "
            "1 = valid; outputs: output (raw network output) and composite (mask*image + "
            "(1-mask)*output). N, H, W are dynamic unless --batch/--height/--width fix them "
            "(H, W must be multiples of 2^depth). The graph passes onnx.checker (full check)."
        ),
    )
    p.add_argument("checkpoint", type=Path, help="pconv checkpoint (.safetensors) from `pconv train`")
    p.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write (atomically)")
    p.add_argument(
        "--form",
        choices=_FORMS,
        default="explicit",
        help="explicit: standard ONNX ops only (any runtime); plugin: one pconv::PartialConv2d node "
        "per layer plus a local ONNX function with the same math, so ONNX Runtime runs it without "
        "the plugin and TensorRT uses the plugin when its library is loaded (default: explicit)",
    )
    p.add_argument(
        "--precision",
        choices=_PRECISIONS,
        default="fp32",
        help="weights and feature tensors; the mask path always stays FP32 (default: fp32). "
        "fp16 is what strongly typed TensorRT (10.x with strong typing, 11.x) builds in FP16",
    )
    p.add_argument(
        "--io",
        choices=_PRECISIONS,
        default="fp32",
        help="element type of the image/mask inputs and the outputs (default: fp32)",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18, minimum 15)")
    p.add_argument(
        "--decoder",
        choices=("subpixel", "resize"),
        default="subpixel",
        help="explicit form only: how a decoder layer convolves its upsampled input. subpixel: on the "
        "low-resolution features (2x2 phase convolutions + DepthToSpace, or one ConvTranspose for "
        "narrow layers), 16 instead of 36 multiply-adds per input pixel, ~30%% less CPU time; resize: "
        "nearest Resize + Concat + one 3x3 Conv, the literal formulation (default: subpixel)",
    )
    p.add_argument("--batch", type=int, default=None, help="fix N (default: dynamic)")
    p.add_argument("--height", type=int, default=None, help="fix H, a multiple of 2^depth (default: dynamic)")
    p.add_argument("--width", type=int, default=None, help="fix W, a multiple of 2^depth (default: dynamic)")
    p.set_defaults(func=_run_export)

    c = sub.add_parser(
        "check",
        help="run an exported ONNX model with ONNX Runtime (CPU) and compare it with PyTorch",
        description=(
            "Run MODEL with ONNX Runtime on seeded random images and holes. With --against CKPT, "
            "compare `output` and `composite` with the checkpoint's PyTorch model through "
            "Polygraphy's comparator (element-wise: |a-b| <= atol or <= rtol*|b|) and print a table; "
            "without it, check only that the outputs are finite and that composite equals the "
            "input image where mask = 1. Exits non-zero on failure."
        ),
    )
    c.add_argument("model", type=Path, help="ONNX file written by `pconv export`")
    c.add_argument("--against", type=Path, default=None, help="checkpoint to compare with (PyTorch, FP32)")
    c.add_argument("--atol", type=float, default=None, help="absolute tolerance (default 1e-4; fp16 2e-2)")
    c.add_argument("--rtol", type=float, default=None, help="relative tolerance (default 1e-3; fp16 2e-2)")
    c.add_argument("--batch", type=int, default=None, help="N (default: the graph's fixed N, else 1)")
    c.add_argument(
        "--height", type=int, default=None, help="H (default: the graph's fixed H, else 2*2^depth)"
    )
    c.add_argument("--width", type=int, default=None, help="W (default: the graph's fixed W, else 2*2^depth)")
    c.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    c.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    c.add_argument("--verbose", action="store_true", help="show Polygraphy's own log")
    c.set_defaults(func=_run_check)


def _run_export(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pconv.export.onnx_export import DEFAULT_OPSET, export_onnx, load_source, summarize
    from pconv.terminal import show_progress

    with tqdm(total=3, desc="pconv export", unit="step", leave=False, disable=not show_progress()) as bar:
        bar.set_postfix_str("loading checkpoint")
        model = load_source(args.checkpoint)
        bar.update()
        bar.set_postfix_str("building and checking the graph")
        path = export_onnx(
            model,
            args.output,
            form=args.form,
            precision=args.precision,
            io=args.io,
            opset=args.opset if args.opset is not None else DEFAULT_OPSET,
            batch=args.batch,
            height=args.height,
            width=args.width,
            decoder=args.decoder,
        )
        bar.update()
        bar.set_postfix_str("summarizing")
        info = summarize(path)
        bar.update()
    dims = ", ".join(info["dynamic_dims"]) or "none (fixed)"
    ops = ", ".join(f"{k} x{v}" for k, v in info["ops"].items())
    print(f"wrote {path}")
    print(
        f"  form: {info['form']}   precision: {info['precision']}   io: {info['io']}   opset: {info['opset']}"
    )
    print(f"  input image: {info['input_shape']}   dynamic dims: {dims}")
    print(f"  nodes: {info['nodes']} ({ops})")
    print(f"  size: {info['size_bytes'] / 2**20:.1f} MiB   depth: {info['config'].get('depth')}")
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from pconv.export.check import check_onnx, report_json

    report = check_onnx(
        args.model,
        args.against,
        atol=args.atol,
        rtol=args.rtol,
        batch=args.batch,
        height=args.height,
        width=args.width,
        seed=args.seed,
        verbose=args.verbose,
    )
    print(report_json(report) if args.json else report.table())
    return 0 if report.passed else 1
