"""``pconv export`` and ``pconv check``. Only stdlib (and pure-Python pconv.config) at import time;
onnx/torch load inside commands."""

from __future__ import annotations

import argparse

from pconv.cliopts import add_options, from_args
from pconv.export.options import INT8_GROUP, CheckOptions, ExportOptions


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``export`` and ``check`` subcommands (options: :mod:`pconv.export.options`)."""
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
    int8 = p.add_argument_group("int8 (with --precision int8)")
    add_options(p, ExportOptions, groups={INT8_GROUP: int8})
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
    add_options(c, CheckOptions)
    c.set_defaults(func=_run_check)


def _run_export(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pconv.export.onnx_export import export_onnx, load_source, summarize
    from pconv.terminal import show_progress

    opts = from_args(ExportOptions, args)
    int8 = opts.int8_options()  # option errors before the (slow) checkpoint load

    with tqdm(total=3, desc="pconv export", unit="step", leave=False, disable=not show_progress()) as bar:
        bar.set_postfix_str("loading checkpoint")
        model = load_source(opts.checkpoint)
        bar.update()
        bar.set_postfix_str(
            "building, calibrating and quantizing" if int8 is not None else "building and checking the graph"
        )
        path = export_onnx(
            model,
            opts.output,
            form=opts.form,
            precision=opts.precision,
            io=opts.io,
            opset=opts.opset,
            batch=opts.batch,
            height=opts.height,
            width=opts.width,
            decoder=opts.decoder,
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

    opts = from_args(CheckOptions, args)
    report = check_onnx(
        opts.model,
        opts.against,
        atol=opts.atol,
        rtol=opts.rtol,
        batch=opts.batch,
        height=opts.height,
        width=opts.width,
        seed=opts.seed,
        verbose=opts.verbose,
        min_psnr=opts.min_psnr,
    )
    print(report_json(report) if opts.json else report.table())
    return 0 if report.passed else 1
