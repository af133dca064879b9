"""Command-line flags made from an options dataclass, and the dataclass built from them.

Every field of a frozen options dataclass becomes one flag (``batch_size`` -> ``--batch-size``):
its type, default and choices (a ``Literal``) come from the field, its help from the field's
``help`` metadata (``option(...)``). ``--set key=value`` sets any field by name. The values are
typed by the same coercion as recipe values (``kdnlu.config.build_dataclass``), so a default
lives in the dataclass alone and a bad value is reported as a bad recipe value is: where it
was given (``--batch-size abc`` or ``--set batch_size=abc``), the key, what was expected.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Collection, Sequence
from typing import Any, Literal, TypeVar

from kdnlu.config import Context, FieldError, SetValue, build_dataclass, config_fields
from kdnlu.errors import KdnluError, RecipeError
from kdnlu.yaml_source import KeyPath, Location

T = TypeVar("T")


class OptionError(FieldError, KdnluError):
    """A ``FieldError`` of a command's options: built from flags it is reported where the
    value was given, and built in code it is still an error for people (a ``KdnluError``)."""


def option(
    default: Any,
    help: str = "",
    flag: str | None = None,
    metavar: str | None = None,
    sep: str | None = None,
) -> Any:
    """A dataclass field that is also a command-line flag.

    ``flag`` names the flag when it is not the field's name with dashes; ``sep`` reads a tuple
    from one word (``--layers 0,2,4``) instead of one word per item (``--splits train dev``).
    """
    metadata = {"help": help, "flag": flag, "metavar": metavar, "sep": sep}
    if isinstance(default, (list, dict, set)):
        raise TypeError("an option's default must be immutable (a tuple, not a list)")
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(f: dataclasses.Field) -> str:
    """The flag of a field: ``--`` and its name with dashes, unless its metadata names one."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _shown(value: Any, sep: str | None) -> str:
    if isinstance(value, tuple):
        return (sep or " ").join(str(v) for v in value)
    return str(value)


def _flag_kwargs(f: dataclasses.Field, tp: Any) -> dict[str, Any]:
    """argparse keywords of one field's flag (its values stay text: typed on building)."""
    default = _default_of(f)
    text = f.metadata.get("help") or ""
    if default is dataclasses.MISSING:
        kwargs: dict[str, Any] = {"required": True}
    else:
        kwargs = {"default": None}
        if default is not None and default is not False:
            text = f"{text} (default: {_shown(default, f.metadata.get('sep'))})".strip()
    kwargs["help"] = text or None
    if tp is bool:
        kwargs["action"] = "store_true"
        return kwargs
    if f.metadata.get("metavar"):
        kwargs["metavar"] = f.metadata["metavar"]
    tp = _without_none(tp)
    args = typing.get_args(tp)
    if typing.get_origin(tp) is Literal and all(isinstance(a, str) for a in args):
        kwargs["choices"] = list(args)
    if typing.get_origin(tp) is tuple and not f.metadata.get("sep"):
        kwargs["nargs"] = "+"
    return kwargs


def _without_none(tp: Any) -> Any:
    """``X`` of ``X | None`` (a flag gives a value; ``--set key=null`` gives None)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return tp


def add_options(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: Collection[str] = (),
    set_help: str | None = None,
) -> None:
    """One flag per field of ``cls`` (but those in ``skip``), and ``--set key=value``."""
    for f, tp in config_fields(cls):
        if f.name in skip:
            continue
        if tp is bool and _default_of(f) is not False:
            raise TypeError(f"{cls.__name__}.{f.name}: a flag's bool field must default to False")
        parser.add_argument(flag_of(f), dest=f.name, **_flag_kwargs(f, tp))
    names = ", ".join(f.name for f, _ in config_fields(cls) if f.name not in skip)
    parser.add_argument(
        "--set",
        dest="option_sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=set_help or f"set an option by its name, typed as its flag is (repeatable): {names}",
    )


def _given(f: dataclasses.Field, value: Any) -> tuple[Any, str]:
    """A flag's parsed value as recipe text (typed on building), and how it was written."""
    if isinstance(value, bool):
        return value, flag_of(f)
    sep = f.metadata.get("sep")
    if isinstance(value, list):
        return [SetValue(v) for v in value], f"{flag_of(f)} {' '.join(value)}"
    if sep is not None:
        items = [SetValue(v.strip()) for v in value.split(sep) if v.strip()]
        return items, f"{flag_of(f)} {value}"
    return SetValue(value), f"{flag_of(f)} {value}"


def build_options(cls: type[T], args: argparse.Namespace, sets: Sequence[str] | None = None) -> T:
    """``cls`` from the flags ``add_options`` made, then the ``--set`` values (``sets``, else
    those parsed into ``args``; given later, they win). Bad values raise a located RecipeError."""
    raw: dict[str, Any] = {}
    locations: dict[KeyPath, Location] = {}
    for f, _ in config_fields(cls):
        value = getattr(args, f.name, None)
        if value is not None:
            raw[f.name], written = _given(f, value)
            locations[(f.name,)] = Location(written)
    for text in getattr(args, "option_sets", []) if sets is None else sets:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RecipeError(f"--set {text}: expected KEY=VALUE, e.g. --set batch_size=32")
        raw[key] = SetValue(value)
        locations[(key,)] = Location(f"--set {text}")
    ctx = Context(locations=locations, default_location=Location("the command line"))
    return build_dataclass(cls, raw, (), ctx)


CheckpointChoice = Literal["auto", "best", "last"]
"""Which checkpoint of a run: ``auto`` is best where there is one, else last."""
DeviceChoice = Literal["auto", "cpu", "cuda"]


def option_names(cls: type) -> tuple[str, ...]:
    """The keys a mapping of ``cls``'s options may have: its field names."""
    return tuple(f.name for f, _ in config_fields(cls))
