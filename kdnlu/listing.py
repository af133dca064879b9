"""``kdnlu list``: registered components with their descriptions and config fields."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from kdnlu import discovery
from kdnlu.config import config_fields, describe_type
from kdnlu.recipe import TaskOptions, raw_recipe
from kdnlu.registry import REGISTRIES


def format_fields(cls: type, indent: str) -> list[str]:
    """One line per config field: its name, type and default."""
    lines = []
    for f, tp in config_fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f" = {f.default!r}"
        elif f.default_factory is not dataclasses.MISSING:
            default = f" = {f.default_factory()!r}"
        else:
            default = "  (required)"
        lines.append(f"{indent}{f.name}: {describe_type(tp)}{default}")
    return lines


def list_components(kinds: Sequence[str], only: dict[str, set[str]] | None = None) -> str:
    """The text of ``kdnlu list``: every component, its description and its config fields
    (with ``only``, just those names of each kind)."""
    out: list[str] = []
    for kind in kinds:
        registry = REGISTRIES[kind]
        if only is not None and not only.get(kind):
            continue
        out.append(f"{kind}:")
        if kind == "tasks":
            out.append("  (every task also takes: name, head, loss and)")
            out.extend(format_fields(TaskOptions, "      "))
        for entry in registry:
            if only is not None and entry.name not in only[kind]:
                continue
            out.append(f"  {entry.name}  -  {entry.description}  [{entry.module}]")
            facts = [f"      {key}: {value!r}" for key, value in entry.facts.items()]
            fields = format_fields(entry.config, "      ")
            out.extend([*facts, *fields] or ["      (no options)"])
        out.append("")
    return "\n".join(out)


def list_command(
    kind: str | None, imports: Sequence[str] | None = None, recipe: str | None = None
) -> str:
    """The text of ``kdnlu list [KIND] [--imports FILE... | --recipe RECIPE]``: every component
    of the kind (or of all), or only those the named plugins (or a recipe's imports:) add."""
    discovery.load_all()
    kinds = [kind] if kind else list(REGISTRIES)
    names, base, origin = tuple(imports or ()), Path.cwd(), "--imports"
    if recipe is not None:
        names = tuple(raw_recipe(recipe).get("imports") or ())
        base, origin = Path(recipe).resolve().parent, f"{recipe}:"
    if not names:
        return list_components(kinds)
    modules = [m.__name__ for m in discovery.load_recipe_imports(names, base, origin)]
    inside = tuple(m + "." for m in modules)
    added = {
        plural: {e.name for e in reg if e.module in modules or e.module.startswith(inside)}
        for plural, reg in REGISTRIES.items()
    }
    text = list_components(kinds, only=added)
    return text if text else f"{', '.join(names)} add(s) no {' or '.join(kinds)}"
