"""``kdnlu list``: registered components with their descriptions and config fields, and the
reference tables of docs/recipes.md (``--markdown``, from kdnlu.reference)."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Sequence
from pathlib import Path

from kdnlu import discovery
from kdnlu.config import config_fields, describe_type, field_help
from kdnlu.errors import KdnluError
from kdnlu.recipe import TaskOptions, raw_recipe
from kdnlu.reference import reference_markdown, update_generated
from kdnlu.registry import REGISTRIES

HELP_WIDTH = 100  # columns of a field's help text in `kdnlu list`


def format_fields(cls: type, indent: str) -> list[str]:
    """One line per config field: its name, type, default and help text."""
    lines = []
    for f, tp in config_fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f" = {f.default!r}"
        elif f.default_factory is not dataclasses.MISSING:
            default = f" = {f.default_factory()!r}"
        else:
            default = "  (required)"
        lines.append(f"{indent}{f.name}: {describe_type(tp)}{default}")
        lines.extend(
            textwrap.wrap(
                field_help(f),
                HELP_WIDTH,
                initial_indent=indent + "    ",
                subsequent_indent=indent + "    ",
            )
        )
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
    kind: str | None,
    imports: Sequence[str] | None = None,
    recipe: str | None = None,
    markdown: str | None = None,
) -> str:
    """The text of ``kdnlu list [KIND] [--imports FILE... | --recipe RECIPE | --markdown [DOC]]``:
    every component of the kind (or of all), or only those the named plugins (or a recipe's
    imports:) add; with ``markdown``, the reference tables of docs/recipes.md (``-``: printed;
    a file name: that file's generated tables rewritten in place)."""
    if markdown is not None:
        return markdown_command(kind, markdown)
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


def markdown_command(kind: str | None, doc: str) -> str:
    """``kdnlu list --markdown [DOC]``: the generated tables, or DOC with them up to date."""
    if kind is not None:
        raise KdnluError(f"kdnlu list --markdown writes every table; leave out the kind ({kind})")
    if doc == "-":
        return reference_markdown().rstrip("\n")
    path = Path(doc)
    if not path.is_file():
        raise KdnluError(f"kdnlu list --markdown {doc}: no such file")
    text = path.read_text(encoding="utf-8")
    updated = update_generated(text)
    path.write_text(updated, encoding="utf-8")
    return f"{doc}: generated tables {'updated' if updated != text else 'already up to date'}"
