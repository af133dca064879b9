"""Checks a recipe passes beyond the shape of its keys: names that exist, losses that fit their
tasks' labels, distillation settings that fit the recipe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdnlu.config import Context
from kdnlu.errors import RegistryError
from kdnlu.registry import LOSSES, Registry
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


TRAINABLE_TARGETS = {
    "class": "class labels",
    "score": "regression scores",
    "group": "class labels of candidates grouped by their first text",
    "token": "one class label per word (token labelling)",
    "soft": "teacher probability distributions (it serves as distill.soft_loss)",
}


def check_loss_fits(key: str, task: Task, loss: ComponentSpec, ctx: Context) -> None:
    """The loss must take the kind of label the task has."""
    target = getattr(LOSSES.get(loss.name).build(loss.config), "target", None)
    if getattr(task, "level", "sequence") == "token":
        wanted = "token"
    else:
        wanted = "score" if task.label_names is None else "class"
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
    if getattr(entry.build(), "target", None) != "soft":
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
