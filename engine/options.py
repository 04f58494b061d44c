"""The options of an engine build (``pconv build`` and :func:`~pconv.engine.build.build_engine`), stated once.

:class:`BuildOptions` holds how to build (profile shapes, plugin, timing cache, workspace, precision
flags, device); its fields are :func:`pconv.cliopts.option` fields, so ``pconv build``'s flags, defaults
and help come from them, and a library caller gets the same checks (``__post_init__``; the checks that
need the ONNX are :meth:`BuildOptions.check`). :class:`EngineBuildOptions` adds what only the command
line has: the ONNX, the output path and how to report.

Standard library only (plus the stdlib-only core): ``pconv --help`` builds this parser without onnx
or TensorRT.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pconv.cliopts import check, flag_of, option
from pconv.contract import Shape3, format_nhw, nhw_arg
from pconv.errors import OptionError

if TYPE_CHECKING:
    from pconv.engine.facts import OnnxFacts
    from pconv.engine.profile import Profile

#: TensorRT's workspace memory limit, GiB.
DEFAULT_WORKSPACE_GIB = 4.0
#: The argument groups of ``pconv build``'s options (see :func:`pconv.cliopts.add_options`).
PROFILE_GROUP = "profile"
PLUGIN_GROUP = "plugin"


@dataclass(frozen=True)
class BuildOptions:
    """How to build (everything but the ONNX and the output path); :meth:`check` runs before TensorRT."""

    min_shape: Shape3 | None = option(
        None,
        flags=("--min",),
        help="smallest shape",
        metavar="NxHxW",
        parse=nhw_arg,
        show=format_nhw,
        group=PROFILE_GROUP,
    )
    opt_shape: Shape3 | None = option(
        None,
        flags=("--opt",),
        help="shape to tune kernels for",
        metavar="NxHxW",
        parse=nhw_arg,
        show=format_nhw,
        group=PROFILE_GROUP,
    )
    max_shape: Shape3 | None = option(
        None,
        flags=("--max",),
        help="largest shape",
        metavar="NxHxW",
        parse=nhw_arg,
        show=format_nhw,
        group=PROFILE_GROUP,
    )
    plugin_library: Path | None = option(
        None,
        flags=("--plugin",),
        metavar="LIB",
        help="PartialConv2d plugin library to load before parsing (default: the package's built "
        "library, if present, for plugin-form ONNX)",
        group=PLUGIN_GROUP,
    )
    use_default_plugin: bool = option(
        True,
        flags=("--no-plugin",),
        help="do not load any plugin library: plugin-form nodes use their explicit function bodies",
        group=PLUGIN_GROUP,
    )
    timing_cache: Path | None = option(
        None,
        metavar="FILE",
        help="tactic timing cache to read (if it exists) and update; speeds up rebuilds",
    )
    workspace_gib: float = option(
        DEFAULT_WORKSPACE_GIB,
        flags=("--workspace",),
        metavar="GiB",
        help="TensorRT workspace memory limit in GiB",
        show=lambda gib: f"{gib:g}",
    )
    version_compatible: bool = option(
        False,
        help="build an engine that newer TensorRT releases of the same major version can run "
        "(the plugin library is serialized into it)",
    )
    fp16_flag: bool = option(
        False,
        flags=("--fp16",),
        help="TensorRT 10.x only: build an FP32 ONNX with the FP16 builder flag (weakly typed). "
        "Prefer an FP16 export, which is also the only FP16 route on TensorRT 11",
    )
    allow_tf32: bool = option(
        False,
        flags=("--tf32",),
        help="allow TF32 tensor cores for FP32 layers (faster on Ampere+, ~1e-3 relative error)",
    )
    device: int = option(0, help="CUDA device index to build on", at_least=0)

    def __post_init__(self) -> None:
        check(self)
        if not self.workspace_gib > 0:
            raise OptionError(
                f"{flag_of(BuildOptions, 'workspace_gib')} must be positive (GiB), got {self.workspace_gib}"
            )

    def check(self, facts: OnnxFacts) -> Profile:
        """Every option error that needs the ONNX but no TensorRT; returns the profile."""
        from pconv.engine import plugin
        from pconv.engine.facts import check_precision_facts
        from pconv.engine.profile import resolve_profile

        profile = resolve_profile(facts, self.min_shape, self.opt_shape, self.max_shape)
        plugin.check_requested(self.plugin_library)
        check_precision_facts(facts, self.fp16_flag)
        return profile


@dataclass(frozen=True)
class EngineBuildOptions(BuildOptions):
    """``pconv build``: :class:`BuildOptions` plus the ONNX, the engine path and the report format."""

    onnx: Path = option(positional=True, kw_only=True, help="the pconv ONNX model (from `pconv export`)")
    output: Path | None = option(
        None,
        flags=("-o", "--output"),
        help="engine file to write (default: the ONNX path with .engine); ENGINE.json is written too",
    )
    json: bool = option(False, help="print the build report as JSON")
    verbose: bool = option(False, help="print TensorRT's build log")

    @property
    def engine_path(self) -> Path:
        """``--output``, else the ONNX path with ``.engine``."""
        return self.output if self.output is not None else self.onnx.with_suffix(".engine")
