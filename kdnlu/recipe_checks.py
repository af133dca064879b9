"""Checks a recipe passes beyond the shape of its keys: names that exist, losses that fit their
tasks' labels, distillation settings that fit the recipe."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdnlu.config import Context
from kdnlu.errors import KdnluError, RegistryError
from kdnlu.metrics import unknown_metric_message
from kdnlu.plugin_code import failure
from kdnlu.registry import LOSSES, METRICS, Entry, Registry
from kdnlu.schema import DistillConfig
from kdnlu.task import Task
from kdnlu.yaml_source import KeyPath, format_key_path

if TYPE_CHECKING:
    from kdnlu.recipe import ComponentSpec, TaskSpec


def lookup(registry: Registry, name: str, path: KeyPath, ctx: Context) -> Any:
    """The registry entry ``name``, or an error pointing at the recipe key that names it."""
    try:
        return registry.get(name, format_key_path(path))
    except RegistryError as exc:
        raise ctx.error(path, str(exc)) from None


TASK_FIELDS = tuple(f.name for f in dataclasses.fields(Task))


def build_task(key: str, entry: Entry, config: Any, data_root: str, ctx: Context) -> Task:
    """Run a task plugin's builder; what goes wrong inside it is reported against the recipe's
    task key and the plugin's file and line."""
    path: KeyPath = ("tasks", key)
    try:
        task = entry.build(config, data_root=data_root)
    except KdnluError as exc:
        raise ctx.error(path, f"tasks.{key}: {exc}") from None
    except Exception as exc:  # plugin code: say whose and where, not a traceback
        what = f"building task '{entry.name}' ({entry.builder.__name__} in {entry.source})"
        raise ctx.error(
            path, f"tasks.{key}: " + failure(what, exc, _file(entry.source), TASK_FIELDS)
        ) from exc
    if not isinstance(task, Task):
        raise ctx.error(
            path,
            f"tasks.{key}: task plugin '{entry.name}' ({entry.source}) returned "
            f"{type(task).__name__}, not a kdnlu.task.Task",
        )
    return task


def _file(source: str) -> str | None:
    return source.rpartition(":")[0] or None


def check_task_metrics(key: str, task: Task, entry: Entry, ctx: Context) -> None:
    """A task's metrics must be registered and score the kind of labels the task has."""
    path: KeyPath = ("tasks", key)
    where = f"tasks.{key}: task '{task.name}' ({entry.source})"
    if task.eval_splits and not task.metrics:
        raise ctx.error(path, f"{where} names no metrics; give Task(metrics=(...)) one at least")
    for name in task.metrics:
        if name not in METRICS:
            raise ctx.error(path, f"{where} names {unknown_metric_message(name)}")
        targets = METRICS.get(name).facts["targets"]
        if task.label_kind not in targets:
            raise ctx.error(
                path,
                f"{where}: metric '{name}' scores {', '.join(targets)} labels, but the task has "
                f"{task.label_kind} labels ({TRAINABLE_TARGETS[task.label_kind]})",
            )


TRAINABLE_TARGETS = {
    "class": "class labels",
    "score": "regression scores",
    "group": "class labels of candidates grouped by their first text",
    "token": "one class label per word (token labelling)",
    "soft": "teacher probability distributions (it serves as distill.soft_loss)",
}


def check_loss_fits(key: str, task: Task, loss: ComponentSpec, ctx: Context) -> None:
    """The loss must take the kind of label the task has."""
    target = LOSSES.get(loss.name).facts["target"]
    wanted = task.label_kind
    if target is None or target == wanted:
        return
    path: KeyPath = ("tasks", key, "loss", "name")
    if target == "group" and wanted == "class":
        assert task.label_names is not None
        if len(task.label_names) == 2:
            return
        raise ctx.error(
            path,
            f"tasks.{key}.loss: loss '{loss.name}' ranks candidates into a right and a wrong "
            f"class, but task '{task.name}' has {len(task.label_names)} classes; a ranking "
            "loss needs a task with two",
        )
    raise ctx.error(
        path,
        f"tasks.{key}.loss: loss '{loss.name}' takes "
        f"{TRAINABLE_TARGETS.get(target, target)}, but task '{task.name}' has "
        f"{TRAINABLE_TARGETS[wanted]}; use e.g. '{task.default_loss}'",
    )


def check_distill(
    distill: DistillConfig, tasks: dict[str, TaskSpec], ctx: Context, check_files: bool
) -> None:
    """Distilled tasks must be the recipe's, the soft loss a soft-target loss, the store there."""
    for i, key in enumerate(distill.tasks):
        if key not in tasks:
            raise ctx.error(
                ("distill", "tasks", i),
                f"distill.tasks: '{key}' is not a task of this recipe ({', '.join(tasks)})",
            )
    entry = lookup(LOSSES, distill.soft_loss, ("distill", "soft_loss"), ctx)
    if entry.facts["target"] != "soft":
        raise ctx.error(
            ("distill", "soft_loss"),
            f"distill.soft_loss: loss '{distill.soft_loss}' does not take soft targets; use "
            "e.g. soft_cross_entropy",
        )
    store = Path(str(distill.store))
    if check_files and not store.is_dir():
        raise ctx.error(
            ("distill", "store"),
            f"distill.store: {store} does not exist; write it with kdnlu-teach TEACHER_RUNS... "
            f"--out {store}",
        )
