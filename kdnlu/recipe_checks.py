"""Checks a recipe passes beyond the shape of its keys: names that exist, losses that fit their
tasks' labels, distillation settings that fit the recipe."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from kdnlu.config import Context
from kdnlu.errors import KdnluError, RegistryError
from kdnlu.metrics import unknown_metric_message
from kdnlu.plugin_code import failure
from kdnlu.recipe_specs import TaskSpec
from kdnlu.registry import LOSSES, METRICS, Entry, Registry
from kdnlu.schema_distill import DistillConfig, ObjectiveTermConfig
from kdnlu.task import Task
from kdnlu.yaml_source import KeyPath, format_key_path


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
    "hidden": "the teachers' hidden states (an objective term with layers)",
    "attention": "the teachers' attention distributions (an objective term with layers)",
}
TEACHER_KINDS = ("soft", "teacher_score", "hidden", "attention")
LAYER_KINDS = ("hidden", "attention")


def term_kind(
    key: str, task: Task, term: ObjectiveTermConfig, target: str | None, path: KeyPath, ctx: Context
) -> str:
    """What an objective term compares the student with: ``hard`` (gold labels),
    ``teacher_score`` (the teachers' mean score), ``soft`` (their distribution) or ``hidden``
    (their hidden states); a term that does not fit its task is an error at ``path``."""
    where = f"{format_key_path(path)} (loss '{term.loss}')"
    teacherly = target in ("soft", *LAYER_KINDS)
    targets = term.targets if term.targets != "auto" else ("teacher" if teacherly else "gold")
    if teacherly and targets == "gold":
        raise ctx.error(
            path, f"{where}: a {target} loss learns from teachers; drop `targets: gold`"
        )
    for key, kinds in (("layers", LAYER_KINDS), ("project", ("hidden",))):
        if getattr(term, key) is not None and target not in kinds:
            raise ctx.error(
                path, f"{where}: `{key}` is for {' and '.join(kinds)} losses (kdnlu list losses)"
            )
    if target in LAYER_KINDS:
        if term.layers is None:
            raise ctx.error(
                path, f"{where}: give `layers`, student layer -> teacher layer, e.g. {{2: 4}}"
            )
        if target == "attention" and 0 in [*term.layers, *term.layers.values()]:
            raise ctx.error(
                path, f"{where}: attention layers are numbered from 1 (the first layer's)"
            )
        return str(target)
    if target == "soft":
        if task.label_kind not in ("class", "group"):
            hint = "; use {loss: mse, targets: teacher}" if task.label_kind == "score" else ""
            raise ctx.error(
                path,
                f"{where}: a soft loss needs class outputs, but task '{task.name}' has "
                f"{TRAINABLE_TARGETS[task.label_kind]}{hint}",
            )
        return "soft"
    check_loss_fits(key, task, str(term.loss), ctx, (*path, "loss"))
    if targets == "teacher":
        if (target or task.label_kind) != "score":
            raise ctx.error(
                path,
                f"{where}: `targets: teacher` takes a regression loss (the teachers' mean score); "
                "class outputs learn from teachers through a soft loss (e.g. soft_cross_entropy)",
            )
        return "teacher_score"
    return "hard"


def check_teacher_terms(
    tasks: dict[str, TaskSpec], distill: DistillConfig | None, ctx: Context
) -> None:
    """Terms that learn from teachers need ``distill.store``; a task in ``distill.tasks`` (the
    shorthand) has no objective of its own."""
    for key, spec in tasks.items():
        if distill is not None and key in distill.tasks and spec.objective:
            raise ctx.error(
                ("distill", "tasks", distill.tasks.index(key)),
                f"distill.tasks: task {key} has its own objective (tasks.{key}.objective); the "
                "distill: shorthand would replace it. Leave it out of distill.tasks, or drop "
                "the objective",
            )
        for i, term in enumerate(spec.objective):
            if term.kind in TEACHER_KINDS and distill is None:
                raise ctx.error(
                    ("tasks", key, "objective", i),
                    f"tasks.{key}.objective[{i}]: term '{term.name}' learns from teachers; say "
                    "where their outputs are with distill: {store: FOLDER} (kdnlu-teach --out)",
                )


def check_loss_fits(
    key: str, task: Task, loss_name: str, ctx: Context, at: KeyPath | None = None
) -> None:
    """The loss must take the kind of label the task has (``at``: where the loss is named,
    ``tasks.K.loss`` unless given)."""
    target = LOSSES.get(loss_name).facts["target"]
    wanted = task.label_kind
    if target is None or target == wanted:
        return
    path: KeyPath = at or ("tasks", key, "loss", "name")
    label = format_key_path(path[:-1]) if at else f"tasks.{key}.loss"
    if target == "group" and wanted == "class":
        assert task.label_names is not None
        if len(task.label_names) == 2:
            return
        raise ctx.error(
            path,
            f"{label}: loss '{loss_name}' ranks candidates into a right and a wrong "
            f"class, but task '{task.name}' has {len(task.label_names)} classes; a ranking "
            "loss needs a task with two",
        )
    raise ctx.error(
        path,
        f"{label}: loss '{loss_name}' takes "
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
    for i, folder in enumerate(distill.online if check_files else ()):
        if not (Path(folder) / "recipe.yaml").is_file():
            raise ctx.error(
                ("distill", "online", i),
                f"distill.online: {folder} is not a kdnlu-train run directory (it has no "
                "recipe.yaml)",
            )
    store = Path(str(distill.store))
    if check_files and distill.store is not None and not store.is_dir():
        raise ctx.error(
            ("distill", "store"),
            f"distill.store: {store} does not exist; write it with kdnlu-teach TEACHER_RUNS... "
            f"--out {store}",
        )
