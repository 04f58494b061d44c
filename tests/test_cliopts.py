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
from pconv.errors import PconvError
from pconv.eval.options import EvalOptions, MasksOptions
from pconv.plugins.build import PluginBuildOptions
from pconv.training.options import TrainOptions

OPTIONS = (TrainOptions, EvalOptions, MasksOptions, PluginBuildOptions)


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
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    from pconv.eval import cli as eval_cli
    from pconv.plugins import cli as plugin_cli
    from pconv.training import cli as train_cli

    for module in (train_cli, eval_cli, plugin_cli):
        module.register(sub)
    assert from_args(TrainOptions, parser.parse_args(["train"])) == TrainOptions()
    assert from_args(PluginBuildOptions, parser.parse_args(["build-plugin"])) == PluginBuildOptions()
    ev = from_args(EvalOptions, parser.parse_args(["eval", "--per-bin", "2"]))
    assert ev == EvalOptions(per_bin=2) and ev.baselines == ("telea", "ns", "mean")
    assert from_args(
        MasksOptions, parser.parse_args(["masks", "--out", "o", "--per-bin", "1"])
    ) == MasksOptions(out=Path("o"), per_bin=1)


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


def test_the_stage_options_and_clis_import_neither_numpy_nor_torch() -> None:
    """`pconv --help` builds these parsers: their options modules must stay standard-library only."""
    code = (
        "import argparse, sys\n"
        "from pconv.training import cli as t\n"
        "from pconv.eval import cli as e\n"
        "from pconv.plugins import cli as p\n"
        "sub = argparse.ArgumentParser().add_subparsers()\n"
        "for m in (t, e, p): m.register(sub)\n"
        "heavy = sorted(m for m in ('numpy', 'torch', 'PIL', 'onnx', 'cv2') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
