"""Recipes: YAML (+ one ``base:``) + ``--set`` overrides, validated into frozen dataclasses."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdnlu import discovery
from kdnlu.config import (
    Context,
    build_dataclass,
    coerce,
    config_fields,
    resolve_path,
    unknown_key_error,
)
from kdnlu.datadir import GET_GLUE_HINT, glue_dir
from kdnlu.errors import RecipeError
from kdnlu.recipe_checks import (
    build_task,
    check_distill,
    check_loss_fits,
    check_task_metrics,
    check_teacher_terms,
    lookup,
    term_kind,
)
from kdnlu.recipe_files import COMPONENT_KEYS, Override, merged_recipe, parse_override, raw_recipe
from kdnlu.recipe_specs import ComponentSpec, ObjectiveTerm, Recipe, TaskSpec
from kdnlu.registry import ENCODERS, HEADS, LOSSES, SAMPLERS, TASKS, Entry, Registry
from kdnlu.schema import (
    BASE_KEY,
    DEFAULT_SAMPLER,
    SECTION_KEYS,
    RecipeHeader,
    TaskOptions,
    TrainConfig,
)
from kdnlu.schema_distill import DistillConfig, ObjectiveTermConfig
from kdnlu.task import Task
from kdnlu.yaml_source import KeyPath, Location, format_key_path

__all__ = [
    "COMPONENT_KEYS",
    "DEFAULT_SAMPLER",
    "TOP_LEVEL_KEYS",
    "ComponentSpec",
    "DistillConfig",
    "ObjectiveTerm",
    "Override",
    "Recipe",
    "TaskOptions",
    "TaskSpec",
    "TrainConfig",
    "load_recipe",
    "parse_override",
    "raw_recipe",
    "task_default",
]

log = logging.getLogger("kdnlu.recipe")


HEADER_KEYS = tuple(f.name for f in dataclasses.fields(RecipeHeader))
TOP_LEVEL_KEYS = (BASE_KEY.name, *HEADER_KEYS, *(key.name for key in SECTION_KEYS))


def load_recipe(
    path: str | Path,
    overrides: list[str | Override] | tuple[str | Override, ...] = (),
    check_files: bool = True,
) -> Recipe:
    """Read, merge, override and validate a recipe file. Errors name file:line and key path.

    ``overrides`` are ``--set`` texts or ``Override`` values, applied in order.
    ``check_files=False`` skips the checks that training data exists (and keeps optional tasks
    whatever their files), for using a trained run's recipe where its data is gone.
    """
    path = Path(path)
    raw, locations = merged_recipe(path, overrides)
    ctx = Context(locations=locations, default_location=Location(str(path), 1))
    return _validate(raw, ctx, default_name=path.stem, source=str(path), check_files=check_files)


def _as_mapping(raw: Any, path: KeyPath, ctx: Context, expected: str) -> dict[str, Any]:
    """A component's or task's entry as a fresh mapping: ``name`` alone may be written as the
    name, an empty entry is ``{}``; anything else is an error saying what was ``expected``."""
    if isinstance(raw, str):
        return {"name": raw}
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ctx.error(path, f"{format_key_path(path)}: {expected}, got {raw!r}")
    return dict(raw)


def task_default(raw: Any, default: Any) -> tuple[Any, str | None]:
    """A task's head or loss as the recipe writes it over the task's default (a name, or a
    mapping of name and config values that the recipe's keys override when it names the same
    component or none); the raw value and the default name for ``_component``."""
    if not isinstance(default, Mapping):
        return raw, default
    name, values = default["name"], {k: v for k, v in default.items() if k != "name"}
    if isinstance(raw, str):
        raw = {"name": raw}
    if raw is None or (isinstance(raw, dict) and raw.get("name", name) == name):
        raw = {**values, **(raw or {})}
    return raw, name


def _named_entry(
    registry: Registry,
    raw: Any,
    default_name: str | None,
    path: KeyPath,
    ctx: Context,
    expected: str,
) -> tuple[str, Entry, dict[str, Any]]:
    """A component's or task's entry: its registered name (``default_name`` where the recipe
    names none), the registry's entry for it, and the rest of its keys."""
    raw = _as_mapping(raw, path, ctx, expected)
    name = raw.pop("name", default_name)
    if name is None:
        raise ctx.error(
            path,
            f"missing required key 'name' at {format_key_path(path)}: which "
            f"{registry.kind}? (`kdnlu list {registry.plural}`)",
        )
    name = coerce(str, name, (*path, "name"), ctx)
    return name, lookup(registry, name, (*path, "name"), ctx), raw


