"""README and CLI stay in step: every `pconv COMMAND --flag` shown in the README exists."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from pconv.apps.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("pconv has no subcommands")


def _readme_commands() -> list[list[str]]:
    text = README.read_text()
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
    commands = []
    for language, block in blocks:
        if language not in ("", "bash"):
            continue
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split("#")[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("pconv "):
                    commands.append(shlex.split(part.replace("[", " ").replace("]", " ")))
    return commands


def test_readme_quick_start_is_make_demo_then_make_test() -> None:
    text = README.read_text()
    quick = text[text.index("## Quick start") :]
    first_block = re.search(r"```bash\n(.*?)```", quick, flags=re.S)
    assert first_block is not None
    lines = [ln.split("#")[0].strip() for ln in first_block.group(1).splitlines() if ln.strip()]
    assert lines[:2] == ["make demo", "make test"]
    assert "make test" in (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()


def test_every_readme_flag_exists_in_the_cli() -> None:
    subparsers = _subparsers()
    commands = _readme_commands()
    assert len(commands) > 15
    for words in commands:
        command = words[1]
        assert command in subparsers, f"README uses unknown command `pconv {command}`"
        known = {opt for action in subparsers[command]._actions for opt in action.option_strings}
        for word in words[2:]:
            if word.startswith("--"):
                flag = word.split("=")[0]
                assert flag in known, f"README uses `pconv {command} {flag}`, which does not exist"
