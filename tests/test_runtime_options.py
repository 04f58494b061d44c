"""pconv.runtime.options: the inpaint/bench flags are generated from the options, checked once."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import subprocess
import sys

import pytest

from pconv.apps.cli import build_parser, main
from pconv.cliopts import cli_fields, flag_of, from_args
from pconv.errors import OptionError, PconvError
from pconv.runtime import Inpainter
from pconv.runtime.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_STRATEGY,
    BenchOptions,
    InpaintOptions,
    ModelOptions,
)

REQUIRED = ["--image", "i.png", "--mask", "m.png", "--out", "o"]


@pytest.mark.parametrize(("command", "cls"), [("inpaint", InpaintOptions), ("bench", BenchOptions)])
def test_every_field_is_a_flag_with_the_fields_default(command: str, cls: type[ModelOptions]) -> None:
    """Each option field has its own flag on the parser, and parsing nothing gives the field defaults."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {flag for action in sub.choices[command]._actions for flag in action.option_strings}
    for f, _spec in cli_fields(cls):
        assert flag_of(cls, f.name) in flags, f.name
    opts = from_args(cls, parser.parse_args([command, *(REQUIRED if command == "inpaint" else [])]))
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            assert getattr(opts, f.name) == f.default, f.name


def test_flags_reach_the_options() -> None:
    argv = ["inpaint", *REQUIRED, "--batch", "2", "--strategy", "crop", "--mask-is-valid", "--quality", "80"]
    opts = from_args(InpaintOptions, build_parser().parse_args(argv))
    assert (opts.batch, opts.strategy, opts.mask_is_valid, opts.quality) == (2, "crop", True, 80)
    bench = from_args(BenchOptions, build_parser().parse_args(["bench", "--shape", "2x64x32", "--json"]))
    assert from_args(BenchOptions, build_parser().parse_args(["bench", "--json", "r.json"])).json == "r.json"
    assert bench.shape == (2, 64, 32) and bench.json == "-"
    assert (
        ModelOptions(providers=" A, B ,").provider_list == ["A", "B"] and ModelOptions().provider_list is None
    )


def test_the_inpainter_shares_the_batch_and_strategy_defaults() -> None:
    call = inspect.signature(Inpainter.__call__).parameters
    assert call["batch_size"].default == DEFAULT_BATCH_SIZE == InpaintOptions.batch
    assert call["strategy"].default == DEFAULT_STRATEGY == InpaintOptions.strategy


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch": 0}, "--batch must be >= 1"),
        ({"mask_dilate": -1}, "--mask-dilate must be >= 0"),
        ({"quality": 101}, "--quality must be <= 100; got 101"),
        ({"quality": 0}, "--quality must be >= 1; got 0"),
        ({"mask_threshold": 1.0}, r"mask threshold must be in \[0, 1\)"),
        ({"strategy": "tiles"}, "--strategy must be one of auto, full, crop, resize"),
        ({"format": "gif"}, "--format must be one of png, jpg, webp"),
    ],
)
def test_inpaint_options_are_checked_when_made(change: dict[str, object], message: str) -> None:
    with pytest.raises(PconvError, match=message):  # OptionError; the threshold's is the core's PconvError
        InpaintOptions(image="i", mask="m", out="o", **change)  # type: ignore[arg-type]


def test_bench_options_are_checked_when_made() -> None:
    with pytest.raises(OptionError, match=r"^--iterations must be >= 1; got 0$"):
        BenchOptions(iterations=0)
    with pytest.raises(OptionError, match=r"^--warmup must be >= 0; got -1$"):
        BenchOptions(warmup=-1)
    with pytest.raises(
        OptionError, match=r"^--backend must be one of auto, onnxruntime, tensorrt; got 'trt'$"
    ):
        BenchOptions(backend="trt")


def test_a_bad_flag_value_is_a_one_line_error_before_any_model_is_opened(capsys) -> None:
    assert main(["inpaint", "--model", "missing.onnx", *REQUIRED, "--batch", "0"]) == 2
    err = capsys.readouterr().err
    assert "--batch must be >= 1" in err and "missing.onnx" not in err and len(err.strip().splitlines()) == 1


def test_options_and_the_runtime_parser_need_no_onnxruntime() -> None:
    code = (
        "import sys, argparse\n"
        "for name in ('onnxruntime', 'onnx', 'torch', 'tensorrt'): sys.modules[name] = None\n"
        "from pconv.runtime import cli\n"
        "p = argparse.ArgumentParser(); cli.register(p.add_subparsers())\n"
        "import pconv.runtime.options as o\n"
        "assert o.InpaintOptions.__module__ == 'pconv.runtime.options'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'onnxruntime' and sys.modules[m]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