def _component(
    registry: Registry, raw: Any, default_name: str | None, path: KeyPath, ctx: Context
) -> ComponentSpec:
    expected = f"expected a {registry.kind} name or a mapping with 'name'"
    name, entry, raw = _named_entry(registry, raw, default_name, path, ctx, expected)
    return ComponentSpec(name, build_dataclass(entry.config, raw, path, ctx))


def _task(
    key: str, raw: Any, data_root: DataRoot, ctx: Context, check_files: bool = True
) -> TaskSpec | None:
    path: KeyPath = ("tasks", key)
    name, entry, raw = _named_entry(TASKS, raw, key, path, ctx, "expected a mapping")
    head_raw, loss_raw = raw.pop("head", None), raw.pop("loss", None)
    objective_raw = raw.pop("objective", None)
    option_keys = [f.name for f, _ in config_fields(TaskOptions)]
    plugin_keys = [f.name for f, _ in config_fields(entry.config)]
    for k in raw:
        if k not in option_keys and k not in plugin_keys:
            raise unknown_key_error(
                k, ["name", *option_keys, *plugin_keys, "head", "loss", "objective"], path, ctx
            )
    options = build_dataclass(
        TaskOptions, {k: v for k, v in raw.items() if k in option_keys}, path, ctx
    )
    config = build_dataclass(
        entry.config, {k: v for k, v in raw.items() if k in plugin_keys}, path, ctx
    )
    task = build_task(key, entry, config, data_root.path, ctx)
    if check_files and "train" not in task.files:
        reason = getattr(task, "absent_splits", {}).get("train", "")
        if options.optional:
            log.info("tasks.%s left out: task '%s' has no training split", key, name)
            return None
        raise ctx.error(
            path,
            f"tasks.{key}: task '{name}' has no training split, so it cannot "
            f"be trained{'; ' + reason if reason else ''}",
        )
    for split in ("train", *task.eval_splits) if check_files else ():
        file = task.files.get(split)
        if file is not None and not file.is_file() and options.optional:
            log.info("tasks.%s left out (optional): %s is missing", key, file)
            return None
        if file is not None and not file.is_file():
            raise _missing_file(key, file, data_root, path, ctx)
    head = _component(HEADS, *task_default(head_raw, task.default_head), (*path, "head"), ctx)
    loss = _component(LOSSES, *task_default(loss_raw, task.default_loss), (*path, "loss"), ctx)
    check_loss_fits(key, task, loss.name, ctx)
    check_task_metrics(key, task, entry, ctx)
    objective = _objective(key, task, objective_raw, ctx)
    return TaskSpec(name, config, head, loss, options, objective)


def _objective(key: str, task: Task, raw: Any, ctx: Context) -> tuple[ObjectiveTerm, ...]:
    """A task's ``objective:`` list: each term's settings and its loss, built and checked."""
    path: KeyPath = ("tasks", key, "objective")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise ctx.error(path, f"tasks.{key}.objective: expected a list of terms, got {raw!r}")
    term_keys = [f.name for f, _ in config_fields(ObjectiveTermConfig)]
    terms = []
    for i, item in enumerate(raw):
        where: KeyPath = (*path, i)
        if not isinstance(item, dict) or "loss" not in item:
            raise ctx.error(
                where,
                f"tasks.{key}.objective[{i}]: expected a mapping with 'loss' (e.g. "
                f"{{loss: cross_entropy, weight: 0.5}}), got {item!r}",
            )
        settings = build_dataclass(
            ObjectiveTermConfig, {k: v for k, v in item.items() if k in term_keys}, where, ctx
        )
        loss_entry = lookup(LOSSES, str(settings.loss), (*where, "loss"), ctx)
        loss_keys = [f.name for f, _ in config_fields(loss_entry.config)]
        for k in item:
            if k not in term_keys and k not in loss_keys:
                raise unknown_key_error(k, [*term_keys, *loss_keys], where, ctx)
        values = {k: v for k, v in item.items() if k not in term_keys}
        loss = ComponentSpec(
            str(settings.loss), build_dataclass(loss_entry.config, values, where, ctx)
        )
        kind = term_kind(key, task, settings, loss_entry.facts["target"], where, ctx)
        terms.append(ObjectiveTerm(settings, loss, kind))
    names = [t.name for t in terms]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ctx.error(
                (*path, i),
                f"tasks.{key}.objective[{i}]: a second term named '{name}'; give one of them "
                "a `name:` (the name its value is logged under)",
            )
    return tuple(terms)


