"""Command-line options made from an options dataclass: each option (flag, default, help, check) stated once.

A stage writes its options as a dataclass whose fields carry :func:`option` metadata. Its CLI calls
:func:`add_options` to get the argparse arguments and :func:`from_args` to get the dataclass back; the
dataclass's ``__post_init__`` calls :func:`check` for the declared checks (choices, bounds) and adds
its own rules for combinations, raising :class:`OptionError`. Why:

* the default ``--help`` shows is the dataclass default (the text is made from it, and argparse
  holds no copy: options not given are left out of the namespace, so the dataclass fills them in);
* the CLI and a library caller get the same validation, with one-line messages naming the flag
  (``pconv`` prints a :class:`~pconv.errors.PconvError` as ``pconv CMD: error: ...``);
* no hand-written ``Options(size=args.size, ...)`` block that can forget a field.

Example (how ``pconv bench`` could state its options)::

    @dataclass
    class BenchOptions:
        shape: Shape3 = option((1, 512, 512), parse=nhw, show=format_nhw, metavar="NxHxW",
                               help="input shape")
        iterations: int = option(50, at_least=1, help="timed runs")
        backend: str = option("auto", choices=BACKENDS, help="inference backend")
        progress: bool = option(True, flags=("--no-progress",), help="hide the progress bar")

        def __post_init__(self) -> None:
            check(self)

    add_options(parser, BenchOptions)          # in register()
    opts = from_args(BenchOptions, args)       # in the command

Rules:

* The flag is ``--field-name`` unless ``flags`` names others (``("--jobs", "-j")``, ``("--from",)``).
* Types come from the annotations: ``int``, ``float``, ``str`` and ``Path`` (each also ``| None``) need
  no ``parse``; anything else (tuples, lists) must give one. ``parse`` only reads the text (syntax);
  a :class:`~pconv.errors.PconvError` it raises becomes argparse's usage error. Ranges and choices are
  checked by :func:`check`, so a library caller gets them too.
* A ``bool`` is a switch: ``--flag`` stores True when the default is False; a default-True bool stores
  False and needs an inverting flag (default ``--no-field-name``, e.g. ``--masks-black-is-hole``).
* A field without a default is a required option; ``positional=True`` makes it an argument without a
  flag (optional on the command line when it has a default). ``group`` puts the option in one of the groups
  passed to :func:`add_options` (argument groups, mutually exclusive groups): layout and usage only,
  a group not passed leaves the option on the parser (the dataclass checks combinations itself).
* Fields without :func:`option` metadata are library-only: not on the command line.
* ``choices`` show in the usage as ``{a,b}``; they are checked by :func:`check`, not argparse, so the
  error is the same one-line message from the CLI and the library.
* ``const`` makes the value optional on the command line: ``--json`` alone means ``const`` (used as
  is, not parsed), ``--json PATH`` the path, no flag the dataclass default.
* ``show`` writes the default in ``--help`` the way a user types it (``format_nhw``: ``1x512x512``);
  ``show_default=False`` for a help text that explains the default itself.
* ``kw_only=True`` lets a required field follow defaulted ones (a subclass adding required options).

Standard library only (``pconv --help`` builds every parser; it must not import numpy or torch).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pconv.errors import OptionError, PconvError

T = TypeVar("T")
_KEY = "pconv.cli"
#: Field types argparse converts itself (``X | None`` too).
_PLAIN_TYPES: tuple[type, ...] = (int, float, str, Path)


@dataclasses.dataclass(frozen=True)
class Option:
    """How one dataclass field appears on the command line (see the module docstring)."""

    help: str
    flags: tuple[str, ...] = ()
    metavar: str | None = None
    choices: tuple[Any, ...] | None = None
    parse: Callable[[str], Any] | None = None
    show: Callable[[Any], str] | None = None  # how --help writes the default
    show_default: bool = True
    at_least: float | None = None
    at_most: float | None = None
    group: str | None = None
    positional: bool = False  # an argument without a flag (``pconv export CHECKPOINT``)
    const: str | None = None  # the flag without a value means this (``--json`` -> "-")


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flags: Sequence[str] = (),
    metavar: str | None = None,
    choices: Sequence[Any] | None = None,
    parse: Callable[[str], Any] | None = None,
    show: Callable[[Any], str] | None = None,
    show_default: bool = True,
    at_least: float | None = None,
    at_most: float | None = None,
    group: str | None = None,
    positional: bool = False,
    const: str | None = None,
    kw_only: bool = False,
) -> Any:
    """A dataclass field (``dataclasses.field``) that is also a command-line option."""
    spec = Option(
        help=help,
        flags=tuple(flags),
        metavar=metavar,
        choices=tuple(choices) if choices is not None else None,
        parse=parse,
        show=show,
        show_default=show_default,
        at_least=at_least,
        at_most=at_most,
        group=group,
        positional=positional,
        const=const,
    )
    return dataclasses.field(default=default, metadata={_KEY: spec}, kw_only=kw_only)


def cli_fields(cls: type) -> list[tuple[dataclasses.Field[Any], Option]]:
    """The fields of ``cls`` that are options, with their :class:`Option`, in declaration order."""
    found = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_KEY)
        if isinstance(spec, Option):
            found.append((f, spec))
    return found


def flag_of(cls: type, name: str) -> str:
    """The main flag of field ``name`` (``hole_ratio`` -> ``--hole-ratio``), for messages."""
    for f, spec in cli_fields(cls):
        if f.name == name:
            return _flags(f, spec)[0]
    return "--" + name.replace("_", "-")


def _flags(f: dataclasses.Field[Any], spec: Option) -> tuple[str, ...]:
    if spec.positional:
        return (f.name,)
    if spec.flags:
        return spec.flags
    if f.default is True:
        return ("--no-" + f.name.replace("_", "-"),)
    return ("--" + f.name.replace("_", "-"),)


def show_value(value: Any) -> str:
    """A default as the user types it: sequences comma-separated, others as ``str``."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def _help(f: dataclasses.Field[Any], spec: Option) -> str:
    text = spec.help
    default = f.default
    shown = spec.show_default and default is not dataclasses.MISSING and default is not None
    if shown and not isinstance(default, bool):
        text += f" (default: {(spec.show or show_value)(default)})"
    return text.replace("%", "%%")  # argparse %-formats help strings; ours are plain text


