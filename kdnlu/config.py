"""Typed construction of frozen config dataclasses from recipe values, with located errors."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from kdnlu.errors import RecipeError
from kdnlu.yaml_source import KeyPath, Location, format_key_path


class FieldError(ValueError):
    """Raised by a config's ``__post_init__`` to reject one field's value."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


def check_fraction(field_name: str, value: float | None) -> None:
    """Reject a probability-like value (dropout, smoothing) outside [0, 1); None passes."""
    if value is not None and not 0.0 <= value < 1.0:
        raise FieldError(field_name, f"must be in [0, 1), got {value}")


class SetValue(str):
    """A value given as text on the command line (``--set key=text``), typed on validation."""


def doc_field(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    default_factory: Any = dataclasses.MISSING,
    shown_default: str | None = None,
    path: bool = False,
    aliases: tuple[str, ...] = (),
) -> Any:
    """A config field with its reference text: ``help`` says what it means (the recipe tables of
    docs/recipes.md and ``kdnlu list`` show it), ``shown_default`` the default in words where
    the value alone would mislead. ``path`` and ``aliases``: as ``path_field``."""
    metadata: dict[str, Any] = {"help": help}
    if shown_default is not None:
        metadata["shown_default"] = shown_default
    if path:
        metadata.update(path=True, aliases=aliases)
    return field(default=default, default_factory=default_factory, metadata=metadata)


def path_field(
    default: Any = dataclasses.MISSING,
    aliases: tuple[str, ...] = (),
    help: str = "",
    shown_default: str | None = None,
) -> Any:
    """A str field holding a filesystem path, resolved against the file that wrote it.

    Values listed in ``aliases`` (such as ``minilm``) are names, not paths, and stay as written.
    """
    return doc_field(default, help, shown_default=shown_default, path=True, aliases=aliases)


def field_help(f: dataclasses.Field) -> str:
    """The reference text of a config field ("" when it has none)."""
    return f.metadata.get("help", "")


@dataclass
class Context:
    """Where recipe values came from, for error messages and relative paths."""

    locations: dict[KeyPath, Location]
    default_location: Location

    def where(self, path: KeyPath) -> Location:
        for end in range(len(path), -1, -1):
            loc = self.locations.get(path[:end])
            if loc is not None:
                return loc
        return self.default_location

    def error(self, path: KeyPath, message: str) -> RecipeError:
        return RecipeError(f"{self.where(path)}: {message}")


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def describe_type(tp: Any) -> str:
    """Human words for a type annotation, as used by ``kdnlu list`` and errors."""
    origin = typing.get_origin(tp)
    if tp in _TYPE_WORDS:
        return tp.__name__
    if origin in (Union, types.UnionType):
        return " | ".join(
            "None" if a is type(None) else describe_type(a) for a in typing.get_args(tp)
        )
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list[{describe_type(typing.get_args(tp)[0])}]"
    if origin in (dict, Mapping):
        key, value = typing.get_args(tp)
        return f"mapping[{describe_type(key)}, {describe_type(value)}]"
    return getattr(tp, "__name__", str(tp))


def _got(value: Any) -> str:
    kind = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    if isinstance(value, SetValue):
        kind = "text"
    shown = repr(value) if not isinstance(value, (dict, list)) else kind
    return f"{shown} ({kind})" if shown != kind else kind


