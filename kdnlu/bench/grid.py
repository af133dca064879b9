"""Bench files: a grid of recipe values and seeds, expanded into the runs it asks for.

A bench file names a recipe, values to vary (``grid``: every combination), optional named
``points`` (each may use other recipes and values), seeds, and the comparisons to report. Every
run is validated (its recipe loaded with its values) before any of them starts, so a typo in a
key stops the bench at once, naming the bench file's line.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdnlu.config import SetValue
from kdnlu.errors import KdnluError, RecipeError
from kdnlu.recipe import Override, load_recipe, parse_override, raw_recipe
from kdnlu.yaml_source import KeyPath, Location, format_key_path, load_yaml_with_locations

BENCH_KEYS = ("name", "output_dir", "recipe", "seeds", "set", "grid", "points", "compare", "report")
POINT_KEYS = ("recipe", "set")
REPORT_KEYS = ("evaluation",)
EVALUATIONS = ("last", "best")
DEFAULT_OUTPUT_DIR = "runs/bench"


@dataclass(frozen=True)
class RunSpec:
    """One training run of the bench: a recipe file and the values set over it."""

    key: str  # hash of the resolved recipe: the same run always has the same key
    point: str
    seed: int
    recipe: str
    overrides: tuple[Override, ...]
    folder: str  # relative to the bench's runs/ folder

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "point": self.point,
            "seed": self.seed,
            "recipe": self.recipe,
            "overrides": [
                {
                    "key": list(o.key),
                    "value": o.value,
                    "text": isinstance(o.value, SetValue),  # --set text, typed on loading
                    "file": o.where.file,
                    "line": o.where.line,
                }
                for o in self.overrides
            ],
            "folder": self.folder,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        overrides = tuple(
            Override(
                tuple(o["key"]),
                SetValue(o["value"]) if o.get("text") else o["value"],
                Location(o["file"], o["line"]),
            )
            for o in data["overrides"]
        )
        return cls(
            data["key"], data["point"], data["seed"], data["recipe"], overrides, data["folder"]
        )


@dataclass(frozen=True)
class Point:
    """One grid point: its values and, per seed, the runs whose metrics it merges."""

    name: str
    values: dict[str, Any]  # the grid values of this point, by key path
    runs: tuple[RunSpec, ...]


@dataclass(frozen=True)
class Bench:
    """An expanded bench file: where it writes, its points, comparisons and report options."""

    name: str
    folder: Path
    seeds: tuple[int, ...]
    points: tuple[Point, ...]
    compare: tuple[tuple[str, str], ...] = ()
    evaluation: str = "last"
    source: str = ""
    grid_keys: tuple[str, ...] = field(default=())
    selected: frozenset[str] | None = None  # labels of the points to run (--points); None: all

    @property
    def runs(self) -> list[RunSpec]:
        return [run for point in self.points for run in point.runs]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "seeds": list(self.seeds),
            "grid_keys": list(self.grid_keys),
            "points": [
                {"name": p.name, "values": p.values, "runs": [r.to_json() for r in p.runs]}
                for p in self.points
            ],
            "compare": [list(pair) for pair in self.compare],
            "evaluation": self.evaluation,
        }

    @classmethod
    def from_json(cls, folder: Path, data: dict[str, Any]) -> Bench:
        points = tuple(
            Point(p["name"], p["values"], tuple(RunSpec.from_json(r) for r in p["runs"]))
            for p in data["points"]
        )
        return cls(
            name=data["name"],
            folder=folder,
            seeds=tuple(data["seeds"]),
            points=points,
            compare=tuple((a, b) for a, b in data["compare"]),
            evaluation=data["evaluation"],
            source=data["source"],
            grid_keys=tuple(data["grid_keys"]),
        )


class _Reader:
    """Typed access to the bench file's values, with errors naming its lines."""

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


