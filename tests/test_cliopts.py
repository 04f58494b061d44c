"""Options stated once (pconv.cliopts): the flags, defaults and checks of the CLIs come from the options."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pconv.apps.cli import main
from pconv.cliopts import OptionError, add_options, check, cli_fields, comma_list, flag_of, from_args, option
from pconv.engine.options import BuildOptions, EngineBuildOptions
from pconv.errors import PconvError
from pconv.eval.options import EvalOptions, MasksOptions
from pconv.export.options import CheckOptions, ExportOptions
from pconv.plugins.build import PluginBuildOptions
from pconv.runtime.options import BenchOptions, InpaintOptions, ModelOptions
from pconv.training.options import TrainOptions

OPTIONS = (
    TrainOptions,
    EvalOptions,
    MasksOptions,
    PluginBuildOptions,
    ModelOptions,
    InpaintOptions,
    BenchOptions,
    BuildOptions,
    EngineBuildOptions,
    ExportOptions,
    CheckOptions,
)
#: The modules whose register() builds a subcommand parser (``pconv --help`` builds them all).
CLI_MODULES = (
    "pconv.training.cli",
    "pconv.eval.cli",
    "pconv.plugins.cli",
    "pconv.runtime.cli",
    "pconv.engine.cli",
    "pconv.export.cli",
)


@dataclass
class Sample:
    name: str = option(help="required: no default")
    count: int = option(3, at_least=1, help="how many")
    ratio: float | None = option(None, help="optional")
    kind: str = option("a", choices=("a", "b"), help="which")
    items: tuple[str, ...] = option(("x", "y"), parse=comma_list, help="a list")
    where: Path = option(Path("here"), help="a folder")
    verbose: bool = option(False, help="say more")
    progress: bool = option(True, flags=("--quiet", "-q"), help="no bar")
    library_only: int = 7  # not on the command line

    def __post_init__(self) -> None:
        check(self)


def _parser(cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t")
    add_options(parser, cls)
    return parser


def test_args_become_the_dataclass_and_unset_options_keep_its_defaults() -> None:
    parser = _parser(Sample)
    opts = from_args(Sample, parser.parse_args(["--name", "n", "--items", "p, q", "-q", "--verbose"]))
    assert opts == Sample(name="n", items=("p", "q"), progress=False, verbose=True)
    assert from_args(Sample, parser.parse_args(["--name", "n"]), library_only=9).library_only == 9
    assert "library_only" not in vars(parser.parse_args(["--name", "n"]))  # argparse holds no copies
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --name has no default: required


def test_help_shows_the_dataclass_defaults_and_choices(capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(_parser(Sample).format_help().split())
    assert "how many (default: 3)" in text and "a list (default: x,y)" in text
    assert "a folder (default: here)" in text and "--kind {a,b}" in text
    assert "optional (default" not in text and "say more (default" not in text  # None, switches: no default


def test_declared_checks_name_the_flag() -> None:
    with pytest.raises(OptionError, match=r"^--count must be >= 1; got 0$"):
        Sample(name="n", count=0)
    with pytest.raises(OptionError, match=r"^--kind must be one of a, b; got 'c'$"):
        Sample(name="n", kind="c")
    assert flag_of(Sample, "progress") == "--quiet" and flag_of(Sample, "ratio") == "--ratio"
    assert issubclass(OptionError, PconvError) and issubclass(OptionError, ValueError)


def test_positional_arguments_and_groups() -> None:
    @dataclass
    class Build:
        onnx: Path = option(positional=True, help="the model")
        out: Path | None = option(None, positional=True, help="where to")
        small: str | None = option(None, group="shapes", help="smallest shape")

    parser = argparse.ArgumentParser(prog="t")
    shapes = parser.add_argument_group("shapes")
    add_options(parser, Build, groups={"shapes": shapes})
    assert from_args(Build, parser.parse_args(["m.onnx"])) == Build(onnx=Path("m.onnx"))
    assert from_args(Build, parser.parse_args(["m.onnx", "e", "--small", "1x8x8"])) == Build(
        Path("m.onnx"), Path("e"), "1x8x8"
    )
    assert [a.dest for a in shapes._group_actions] == ["small"]
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_an_optional_value_a_shown_default_and_a_required_field_after_defaults() -> None:
    @dataclass
    class Base:
        size: tuple[int, int] = option(
            (2, 3), parse=comma_list, show=lambda v: "x".join(map(str, v)), help="s"
        )
        json: str | None = option(None, const="-", metavar="PATH", help="report")

    @dataclass
    class Sub(Base):
        out: str = option(help="where", kw_only=True)

    parser = _parser(Sub)
    assert from_args(Sub, parser.parse_args(["--out", "o"])) == Sub(out="o")  # no flag: the default
    assert from_args(Sub, parser.parse_args(["--out", "o", "--json"])).json == "-"  # flag alone: const
    assert from_args(Sub, parser.parse_args(["--out", "o", "--json", "r.json"])).json == "r.json"
    text = " ".join(parser.format_help().split())
    assert "s (default: 2x3)" in text and "--json [PATH]" in text
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --out is still required


def test_a_type_argparse_cannot_convert_needs_parse() -> None:
    @dataclass
    class Bad:
        pair: tuple[int, int] = option((1, 2), help="no parse given")

    with pytest.raises(TypeError, match=r"Bad\.pair"):
        _parser(Bad)


@pytest.mark.parametrize("cls", OPTIONS)
def test_every_option_of_the_stages_is_on_the_command_line(cls: type) -> None:
    assert [f.name for f, _ in cli_fields(cls)] == [f.name for f in dataclasses.fields(cls)]
    _parser(cls)  # builds: every field has a type argparse can read


def test_cli_defaults_are_the_library_defaults() -> None:
    """Parsing no options gives exactly the dataclass made with no arguments."""
    import importlib

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    for name in CLI_MODULES:
        importlib.import_module(name).register(sub)
    assert from_args(TrainOptions, parser.parse_args(["train"])) == TrainOptions()
    assert from_args(PluginBuildOptions, parser.parse_args(["build-plugin"])) == PluginBuildOptions()
    ev = from_args(EvalOptions, parser.parse_args(["eval", "--per-bin", "2"]))
    assert ev == EvalOptions(per_bin=2) and ev.baselines == ("telea", "ns", "mean")
    assert from_args(
        MasksOptions, parser.parse_args(["masks", "--out", "o", "--per-bin", "1"])
    ) == MasksOptions(out=Path("o"), per_bin=1)
    inpaint = ["inpaint", "--image", "i", "--mask", "m", "--out", "o"]
    assert from_args(InpaintOptions, parser.parse_args(inpaint)) == InpaintOptions(
        image="i", mask="m", out="o"
    )
    assert from_args(BenchOptions, parser.parse_args(["bench"])) == BenchOptions()
    build = from_args(EngineBuildOptions, parser.parse_args(["build", "m.onnx"]))
    assert build == EngineBuildOptions(onnx=Path("m.onnx")) and build.engine_path == Path("m.engine")
    library = {f.name: getattr(build, f.name) for f in dataclasses.fields(BuildOptions)}
    assert BuildOptions(**library) == BuildOptions()  # the CLI's build options are the library's defaults
    export = from_args(ExportOptions, parser.parse_args(["export", "c.safetensors", "-o", "m.onnx"]))
    assert export == ExportOptions(checkpoint=Path("c.safetensors"), output=Path("m.onnx"))
    assert export.int8_options() is None
    assert from_args(CheckOptions, parser.parse_args(["check", "m.onnx"])) == CheckOptions(
        model=Path("m.onnx")
    )


def test_the_cli_flags_parse_into_the_options() -> None:
    """Renamed flags (--min, --no-plugin, --fp16, -o) and comma lists reach the right fields."""
    from pconv.apps.cli import build_parser

    argv = ["build", "m.onnx", "-o", "e.plan", "--min", "1x64x64", "--opt", "2x128x128", "--no-plugin"]
    build = from_args(EngineBuildOptions, build_parser().parse_args([*argv, "--fp16", "--workspace", "0.5"]))
    assert (build.min_shape, build.opt_shape, build.max_shape) == ((1, 64, 64), (2, 128, 128), None)
    assert not build.use_default_plugin and build.fp16_flag and build.workspace_gib == 0.5
    assert build.engine_path == Path("e.plan")
    argv = ["export", "c", "-o", "m.onnx", "--precision", "int8", "--calibration", "builtin"]
    export = from_args(ExportOptions, build_parser().parse_args([*argv, "--int8-keep-fp32", "dec2, dec1"]))
    int8 = export.int8_options()
    assert int8 is not None and int8.keep_fp32 == ("dec2", "dec1") and int8.count == 16


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--hole-ratio", "0.6,0.2"], "--hole-ratio needs 0 <= LO <= HI <= 1; got 0.6,0.2"),
        (["train", "--batch", "0"], "--batch must be >= 1; got 0"),
        (["train", "--amp", "fp8"], "--amp must be one of off, bf16, fp16; got 'fp8'"),
        (["train", "--lr", "-1"], "--lr must be > 0; got -1.0"),
        (["eval", "--per-bin", "1", "--limit", "0"], "--limit must be >= 1; got 0"),
        (["eval", "--per-bin", "1", "--baselines", "telea,nope"], "--baselines: unknown baseline(s) nope"),
        (["eval", "--per-bin", "1", "--strategy", "resize"], "--strategy must be one of auto, full, crop"),
        (["masks", "--out", "o"], "pass --per-bin N to generate masks (or --from DIR"),
        (["build-plugin", "--arch", "sm_80"], "--arch takes SM numbers such as 80,90"),
        (["build-plugin", "-j", "0"], "--jobs must be >= 1; got 0"),
        (
            ["inpaint", "--image", "i", "--mask", "m", "--out", "o", "--quality", "0"],
            "--quality must be >= 1; got 0",
        ),
        (["bench", "--iterations", "0"], "--iterations must be >= 1; got 0"),
        (["bench", "--backend", "trt"], "--backend must be one of auto, onnxruntime, tensorrt; got 'trt'"),
        (["build", "m.onnx", "--workspace", "0"], "--workspace must be positive (GiB), got 0.0"),
        (["build", "m.onnx", "--device", "-1"], "--device must be >= 0; got -1"),
        (
            ["export", "c", "-o", "m.onnx", "--form", "tiles"],
            "--form must be one of explicit, plugin; got 'tiles'",
        ),
        (["export", "c", "-o", "m.onnx", "--io", "int8"], "--io must be one of fp32, fp16; got 'int8'"),
        (["export", "c", "-o", "m.onnx", "--calibration-count", "4"], "--calibration-count only applies to"),
        (["export", "c", "-o", "m.onnx", "--precision", "int8"], "--precision int8 needs calibration images"),
        (
            ["export", "c", "-o", "m.onnx", "--precision", "int8", "--int8-target", "x"],
            "--int8-target must be one",
        ),
    ],
)
def test_bad_values_are_one_line_errors_before_any_work(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written: the options fail first
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pconv {argv[0]}: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_a_value_that_cannot_be_read_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--hole-ratio", "half"])
    assert info.value.code == 2
    assert "argument --hole-ratio: expected LO,HI such as 0.1,0.5; got 'half'" in capsys.readouterr().err
    for argv, flag in (
        (["bench", "--shape", "2x64"], "--shape"),
        (["build", "m.onnx", "--max", "1x8"], "--max"),
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        err = capsys.readouterr().err
        assert info.value.code == 2 and f"argument {flag}: '" in err and "expected NxHxW" in err


@pytest.mark.parametrize("name", CLI_MODULES)
def test_the_stage_options_and_clis_import_neither_numpy_nor_torch(name: str) -> None:
    """`pconv --help` builds these parsers: their options modules must stay standard-library only.

    The runtime package itself imports numpy (``pconv.runtime`` exports the Inpainter), so its CLI is
    held to the heavier modules only: no onnx, onnxruntime, torch or TensorRT.
    """
    heavy = ("torch", "onnx", "onnxruntime", "tensorrt", "cv2")
    if not name.startswith("pconv.runtime"):
        heavy += ("numpy", "PIL")
    options = (
        name.replace(".cli", ".options") if not name.startswith("pconv.plugins") else "pconv.plugins.build"
    )
    code = (
        "import argparse, importlib, sys\n"
        f"importlib.import_module({name!r}).register(argparse.ArgumentParser().add_subparsers())\n"
        f"importlib.import_module({options!r})\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]", name