@dataclass(frozen=True)
class DataRoot:
    """The recipe's data folder, which rule chose it (see kdnlu.datadir) and, where the recipe
    or ``--set`` gave it, the key path that errors about it point at."""

    path: str
    source: str
    key: KeyPath | None = None


def _data_root(header: RecipeHeader) -> DataRoot:
    if header.data_root is not None:
        return DataRoot(header.data_root, "the recipe's data_root", ("data_root",))
    default = glue_dir()
    return DataRoot(str(default.path), default.source)


def _missing_file(
    key: str, file: Path, data_root: DataRoot, path: KeyPath, ctx: Context
) -> RecipeError:
    """A task's data file is absent: say which rule chose the folder and how to get data."""
    if not Path(file).resolve().is_relative_to(Path(data_root.path).resolve()):
        return ctx.error(path, f"tasks.{key}: missing data file {file}")
    return ctx.error(
        data_root.key or path,
        f"tasks.{key}: missing data file {file} (data_root {data_root.path}, from "
        f"{data_root.source}). {GET_GLUE_HINT}",
    )


def _header(raw: dict[str, Any], ctx: Context, default_name: str, source: str) -> RecipeHeader:
    """The top-level scalar keys, with the recipe's imports: imported (and their paths resolved)."""
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise unknown_key_error(key, list(TOP_LEVEL_KEYS[1:]), (), ctx)
    header_raw = {k: raw[k] for k in HEADER_KEYS if k in raw}
    header_raw.setdefault("name", default_name)
    header = build_dataclass(RecipeHeader, header_raw, (), ctx)
    imports = tuple(
        resolve_path(item, (), ctx.where(("imports", i))) if item.endswith(".py") else item
        for i, item in enumerate(header.imports)
    )
    discovery.load_all()
    discovery.load_recipe_imports(imports, Path(source).resolve().parent, f"{source}:")
    return dataclasses.replace(header, imports=imports)


def _tasks(
    raw: dict[str, Any], header: RecipeHeader, ctx: Context, check_files: bool
) -> tuple[dict[str, TaskSpec], DataRoot]:
    """The recipe's tasks (leaving out optional ones without data) and the data folder."""
    tasks_raw = raw.get("tasks")
    if not isinstance(tasks_raw, dict) or not tasks_raw:
        raise ctx.error(
            ("tasks",),
            "missing required key 'tasks': a mapping of at least one "
            "task (e.g. tasks: {rte: {}}); `kdnlu list tasks` shows the choices",
        )
    data_root = _data_root(header)
    specs = {str(k): _task(str(k), v, data_root, ctx, check_files) for k, v in tasks_raw.items()}
    tasks = {k: spec for k, spec in specs.items() if spec is not None}
    if not tasks:
        raise ctx.error(
            ("tasks",),
            f"every task is optional and none has its data files under "
            f"data_root {data_root.path} (from {data_root.source}); nothing to train. "
            f"{GET_GLUE_HINT}",
        )
    return tasks, data_root


def _validate(
    raw: dict[str, Any], ctx: Context, default_name: str, source: str, check_files: bool = True
) -> Recipe:
    header = _header(raw, ctx, default_name, source)
    if "encoder" not in raw:
        raise ctx.error(
            (),
            "missing required key 'encoder' (e.g. encoder: {name: hf, path: "
            "minilm}); `kdnlu list encoders` shows the choices",
        )
    encoder = _component(ENCODERS, raw["encoder"], None, ("encoder",), ctx)
    tasks, data_root = _tasks(raw, header, ctx, check_files)
    sampler = _component(SAMPLERS, raw.get("sampler"), DEFAULT_SAMPLER, ("sampler",), ctx)
    train = build_dataclass(TrainConfig, raw.get("train"), ("train",), ctx)
    distill = None
    if raw.get("distill") is not None:
        distill = build_dataclass(DistillConfig, raw["distill"], ("distill",), ctx)
        check_distill(distill, tasks, ctx, check_files)
    check_teacher_terms(tasks, distill, ctx)
    return Recipe(
        name=header.name,
        encoder=encoder,
        tasks=tasks,
        sampler=sampler,
        train=train,
        data_root=data_root.path,
        data_root_source=data_root.source,
        output_dir=header.output_dir,
        cache_dir=header.cache_dir,
        imports=header.imports,
        distill=distill,
        source=source,
    )
