"""Step 3 of ``pconv build``: which PartialConv2d plugin library to load, loaded before parsing.

The ONNX parser maps a plugin-form node to ``pconv::PartialConv2d`` only if the creator is already
registered when it parses (TensorRT >= 10.7; older parsers inline the node's local function), so
the library is chosen and loaded here, and :mod:`pconv.engine.network` checks what the parser did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pconv.engine.errors import BuildError
from pconv.engine.facts import OnnxFacts
from pconv.trt.registry import find_library, load_plugin_library


def check_requested(plugin_library: Path | None) -> None:
    """A ``--plugin`` path that does not exist fails before TensorRT starts."""
    if plugin_library is not None and not plugin_library.expanduser().is_file():
        raise BuildError(
            f"--plugin {plugin_library}: no such file; build the library with `pconv build-plugin` "
            "(it prints the path) or leave --plugin out to use the package's built one"
        )


def choose(facts: OnnxFacts, requested: Path | None, use_default: bool, warnings: list[str]) -> Path | None:
    """The library to load: the requested one, else the package's built one for a plugin-form ONNX."""
    path = requested
    if path is None and use_default and facts.form == "plugin":
        path = find_library()
        if path is None:
            warnings.append(
                "plugin-form ONNX but no plugin library found (build it with `pconv build-plugin` or "
                "pass --plugin): TensorRT uses the nodes' explicit function bodies"
            )
    if path is not None and facts.form != "plugin":
        warnings.append(
            f"{facts.path.name} is explicit form (no PartialConv2d nodes): the plugin is not used; "
            "export with `pconv export --form plugin` to use it"
        )
        return None
    return path


def load(trt: Any, facts: OnnxFacts, path: Path | None, warnings: list[str]) -> None:
    """Register the library's creators with TensorRT (once per process), warning about old exports."""
    if path is None:
        return
    load_plugin_library(trt, path)
    if facts.plugin_nodes_without_namespace:
        warnings.append(
            f"{len(facts.plugin_nodes_without_namespace)} PartialConv2d nodes lack the "
            "plugin_namespace attribute, so the parser will inline them; re-export the ONNX"
        )
