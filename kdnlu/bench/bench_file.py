"""Reading a bench file: its keys (dataclasses whose fields are the keys, with their defaults
and meaning) and its values, with errors that name the file's lines."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kdnlu.errors import RecipeError
from kdnlu.options import option_names
from kdnlu.recipe import Override
from kdnlu.yaml_source import KeyPath, Location, format_key_path, load_yaml_with_locations


def bench_key(default: Any, help: str) -> Any:
    """A key of a bench file: its default and what it means."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class BenchFileKeys:
    """The top-level keys of a bench file."""

    name: str | None = bench_key(
        None, "the bench's name, letters, digits and ._=- (default: the stem)"
    )
    output_dir: str = bench_key("runs/bench", "where the bench writes, relative to the bench file")
    recipe: str | None = bench_key(None, "the recipe file of every point that names none")
    seeds: tuple[int, ...] = bench_key((13,), "the seeds each point is trained with")
    set: dict[str, Any] | None = bench_key(None, "recipe values (key.path: value) of every run")
    grid: dict[str, Any] | None = bench_key(
        None, "key.path: [values]; every combination is a point"
    )
    points: dict[str, Any] | None = bench_key(None, "named points, each with its recipe and set")
    compare: tuple[Any, ...] = bench_key((), "[point, point] pairs to compare")
    report: dict[str, Any] | None = bench_key(None, "report options")


@dataclass(frozen=True)
class PointKeys:
    """The keys of one named point."""

    recipe: str | None = bench_key(None, "its recipe file, or a list whose runs' metrics merge")
    set: dict[str, Any] | None = bench_key(None, "recipe values of its runs")


@dataclass(frozen=True)
class ReportKeys:
    """The keys of a bench file's report section."""

    evaluation: Literal["last", "best"] = bench_key("last", "the evaluation each run is scored by")


BENCH_KEYS = option_names(BenchFileKeys)
POINT_KEYS = option_names(PointKeys)
REPORT_KEYS = option_names(ReportKeys)
EVALUATIONS = typing.get_args(typing.get_type_hints(ReportKeys)["evaluation"])
DEFAULT_OUTPUT_DIR = BenchFileKeys.output_dir


class BenchReader:
    """A bench file's values, with errors naming its lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data, self.locations = load_yaml_with_locations(path)
        if not isinstance(data, dict):
            raise RecipeError(f"{path}:1: a bench file must be a mapping of keys")
        self.data = data

    def where(self, path: KeyPath) -> Location:
        for end in range(len(path), -1, -1):
            if path[:end] in self.locations:
                return self.locations[path[:end]]
        return Location(str(self.path), 1)

    def error(self, path: KeyPath, message: str) -> RecipeError:
        return RecipeError(f"{self.where(path)}: {format_key_path(path)}: {message}")

    def check_keys(self, value: dict[str, Any], allowed: tuple[str, ...], path: KeyPath) -> None:
        for key in value:
            if key not in allowed:
                raise self.error(
                    (*path, key), f"unknown key; a bench file takes {', '.join(allowed)}"
                )

    def mapping(self, value: Any, path: KeyPath) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping, got {value!r}")
        return value

    def recipe_path(self, value: Any, path: KeyPath) -> Path:
        if not isinstance(value, str):
            raise self.error(path, f"expected a recipe file path, got {value!r}")
        recipe = self.where(path).base_dir / value
        if not recipe.is_file():
            raise self.error(path, f"recipe {recipe} does not exist")
        return recipe.resolve()

    def overrides(self, values: dict[str, Any], path: KeyPath) -> list[Override]:
        """``{key.path: value}`` as recipe overrides that remember their line here."""
        out = []
        for key, value in values.items():
            parts = tuple(key.split("."))
            if not all(parts):
                raise self.error((*path, key), "expected a recipe key path such as train.lr")
            out.append(Override(parts, value, self.where((*path, key))))
        return out