def _plain_type(hint: Any) -> type | None:
    """``int`` for ``int`` or ``int | None``; None for types argparse cannot convert itself."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else None
    return hint if hint in _PLAIN_TYPES else None


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` for argparse: its :class:`PconvError` becomes argparse's one-line usage error."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except PconvError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def add_options(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    groups: Mapping[str, Any] | None = None,
    exclude: Sequence[str] = (),
) -> None:
    """Add an argument for every option field of ``cls`` (``exclude``: names the CLI states itself)."""
    hints = typing.get_type_hints(cls)
    for f, spec in cli_fields(cls):
        if f.name in exclude:
            continue
        target = (groups or {}).get(spec.group or "", parser)
        kwargs: dict[str, Any] = {"help": _help(f, spec), "default": argparse.SUPPRESS}
        if spec.positional:  # argparse names it by the field; one with a default may be left out
            if f.default is not dataclasses.MISSING:  # (argparse would type-convert SUPPRESS itself)
                kwargs.update(nargs="?", default=f.default)
        else:
            kwargs["dest"] = f.name
            kwargs["required"] = f.default is dataclasses.MISSING
        if hints[f.name] is bool:
            kwargs["action"] = "store_false" if f.default is True else "store_true"
        else:
            parse = spec.parse or _plain_type(hints[f.name])
            if parse is None:
                raise TypeError(f"{cls.__name__}.{f.name}: give option(parse=...) for {hints[f.name]}")
            kwargs["type"] = parse if parse in _PLAIN_TYPES else _argparse_type(parse)
            if spec.const is not None:
                kwargs.update(nargs="?", const=spec.const)
            if spec.metavar is not None:
                kwargs["metavar"] = spec.metavar
            elif spec.choices is not None:
                kwargs["metavar"] = "{" + ",".join(str(c) for c in spec.choices) + "}"
        target.add_argument(*_flags(f, spec), **kwargs)


def from_args(cls: type[T], args: argparse.Namespace, **extra: Any) -> T:
    """``cls`` from the options given on the command line (the dataclass supplies the rest)."""
    given = {f.name: getattr(args, f.name) for f, _ in cli_fields(cls) if hasattr(args, f.name)}
    return cls(**given, **extra)


def check(obj: Any) -> None:
    """Check the declared ``choices`` and bounds of every option of ``obj`` (None means "not given")."""
    for f, spec in cli_fields(type(obj)):
        value = getattr(obj, f.name)
        if value is None or isinstance(value, bool):
            continue
        flag = _flags(f, spec)[0]
        if spec.choices is not None and value not in spec.choices:
            choices = ", ".join(str(c) for c in spec.choices)
            raise OptionError(f"{flag} must be one of {choices}; got {value!r}")
        if spec.at_least is not None and value < spec.at_least:
            raise OptionError(f"{flag} must be >= {spec.at_least:g}; got {value}")
        if spec.at_most is not None and value > spec.at_most:
            raise OptionError(f"{flag} must be <= {spec.at_most:g}; got {value}")


def comma_list(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``: a ``parse`` for comma-separated lists."""
    return tuple(item.strip() for item in text.split(",") if item.strip())
