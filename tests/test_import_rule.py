"""The import rule: one pipeline, one direction, read from the source (AST), imports by string included.

Every module belongs to the core (``pconv/``) or to one stage; :data:`ALLOWED` says which other parts
each may import. A module's dependencies are its ``import`` statements (at any depth, lazy ones too)
and the ``pconv.*`` module names it passes to ``importlib.import_module``/``__import__``/``find_spec``
or keeps in string tables (how the CLI finds the stage commands). Run this file as a script to print
the stage-to-stage edges.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> its folder (the layout of pyproject.toml's [tool.setuptools] package-dir).
FOLDERS = {
    "pconv": "pconv",
    "pconv.training": "training",
    "pconv.export": "export",
    "pconv.engine": "engine",
    "pconv.plugins": "plugins",
    "pconv.runtime": "runtime",
    "pconv.eval": "eval",
    "pconv.apps": "apps",
    "pconv.serving": "serving",
}
#: What each part may import besides itself. The core imports no stage; the runtime only the core;
#: apps anything; nothing imports apps.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "training": {"core"},
    "export": {"core", "training"},
    "engine": {"core"},
    "plugins": {"core", "training", "export"},  # the fused-kernel harness runs trained models
    "runtime": {"core"},
    "eval": {"core", "runtime"},
    "serving": {"core", "runtime"},  # Triton repositories and the launcher around the runtime
    "apps": {"core", "training", "export", "engine", "plugins", "runtime", "eval", "serving"},
}
#: Edges that break the table on purpose, each with its reason.
EXEMPT = {
    ("pconv.__main__", "pconv.apps.cli"): "`python -m pconv` starts the application",
    ("pconv.trt.registry", "pconv.plugins"): "find_spec locates the plugin folder without importing it",
}
#: Libraries the torch-free parts never import, lazily or not.
FORBIDDEN_LIBRARIES = {
    "core": {"torch", "onnx", "onnxscript"},
    "runtime": {"torch", "onnx", "onnxscript"},
    "serving": {"torch", "onnx", "onnxscript"},  # a serving image needs numpy, onnxruntime, tritonclient
}
_IMPORTERS = ("import_module", "__import__", "find_spec")
_MODULE_NAME = re.compile(r"^pconv(\.[a-z_0-9]+)+$")


def part_of(module: str) -> str:
    """``pconv.runtime.cli`` -> ``runtime``; core modules (``pconv.config``, ``pconv.trt.cuda``): ``core``."""
    parts = module.split(".")
    if len(parts) >= 2 and f"pconv.{parts[1]}" in FOLDERS:
        return parts[1]
    return "core"


def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("").parts
            if package == "pconv" and rel and f"pconv.{rel[0]}" in FOLDERS:
                continue
            name = ".".join((package, *rel)).removesuffix(".__init__")
            found[name] = path
    return found


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def dependencies(module: str, path: Path) -> tuple[set[str], set[str]]:
    """(pconv modules, top-level third-party names) that ``module`` imports, by statement or string."""
    tree = ast.parse(path.read_text(), str(path))
    ours: set[str] = set()
    libraries: set[str] = set()

    def add(name: str) -> None:
        (ours if name.split(".")[0] == "pconv" else libraries).add(
            name if name.startswith("pconv") else name.split(".")[0]
        )

    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, path.name == "__init__.py")
            add(target)
            if target.startswith("pconv"):  # `from pconv import formula` imports pconv.formula
                ours.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in ALL_MODULES)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _IMPORTERS and isinstance(node.args[0].value, str):
                add(node.args[0].value)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and _MODULE_NAME.match(node.value)
            and node.value in ALL_MODULES
        ):
            ours.add(node.value)
    ours.discard(module)
    return ours, libraries


ALL_MODULES = set(modules())


def violations() -> list[str]:
    found = []
    for module, path in modules().items():
        ours, libraries = dependencies(module, path)
        part = part_of(module)
        for dep in sorted(ours):
            other = part_of(dep)
            if other == part or (module, dep) in EXEMPT:
                continue
            if other not in ALLOWED[part]:
                found.append(f"{module} ({part}) imports {dep} ({other})")
        for library in sorted(libraries & FORBIDDEN_LIBRARIES.get(part, set())):
            found.append(f"{module} ({part}) imports {library}")
    return found


def edges() -> dict[tuple[str, str], int]:
    """(importing part, imported part) -> number of module-level dependencies, exemptions included."""
    count: dict[tuple[str, str], int] = defaultdict(int)
    for module, path in modules().items():
        for dep in dependencies(module, path)[0]:
            if part_of(dep) != part_of(module):
                count[(part_of(module), part_of(dep))] += 1
    return dict(count)


def test_every_import_follows_the_pipeline_direction() -> None:
    assert violations() == []


def test_every_package_of_the_distribution_has_a_place_in_the_rule() -> None:
    """A new stage folder must be classified here before its imports can be checked."""
    text = (ROOT / "pyproject.toml").read_text()
    declared = set(re.findall(r'"(pconv(?:\.[a-z_]+)?)"\s*=\s*"[a-z_]+"', text))
    assert declared == set(FOLDERS)
    assert set(ALLOWED) == {part_of(p) for p in FOLDERS}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from pconv.runtime import Inpainter\n", "pconv.runtime"),
        ("import importlib\nimportlib.import_module('pconv.training.train')\n", "pconv.training.train"),
        ("def f():\n    from pconv.export.check import check_onnx\n", "pconv.export.check"),
        ("STAGES = ('pconv.eval.cli',)\n", "pconv.eval.cli"),
    ],
)
def test_the_walker_sees_statements_lazy_imports_and_strings(
    tmp_path: Path, source: str, expected: str
) -> None:
    """The checker itself: a core module written each way is caught as importing a stage."""
    path = tmp_path / "probe.py"
    path.write_text(source)
    ours, _ = dependencies("pconv.probe", path)
    assert expected in ours or any(d.startswith(expected) for d in ours)
    assert part_of(expected) != "core"


def test_torch_free_parts_never_name_torch(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    import torch.nn\n")
    assert "torch" in dependencies("pconv.runtime.probe", path)[1]


if __name__ == "__main__":
    for (a, b), n in sorted(edges().items()):
        print(f"{a:>9} -> {b:<9} {n:3d} module dependencies")
    problems = violations()
    print("violations:", *problems or ["none"], sep="\n  ")
    sys.exit(1 if problems else 0)
