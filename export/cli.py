"""``pconv export`` and ``pconv check``. Only stdlib (and pure-Python pconv.config) at import time;
onnx/torch load inside commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pconv.contract import FORMS, INT8_TARGETS, IO_TYPES, PRECISIONS

if TYPE_CHECKING:
    from pconv.export.quantize import Int8Options


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
        choices=FORMS,
        default="explicit",
        help="explicit: standard ONNX ops only (any runtime); plugin: one pconv::PartialConv2d node "
        "per layer plus a local ONNX function with the same math, so ONNX Runtime runs it without "
        "the plugin and TensorRT uses the plugin when its library is loaded (default: explicit)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="weights and feature tensors; the mask path always stays FP32 (default: fp32). "
        "fp16 is what strongly typed TensorRT (10.x with strong typing, 11.x) builds in FP16; "
        "int8: QDQ int8 feature convolutions (per-channel symmetric weights, activations calibrated "
        "with --calibration), mask path and renormalisation FP32, explicit form only",
    )
    p.add_argument(
        "--io",
        choices=IO_TYPES,
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
    q = p.add_argument_group("int8 (with --precision int8)")
    q.add_argument(
        "--calibration",
        default=None,
        metavar="DIR|builtin",
        help="images to calibrate the activation ranges on: a folder (searched recursively) of photos "
        "like the ones the model will inpaint, or 'builtin' (the training photos bundled with "
        "scikit-image); each sample is a seeded random crop with a procedural irregular mask",
    )
    q.add_argument(
        "--calibration-count", type=int, default=None, metavar="N", help="calibration samples (default 16)"
    )
    q.add_argument(
        "--calibration-size",
        type=int,
        default=None,
        metavar="PX",
        help="side of the calibration crops (default: the fixed --height/--width, else 512, rounded up "
        "to the model's size multiple)",
    )
    q.add_argument("--calibration-seed", type=int, default=0, help="seed of crops and masks (default 0)")
    q.add_argument(
        "--int8-target",
        choices=tuple(INT8_TARGETS),
        default="onnxruntime",
        help="onnxruntime: uint8 asymmetric activations, which ONNX Runtime on x86 fuses into integer "
        "QLinearConv kernels (VNNI); tensorrt: symmetric int8 activations (zero point 0), the only "
        "kind TensorRT builds (ONNX Runtime runs those convolutions in float). Default: onnxruntime",
    )
    q.add_argument(
        "--int8-keep-fp32",
        default=None,
        metavar="LAYER[,LAYER]",
        help="layers whose convolutions stay FP32 (names as enc1..encD, decD..dec1; default: the last "
        "layer, dec1). More layers: closer to FP32, slower; e.g. dec2,dec1",
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
    c.add_argument(
        "--min-psnr",
        type=float,
        default=None,
        metavar="DB",
        help="INT8 graphs: pass if output and composite reach this PSNR against FP32 PyTorch on real "
        "held-out photos with irregular holes (default 30)",
    )
    c.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    c.add_argument("--verbose", action="store_true", help="show Polygraphy's own log")
    c.set_defaults(func=_run_check)


def _int8_options(args: argparse.Namespace) -> Int8Options | None:
    """``Int8Options`` from the flags; int8 flags without ``--precision int8`` are an error, not ignored."""
    from pconv.export.onnx_export import ExportError
    from pconv.export.quantize import DEFAULT_CALIBRATION_COUNT, Int8Options

    given = [
        flag
        for flag, value in (
            ("--calibration", args.calibration),
            ("--calibration-count", args.calibration_count),
            ("--calibration-size", args.calibration_size),
            ("--int8-keep-fp32", args.int8_keep_fp32),
        )
        if value is not None
    ]
    if args.precision != "int8":
        if given:
            raise ExportError(f"{given[0]} only applies to --precision int8")
        return None
    if args.calibration is None:
        raise ExportError(
            "--precision int8 needs calibration images: add --calibration DIR (photos like the ones "
            "you will inpaint) or --calibration builtin"
        )
    options = Int8Options(
        calibration=args.calibration,
        count=args.calibration_count if args.calibration_count is not None else DEFAULT_CALIBRATION_COUNT,
        seed=args.calibration_seed,
        size=args.calibration_size,
        target=args.int8_target,
        keep_fp32=tuple(n.strip() for n in args.int8_keep_fp32.split(",") if n.strip())
        if args.int8_keep_fp32
        else None,
    )
    options.validate()
    return options


def _run_export(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pconv.export.onnx_export import DEFAULT_OPSET, export_onnx, load_source, summarize
    from pconv.terminal import show_progress

    int8 = _int8_options(args)  # option errors before the (slow) checkpoint load

    with tqdm(total=3, desc="pconv export", unit="step", leave=False, disable=not show_progress()) as bar:
        bar.set_postfix_str("loading checkpoint")
        model = load_source(args.checkpoint)
        bar.update()
        bar.set_postfix_str(
            "building, calibrating and quantizing" if int8 is not None else "building and checking the graph"
        )
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
            int8=int8,
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
    if info.get("calibration"):
        print(f"  int8: {info['int8_activations']} activations, calibration {info['calibration']}")
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
        min_psnr=args.min_psnr,
    )
    print(report_json(report) if args.json else report.table())
    return 0 if report.passed else 1
