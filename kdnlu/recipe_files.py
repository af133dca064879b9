"""Recipe files as raw data: YAML with one ``base:`` merged in and ``--set`` overrides applied,
each value with the file:line (or ``--set`` argument) that wrote it. Validation: kdnlu.recipe."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdnlu.config import SetValue
from kdnlu.errors import RecipeError
from kdnlu.yaml_source import KeyPath, Location, format_key_path, load_yaml_with_locations

COMPONENT_KEYS = ("encoder", "sampler", "head", "loss")


@dataclass(frozen=True)
class Override:
    """One value set over a recipe's own: the key path, the value, and where it was written
    (relative paths in it are relative to that file; errors name it)."""

    key: KeyPath
    value: Any
    where: Location


def parse_override(text: str) -> Override:
    """``KEY.PATH=VALUE`` as given to ``--set``; the value is typed later by its config."""
    where = Location(f"--set {text}")
    key, sep, value = text.partition("=")
    parts = tuple(key.strip().split("."))
    if not sep or not all(parts):
        raise RecipeError(f"{where}: expected KEY.PATH=VALUE, e.g. --set train.lr=3e-5")
    return Override(parts, SetValue(value), where)


def raw_recipe(
    path: str | Path, overrides: list[str | Override] | tuple[str | Override, ...] = ()
) -> dict[str, Any]:
    """The recipe as written: its base merged and ``overrides`` applied, not yet validated
    (so without defaults: what a run asked for, whatever later versions add)."""
    return merged_recipe(Path(path), overrides)[0]


def merged_recipe(
    path: Path, overrides: list[str | Override] | tuple[str | Override, ...]
) -> tuple[dict[str, Any], dict[KeyPath, Location]]:
    """The recipe at ``path`` with its base merged and ``overrides`` applied, in order, and the
    location of every key path."""
    raw, locations = _load_with_base(path, [])
    for override in overrides:
        if isinstance(override, str):
            override = parse_override(override)
        _apply_override(raw, locations, override)
    return raw, locations


def _load_with_base(
    path: Path, chain: list[Path]
) -> tuple[dict[str, Any], dict[KeyPath, Location]]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in [*chain, resolved])
        raise RecipeError(
            f"{chain[-1]}:{_base_line(chain[-1])}: cyclic base: {cycle}. "
            "A recipe may not inherit from itself, directly or through its bases."
        )
    data, locations = load_yaml_with_locations(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(
            f"{path}:1: a recipe must be a mapping of keys, got {type(data).__name__}"
        )
    base = data.pop("base", None)
    if base is None:
        return data, locations
    where = locations[("base",)]
    if not isinstance(base, str):
        raise RecipeError(
            f"{where}: base must be one relative path to another recipe (a recipe has at most "
            f"one base), got {base!r}"
        )
    base_path = Path(base) if Path(base).is_absolute() else resolved.parent / base
    if not base_path.is_file():
        raise RecipeError(f"{where}: base recipe {base_path} does not exist")
    base_data, base_locations = _load_with_base(base_path, [*chain, resolved])
    merged = _deep_merge(base_data, data)
    base_locations.pop(("base",), None)
    return merged, {**base_locations, **{k: v for k, v in locations.items() if k != ("base",)}}


def _base_line(path: Path) -> int:
    _, locations = load_yaml_with_locations(path)
    loc = locations.get(("base",))
    return loc.line if loc and loc.line else 1


def _deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in child.items():
        if _switches_component(key, out.get(key), value):
            out[key] = copy.deepcopy(value)  # another component: the base's settings are not its
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _switches_component(key: str, base: Any, child: Any) -> bool:
    """Whether a child recipe names another component (encoder, sampler, head, loss) than its
    base does at ``key``."""
    if key not in COMPONENT_KEYS or not isinstance(base, dict) or not isinstance(child, dict):
        return False
    return "name" in child and child["name"] != base.get("name")


def _apply_override(
    raw: dict[str, Any], locations: dict[KeyPath, Location], override: Override
) -> None:
    parts, where = override.key, override.where
    if parts[0] == "base":
        raise RecipeError(f"{where}: base cannot be overridden; edit the recipe's base: line")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, str) and (part in COMPONENT_KEYS or parts[:i] == ("tasks",)):
            # `head: classification` / `encoder: hf` / `rte: rte` shorthand
            child = node[part] = {"name": child}
        elif not isinstance(child, dict):
            raise RecipeError(
                f"{where}: {format_key_path(parts[: i + 1])} is {child!r}, not a mapping, "
                "so it has no sub-keys"
            )
        node = child
    node[parts[-1]] = copy.deepcopy(override.value)
    for end in range(1, len(parts) + 1):
        locations[parts[:end]] = where