def value_label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def short_keys(keys: list[str]) -> dict[str, str]:
    """The last part of each key path, or the whole path where two keys share a last part."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "point"


def run_key(recipe: str | Path, overrides: Sequence[Override]) -> str:
    """What makes a run itself: the recipe file (with its base) and the values set over it, as
    written. Defaults are not part of it, so a kdnlu that adds options keeps the keys."""
    data = {"recipe": str(Path(recipe).resolve()), "values": raw_recipe(recipe, list(overrides))}
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_bench(
    path: str | Path,
    output_dir: str | None = None,
    overrides: Sequence[str] = (),
    only: Sequence[str] | None = None,
) -> Bench:
    """Read and expand a bench file; load every run's recipe once to check it.

    ``overrides`` (``--set`` texts) apply to every run, over the bench file's own values.
    ``only`` names the points to check (``--points``): the others' recipes are not loaded, so
    a point whose inputs do not exist yet (a teachers' store) can wait for a later call.
    """
    path = Path(path)
    command_line = [parse_override(text) for text in overrides]
    reader = _Reader(path)
    data = reader.data
    reader.check_keys(data, BENCH_KEYS, ())
    name = data.get("name", path.stem)
    if not isinstance(name, str) or slug(name) != name:
        raise reader.error(("name",), f"expected a name of letters, digits, ._=-, got {name!r}")
    if output_dir is not None:  # from the command line: relative to where it runs
        folder = Path(output_dir)
    elif "output_dir" in data:
        if not isinstance(data["output_dir"], str):
            raise reader.error(("output_dir",), f"expected a folder, got {data['output_dir']!r}")
        folder = reader.where(("output_dir",)).base_dir / data["output_dir"]
    else:
        folder = Path(DEFAULT_OUTPUT_DIR)
    seeds = data.get("seeds", [13])
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise reader.error(("seeds",), f"expected a list of integer seeds, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise reader.error(("seeds",), f"a seed is listed twice: {seeds}")
    common = reader.overrides(reader.mapping(data.get("set"), ("set",)), ("set",))
    grid = reader.mapping(data.get("grid"), ("grid",))
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise reader.error(
                ("grid", key), f"expected a non-empty list of values, got {values!r}"
            )
    default_recipe = reader.recipe_path(data["recipe"], ("recipe",)) if "recipe" in data else None
    named = reader.mapping(data.get("points"), ("points",)) or {None: {}}
    labels = short_keys(list(grid))
    if only is not None:
        known = [str(n) for n in named if n is not None]
        unknown = [n for n in only if n not in known]
        if unknown:
            raise KdnluError(
                f"{path}: --points {', '.join(unknown)}: no such point; the points are "
                + (", ".join(known) or "(none: the bench file names no points)")
            )
    points, selected = [], set()
    for point_name, raw_point in named.items():
        ppath: KeyPath = ("points", point_name) if point_name is not None else ()
        raw_point = reader.mapping(raw_point, ppath)
        reader.check_keys(raw_point, POINT_KEYS, ppath)
        chosen = only is None or point_name in only
        recipes = _point_recipes(reader, raw_point, ppath, default_recipe)
        point_set = reader.overrides(reader.mapping(raw_point.get("set"), (*ppath, "set")), ppath)
        for combo in itertools.product(*grid.values()):
            values = dict(zip(grid, combo, strict=True))
            parts = [point_name] if point_name is not None else []
            parts += [f"{labels[k]}={value_label(v)}" for k, v in values.items()]
            label = " ".join(parts) or "default"
            grid_overrides = [
                Override(tuple(k.split(".")), v, reader.where(("grid", k, grid[k].index(v))))
                for k, v in values.items()
            ]
            runs = []
            for seed in seeds:
                for recipe in recipes:
                    member = f"_{recipe.stem}" if len(recipes) > 1 else ""
                    folder_name = f"{slug(label)}/s{seed}{member}"
                    overrides = (
                        *common,
                        *point_set,
                        *grid_overrides,
                        Override(("train", "seed"), seed, reader.where(("seeds",))),
                        *command_line,
                    )
                    if chosen:  # every chosen run is valid before any starts
                        load_recipe(recipe, list(overrides))
                    key = run_key(recipe, overrides)
                    runs.append(RunSpec(key, label, seed, str(recipe), overrides, folder_name))
            points.append(Point(label, values, tuple(runs)))
            if chosen:
                selected.add(label)
    names = [p.name for p in points]
    _check_unique(reader, points)
    compare = _comparisons(reader, data.get("compare"), names)
    report = reader.mapping(data.get("report"), ("report",))
    reader.check_keys(report, REPORT_KEYS, ("report",))
    evaluation = report.get("evaluation", "last")
    if evaluation not in EVALUATIONS:
        raise reader.error(("report", "evaluation"), f"expected last or best, got {evaluation!r}")
    return Bench(
        name=name,
        folder=folder.resolve() / name,
        seeds=tuple(seeds),
        points=tuple(points),
        compare=compare,
        evaluation=evaluation,
        source=str(path.resolve()),
        grid_keys=tuple(grid),
        selected=None if only is None else frozenset(selected),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _point_recipes(
    reader: _Reader, raw: dict[str, Any], path: KeyPath, default: Path | None
) -> list[Path]:
    """The recipes of a point: one, or a list whose runs' metrics merge (one task each)."""
    value = raw.get("recipe")
    if value is None:
        if default is None:
            raise reader.error((*path, "recipe"), "no recipe: give one here or at the top level")
        return [default]
    if isinstance(value, list):
        if not value:
            raise reader.error((*path, "recipe"), "expected at least one recipe")
        return [reader.recipe_path(v, (*path, "recipe", i)) for i, v in enumerate(value)]
    return [reader.recipe_path(value, (*path, "recipe"))]


def _check_unique(reader: _Reader, points: list[Point]) -> None:
    seen: dict[str, str] = {}
    for point in points:
        for run in point.runs:
            if run.key in seen:
                raise reader.error(
                    (),
                    f"points '{seen[run.key]}' and '{run.point}' (seed {run.seed}) resolve to "
                    "the same recipe and values; every run of a bench must differ",
                )
            seen[run.key] = run.point


def _comparisons(reader: _Reader, raw: Any, names: list[str]) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise reader.error(("compare",), "expected a list of [point, point] pairs")
    pairs = []
    for i, pair in enumerate(raw):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise reader.error(("compare", i), f"expected a pair [point, point], got {pair!r}")
        for j, name in enumerate(pair):
            if name not in names:
                raise reader.error(
                    ("compare", i, j),
                    f"no point is named {name!r}; the points are: " + ", ".join(names),
                )
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)
