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

from kdnlu.bench.bench_file import (
    BENCH_KEYS,
    DEFAULT_OUTPUT_DIR,
    EVALUATIONS,
    POINT_KEYS,
    REPORT_KEYS,
    BenchFileKeys,
    BenchReader,
    ReportKeys,
)
from kdnlu.config import SetValue
from kdnlu.errors import KdnluError
from kdnlu.recipe import Override, load_recipe, parse_override, raw_recipe
from kdnlu.yaml_source import KeyPath, Location


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
    reader = BenchReader(path)
    data = reader.data
    reader.check_keys(data, BENCH_KEYS, ())
    name = data.get("name", path.stem)
    if not isinstance(name, str) or slug(name) != name:
        raise reader.error(("name",), f"expected a name of letters, digits, ._=-, got {name!r}")
    folder = _bench_folder(reader, output_dir)
    seeds = _seeds(reader)
    grid = _grid(reader)
    default_recipe = reader.recipe_path(data["recipe"], ("recipe",)) if "recipe" in data else None
    named = reader.mapping(data.get("points"), ("points",)) or {None: {}}
    _check_chosen(path, named, only)
    expand = _Expansion(reader, grid, seeds, command_line, default_recipe)
    points, selected = [], set()
    for point_name, raw_point in named.items():
        chosen = only is None or point_name in only
        for point in expand.points(point_name, raw_point, chosen):
            points.append(point)
            if chosen:
                selected.add(point.name)
    _check_unique(reader, points)
    compare = _comparisons(reader, data.get("compare"), [p.name for p in points])
    return Bench(
        name=name,
        folder=folder.resolve() / name,
        seeds=tuple(seeds),
        points=tuple(points),
        compare=compare,
        evaluation=_evaluation(reader),
        source=str(path.resolve()),
        grid_keys=tuple(grid),
        selected=None if only is None else frozenset(selected),
    )


def _bench_folder(reader: BenchReader, output_dir: str | None) -> Path:
    """Where the bench writes: ``--output-dir`` (relative to where the command runs), else
    the file's ``output_dir`` (relative to the file), else the default."""
    if output_dir is not None:
        return Path(output_dir)
    if "output_dir" in reader.data:
        value = reader.data["output_dir"]
        if not isinstance(value, str):
            raise reader.error(("output_dir",), f"expected a folder, got {value!r}")
        return reader.where(("output_dir",)).base_dir / value
    return Path(DEFAULT_OUTPUT_DIR)


def _seeds(reader: BenchReader) -> list[int]:
    seeds = reader.data.get("seeds", list(BenchFileKeys.seeds))
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise reader.error(("seeds",), f"expected a list of integer seeds, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise reader.error(("seeds",), f"a seed is listed twice: {seeds}")
    return seeds


def _grid(reader: BenchReader) -> dict[str, list[Any]]:
    grid = reader.mapping(reader.data.get("grid"), ("grid",))
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise reader.error(
                ("grid", name), f"expected a non-empty list of values, got {values!r}"
            )
    return grid


def _check_chosen(path: Path, named: dict[Any, Any], only: Sequence[str] | None) -> None:
    """Every point ``--points`` names must be a point of the file."""
    if only is None:
        return
    known = [str(n) for n in named if n is not None]
    unknown = [n for n in only if n not in known]
    if unknown:
        raise KdnluError(
            f"{path}: --points {', '.join(unknown)}: no such point; the points are "
            + (", ".join(known) or "(none: the bench file names no points)")
        )


def _evaluation(reader: BenchReader) -> str:
    report = reader.mapping(reader.data.get("report"), ("report",))
    reader.check_keys(report, REPORT_KEYS, ("report",))
    evaluation = report.get("evaluation", ReportKeys.evaluation)
    if evaluation not in EVALUATIONS:
        raise reader.error(("report", "evaluation"), f"expected last or best, got {evaluation!r}")
    return evaluation


@dataclass
class _Expansion:
    """Turns each named point into its grid points and their runs (one per seed and recipe)."""

    reader: BenchReader
    grid: dict[str, list[Any]]
    seeds: list[int]
    command_line: list[Override]
    default_recipe: Path | None

    def __post_init__(self) -> None:
        self.common = self.reader.overrides(
            self.reader.mapping(self.reader.data.get("set"), ("set",)), ("set",)
        )
        self.labels = short_keys(list(self.grid))

    def points(self, point_name: str | None, raw: Any, chosen: bool) -> list[Point]:
        """The grid points of one named point (the only, unnamed one when ``None``); the runs
        of ``chosen`` ones are loaded, so every chosen run is valid before any starts."""
        reader = self.reader
        ppath: KeyPath = ("points", point_name) if point_name is not None else ()
        raw = reader.mapping(raw, ppath)
        reader.check_keys(raw, POINT_KEYS, ppath)
        recipes = _point_recipes(reader, raw, ppath, self.default_recipe)
        point_set = reader.overrides(reader.mapping(raw.get("set"), (*ppath, "set")), ppath)
        points = []
        for combo in itertools.product(*self.grid.values()):
            values = dict(zip(self.grid, combo, strict=True))
            parts = [point_name] if point_name is not None else []
            parts += [f"{self.labels[k]}={value_label(v)}" for k, v in values.items()]
            label = " ".join(parts) or "default"
            grid_overrides = [
                Override(tuple(k.split(".")), v, reader.where(("grid", k, self.grid[k].index(v))))
                for k, v in values.items()
            ]
            values_here = [*point_set, *grid_overrides]
            runs = [
                self.run(label, seed, recipe, len(recipes) > 1, values_here, chosen)
                for seed in self.seeds
                for recipe in recipes
            ]
            points.append(Point(label, values, tuple(runs)))
        return points

    def run(
        self,
        label: str,
        seed: int,
        recipe: Path,
        merged: bool,
        values: list[Override],
        check: bool,
    ) -> RunSpec:
        """One run: the bench's values, the point's and the grid's, the seed, the command
        line's; with ``check`` its recipe is loaded with them (an error names the line)."""
        member = f"_{recipe.stem}" if merged else ""
        overrides = (
            *self.common,
            *values,
            Override(("train", "seed"), seed, self.reader.where(("seeds",))),
            *self.command_line,
        )
        if check:
            load_recipe(recipe, list(overrides))
        key = run_key(recipe, overrides)
        folder = f"{slug(label)}/s{seed}{member}"
        return RunSpec(key, label, seed, str(recipe), overrides, folder)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _point_recipes(
    reader: BenchReader, raw: dict[str, Any], path: KeyPath, default: Path | None
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


def _check_unique(reader: BenchReader, points: list[Point]) -> None:
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


def _comparisons(reader: BenchReader, raw: Any, names: list[str]) -> tuple[tuple[str, str], ...]:
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