def coerce(tp: Any, value: Any, path: KeyPath, ctx: Context) -> Any:
    """Check (and, for ``--set`` text, parse) ``value`` against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    key = format_key_path(path)
    if isinstance(value, SetValue) and value in ("null", "~") and _allows_none(tp):
        return None
    if isinstance(value, SetValue) and tp is not str and not _allows_str(tp):
        try:
            value = yaml.safe_load(str(value))
        except yaml.YAMLError:
            raise ctx.error(path, f"{key}: cannot parse {str(value)!r}") from None
    if origin in (Union, types.UnionType):
        return _coerce_union(tp, value, path, ctx)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and not isinstance(value, bool):
            return str(value) if isinstance(value, SetValue) else value
        raise ctx.error(
            path, f"{key}: expected one of {', '.join(repr(c) for c in choices)}, got {_got(value)}"
        )
    if tp in _SCALARS:
        return _SCALARS[tp](value, path, ctx)
    if origin is tuple:
        item_type = typing.get_args(tp)[0]
        if isinstance(value, (list, tuple)):
            return tuple(coerce(item_type, v, (*path, i), ctx) for i, v in enumerate(value))
        raise ctx.error(path, f"{key}: expected a list, got {_got(value)}")
    if origin in (dict, Mapping):
        key_type, value_type = typing.get_args(tp)
        if isinstance(value, dict):
            return {
                _coerce_key(key_type, k, (*path, k), ctx): coerce(value_type, v, (*path, k), ctx)
                for k, v in value.items()
            }
        raise ctx.error(path, f"{key}: expected a mapping, got {_got(value)}")
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, path, ctx)
    raise ctx.error(path, f"{key}: unsupported field type {tp!r} in a config dataclass")


def _coerce_union(tp: Any, value: Any, path: KeyPath, ctx: Context) -> Any:
    """The first member type of ``tp`` that takes ``value``."""
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return coerce(arg, value, path, ctx)
        except RecipeError:
            pass
    raise ctx.error(
        path, f"{format_key_path(path)}: expected {describe_type(tp)}, got {_got(value)}"
    )


def _coerce_bool(value: Any, path: KeyPath, ctx: Context) -> bool:
    if isinstance(value, bool):
        return value
    raise ctx.error(path, f"{format_key_path(path)}: expected true or false, got {_got(value)}")


def _coerce_key(tp: Any, key: Any, path: KeyPath, ctx: Context) -> Any:
    """A mapping key as ``tp``; YAML keys are read as text, so ``int`` keys are parsed."""
    if tp is int and isinstance(key, str):
        try:
            return int(key)
        except ValueError:
            raise ctx.error(path, f"{format_key_path(path)}: expected an integer key") from None
    return coerce(tp, key, path, ctx)


def _coerce_int(value: Any, path: KeyPath, ctx: Context) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ctx.error(path, f"{format_key_path(path)}: expected an integer, got {_got(value)}")


def _coerce_float(value: Any, path: KeyPath, ctx: Context) -> float:
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):  # YAML 1.1 reads 5e-5 (no dot) as text
        try:
            number = float(value)
        except ValueError:
            pass
    if number is None:
        raise ctx.error(path, f"{format_key_path(path)}: expected a number, got {_got(value)}")
    if not math.isfinite(number):  # .nan, .inf: never a setting, always a slip
        raise ctx.error(path, f"{format_key_path(path)}: expected a finite number, got {value}")
    return number


def _coerce_str(value: Any, path: KeyPath, ctx: Context) -> str:
    if isinstance(value, str):
        return str(value)
    raise ctx.error(path, f"{format_key_path(path)}: expected a string, got {_got(value)}")


_SCALARS = {bool: _coerce_bool, int: _coerce_int, float: _coerce_float, str: _coerce_str}


def _allows_none(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _allows_str(tp: Any) -> bool:
    """Whether ``tp`` takes text as it is (``str | None``, a Literal of strings), so that a
    ``--set`` value for it is not parsed as YAML; a tuple of strings is parsed (``[a, b]``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return all(isinstance(a, str) for a in args)
    return origin in (Union, types.UnionType) and str in args


def config_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """The init fields of a config dataclass with their resolved type annotations."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def unknown_key_error(key: str, valid: list[str], path: KeyPath, ctx: Context) -> RecipeError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ctx.error(
        (*path, key),
        f"unknown key '{key}' at {format_key_path((*path, key))}{hint} "
        f"Valid keys here: {', '.join(valid) or '(none)'}.",
    )


def build_dataclass(cls: type, raw: Any, path: KeyPath, ctx: Context) -> Any:
    """Build a (frozen) dataclass from a mapping; unknown, missing and mistyped keys raise."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ctx.error(
            path, f"{format_key_path(path)}: expected a mapping of keys, got {_got(raw)}"
        )
    fields = config_fields(cls)
    names = [f.name for f, _ in fields]
    for key in raw:
        if key not in names:
            raise unknown_key_error(key, names, path, ctx)
    kwargs: dict[str, Any] = {}
    for f, tp in fields:
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ctx.error(
                    path,
                    f"missing required key '{f.name}' at {format_key_path(path)} "
                    f"({describe_type(tp)}); add it to the recipe or pass --set "
                    f"{format_key_path((*path, f.name))}=VALUE",
                )
            continue
        value = coerce(tp, raw[f.name], (*path, f.name), ctx)
        if f.metadata.get("path") and isinstance(value, str):
            value = resolve_path(value, f.metadata.get("aliases", ()), ctx.where((*path, f.name)))
        elif f.metadata.get("path") and isinstance(value, tuple):  # a list of paths
            aliases = f.metadata.get("aliases", ())
            value = tuple(
                resolve_path(v, aliases, ctx.where((*path, f.name, i))) for i, v in enumerate(value)
            )
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except FieldError as exc:
        key = format_key_path((*path, exc.field_name))
        raise ctx.error((*path, exc.field_name), f"{key}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise ctx.error(path, f"{format_key_path(path)}: {exc}") from None
    except Exception as exc:  # a plugin's __post_init__ failed: say where in its code
        from kdnlu.plugin_code import failure
        from kdnlu.registry import source_of

        what = f"checking the config {cls.__name__} ({source_of(cls)})"
        source = source_of(cls).rpartition(":")[0] or None
        raise ctx.error(path, f"{format_key_path(path)}: " + failure(what, exc, source)) from exc


def resolve_path(value: str, aliases: tuple[str, ...], where: Location) -> str:
    if value in aliases or value == "":
        return value
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = where.base_dir / path
    return str(path.resolve())


def to_plain(obj: Any) -> Any:
    """A config value as plain YAML-ready data (dataclasses to dicts, tuples to lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj
