"""The optimisation profile: the (N, H, W) range an engine accepts, resolved and checked without TensorRT.

Shapes are checked against the ONNX (static dims, the size multiple) before TensorRT starts, so a
typo in ``--opt`` costs a second, not a TensorRT import and a failed build.
"""

from __future__ import annotations

from dataclasses import dataclass

from pconv.contract import Shape3, format_nhw, round_up
from pconv.engine.errors import BuildError
from pconv.engine.facts import OnnxFacts

#: Default profile when no shape is given and the ONNX leaves N, H, W dynamic (min = the size multiple).
DEFAULT_OPT_HW = 512
DEFAULT_MAX_HW = 1024


@dataclass(frozen=True)
class Profile:
    """One optimisation profile: inclusive (N, H, W) ranges of the ``image``/``mask`` inputs."""

    min: Shape3
    opt: Shape3
    max: Shape3

    def describe(self) -> str:
        return f"min {format_nhw(self.min)}, opt {format_nhw(self.opt)}, max {format_nhw(self.max)}"


#: Which flag a shape came from, for the error messages ("--opt 1x60x64: ...").
Labels = dict[str, str]


def _default_shapes(facts: OnnxFacts) -> tuple[Profile, Labels]:
    """Static ONNX dims, else batch 1 and the size multiple / 512 / 1024 (rounded up to the multiple)."""
    m = facts.size_multiple
    defaults = {
        "min": (1, m, m),
        "opt": (1, round_up(DEFAULT_OPT_HW, m), round_up(DEFAULT_OPT_HW, m)),
        "max": (1, round_up(DEFAULT_MAX_HW, m), round_up(DEFAULT_MAX_HW, m)),
    }
    shapes: dict[str, Shape3] = {}
    for key, shape in defaults.items():
        n, h, w = (facts.fixed_dims[a] or v for a, v in zip("NHW", shape))
        shapes[key] = (n, h, w)
    return Profile(**shapes), {key: f"default {key}" for key in shapes}


def _given_shapes(lo: Shape3 | None, mid: Shape3 | None, hi: Shape3 | None) -> tuple[Profile, Labels]:
    """``opt`` defaults to the given ``min``/``max``, and ``min``/``max`` to ``opt``."""
    opt = mid or lo or hi
    assert opt is not None
    mid_flag = "--opt" if mid else "--min" if lo else "--max"
    labels = {"opt": mid_flag, "min": "--min" if lo else mid_flag, "max": "--max" if hi else mid_flag}
    return Profile(min=lo or opt, opt=opt, max=hi or opt), labels


def _check_shape(facts: OnnxFacts, label: str, shape: Shape3) -> None:
    """Static ONNX dims are respected and H, W are multiples of the model's size multiple."""
    for axis, value in zip("NHW", shape):
        fixed = facts.fixed_dims[axis]
        if fixed is not None and value != fixed:
            raise BuildError(
                f"{label} {format_nhw(shape)}: {facts.path.name} has a static {axis} = {fixed}, so "
                f"every profile shape must use {axis} = {fixed} (or re-export with a dynamic {axis})"
            )
    m = facts.size_multiple
    for axis, value in zip("HW", shape[1:]):
        if value % m:
            lower = max(m, value // m * m)
            raise BuildError(
                f"{label} {format_nhw(shape)}: {'height' if axis == 'H' else 'width'} {value} is not "
                f"a multiple of {m} (2^depth for this model); use {lower} or {lower + m}"
            )


def resolve_profile(
    facts: OnnxFacts,
    min_shape: Shape3 | None = None,
    opt_shape: Shape3 | None = None,
    max_shape: Shape3 | None = None,
) -> Profile:
    """The profile to build, from the given shapes (any may be None) checked against the ONNX.

    Missing shapes: ``opt`` defaults to the given ``min``/``max``, and ``min``/``max`` to ``opt``;
    with none given, static ONNX dims are used and dynamic ones get batch 1, size from the model's
    size multiple (min) over 512 (opt) to 1024 (max). Checks: H and W are multiples of the size
    multiple, static ONNX dims are respected, and min <= opt <= max on every axis.
    """
    if min_shape is None and opt_shape is None and max_shape is None:
        profile, labels = _default_shapes(facts)
    else:
        profile, labels = _given_shapes(min_shape, opt_shape, max_shape)
    for key in ("opt", "min", "max"):
        _check_shape(facts, labels[key], getattr(profile, key))
    lo, mid, hi = profile.min, profile.opt, profile.max
    for i, axis in enumerate("NHW"):
        if not lo[i] <= mid[i] <= hi[i]:
            raise BuildError(
                f"profile {profile.describe()}: {axis} must satisfy min <= opt <= max "
                f"({lo[i]} <= {mid[i]} <= {hi[i]} is false)"
            )
    return profile
