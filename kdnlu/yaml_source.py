"""Read YAML into plain values while remembering the file and line of every key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kdnlu.errors import RecipeError

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Location:
    """Where a value came from: a file and 1-based line, or a command-line ``--set``."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths written here are relative to."""
        if self.line is None:  # a --set value: relative to where the command runs
            return Path.cwd()
        return Path(self.file).resolve().parent


def format_key_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_yaml_with_locations(path: Path) -> tuple[Any, dict[KeyPath, Location]]:
    """Parse ``path``; return its data and a map from key path to the line defining it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"recipe file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read recipe file {path}: {exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        locations: dict[KeyPath, Location] = {}
        budget = _Budget(str(path))
        data = _convert(loader, root, (), budget, locations) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "unreadable YAML"
        raise RecipeError(
            f"{where}: malformed YAML: {problem}. Check indentation, colons and quotes there."
        ) from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: malformed YAML: {exc}") from None
    finally:
        loader.dispose()
    return data, locations


MAX_VALUES = 100_000  # far beyond any recipe; aliases of aliases could otherwise expand forever


class _Budget:
    """Counts the values a document expands to, so an alias bomb stops early and clearly."""

    def __init__(self, file: str) -> None:
        self.file, self.left = file, MAX_VALUES

    def spend(self, node: yaml.Node) -> None:
        self.left -= 1
        if self.left < 0:
            raise RecipeError(
                f"{self.file}:{node.start_mark.line + 1}: the recipe expands to more than "
                f"{MAX_VALUES} values (aliases of aliases?); a recipe is far smaller"
            )


def _convert(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: KeyPath,
    budget: _Budget,
    locations: dict[KeyPath, Location],
) -> Any:
    budget.spend(node)
    file = budget.file
    locations.setdefault(path, Location(file, node.start_mark.line + 1))
    if isinstance(node, yaml.MappingNode):
        return _convert_mapping(loader, node, path, budget, locations)
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(loader, item, (*path, i), budget, locations)
            for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


MERGE_TAG = "tag:yaml.org,2002:merge"


def _convert_mapping(
    loader: yaml.SafeLoader,
    node: yaml.MappingNode,
    path: KeyPath,
    budget: _Budget,
    locations: dict[KeyPath, Location],
) -> dict[str, Any]:
    """A mapping's keys. A merge key (``<<: *base``, or a list of bases) brings in keys that
    those written beside it override, the first base winning over later ones; merges are
    expanded here rather than by PyYAML so that the value budget counts every copy."""
    file = budget.file
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag == MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)  # a number key (a layer map's) is read as its text; configs type it
        if not isinstance(key, str):
            raise RecipeError(
                f"{file}:{line}: key {key!r} at {format_key_path(path)} must be a string"
            )
        if key in out:
            first = locations[(*path, key)].line
            raise RecipeError(
                f"{file}:{line}: key '{format_key_path((*path, key))}' appears twice "
                f"(first at line {first}); keep one of them"
            )
        locations[(*path, key)] = Location(file, line)
        out[key] = _convert(loader, value_node, (*path, key), budget, locations)
    merged: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag != MERGE_TAG:
            continue
        bases = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for base in bases:
            if not isinstance(base, yaml.MappingNode):
                raise RecipeError(
                    f"{file}:{base.start_mark.line + 1}: a merge key (<<) takes a mapping or a "
                    "list of mappings"
                )
            found: dict[KeyPath, Location] = {}
            for key, value in _convert(loader, base, path, budget, found).items():
                if key not in out and key not in merged:
                    merged[key] = value
                    inside = (*path, key)
                    locations.update(
                        {p: loc for p, loc in found.items() if p[: len(inside)] == inside}
                    )
    return {**merged, **out}
