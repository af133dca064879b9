"""Building a run from its recipe: the model, the losses, and the tokenised splits."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kdnlu import __version__
from kdnlu.data import EncodedSplit, encode_examples, ranking_groups
from kdnlu.errors import DataError, KdnluError
from kdnlu.evaluation import eval_name
from kdnlu.loss import Decoder, Loss
from kdnlu.metrics import greater_is_better
from kdnlu.model import MultiTaskModel
from kdnlu.plugin_code import about_task
from kdnlu.recipe import ComponentSpec, Recipe, TaskSpec
from kdnlu.registry import ENCODERS, HEADS, LOSSES
from kdnlu.task import Task
from kdnlu.token_cache import TokenCache, default_cache_dir

log = logging.getLogger("kdnlu.train")


def loss_target(name: str) -> str | None:
    """The labels a registered loss takes, as it declared them (None: its task's own)."""
    return LOSSES.get(name).facts["target"]


def head_outputs(task: Task, loss: str) -> int:
    """Output width of a task's head trained with the loss named ``loss``: one score per row
    for a group (ranking) loss, else the task's."""
    return 1 if loss_target(loss) == "group" else task.num_outputs


def check_max_lengths(recipe: Recipe, limit: int | None) -> None:
    """Every task's max_length must fit the encoder's position embeddings (``limit`` tokens;
    None: the encoder sets no limit), or its first long row would stop the run."""
    for key, spec in recipe.tasks.items():
        if limit is not None and spec.options.max_length > limit:
            raise KdnluError(
                f"tasks.{key}.max_length is {spec.options.max_length}, but encoder "
                f"'{recipe.encoder.name}' has position embeddings for {limit} tokens; set it "
                f"to at most {limit}"
            )


def build_model(recipe: Recipe, tasks: dict[str, Task]) -> MultiTaskModel:
    """The shared encoder and one head per task, from the registries."""
    encoder = ENCODERS.get(recipe.encoder.name).build(recipe.encoder.config)
    check_max_lengths(recipe, getattr(encoder, "max_length", None))
    heads = {}
    for key, spec in recipe.tasks.items():
        heads[key] = build_head(key, spec, tasks[key], encoder.hidden_size)
        check_head_level(key, spec.head.name, tasks[key])
        start_pooler(key, heads[key], encoder)
    return MultiTaskModel(encoder, heads)


def build_head(key: str, spec: TaskSpec, task: Task, hidden_size: int) -> Any:
    """One task's head, as wide as its task and loss need."""
    entry, outputs = HEADS.get(spec.head.name), head_outputs(task, spec.loss.name)
    try:
        head = entry.build(spec.head.config, hidden_size=hidden_size, num_outputs=outputs)
    except ValueError as exc:
        raise KdnluError(
            f"tasks.{key}.head: head '{spec.head.name}' cannot give the {outputs} output(s) "
            f"task {key} needs with loss '{spec.loss.name}': {exc}"
        ) from None
    declared = entry.facts["level"]
    if getattr(head, "level", declared) != declared:
        raise KdnluError(
            f"tasks.{key}.head: head '{entry.name}' ({entry.source}) is registered with level "
            f"'{declared}' but its module says level '{head.level}'; register it with "
            f'HEADS.register("{entry.name}", level="{head.level}")'
        )
    return head


def check_head_level(key: str, head: str, task: Task) -> None:
    """A head gives one output per row or per token, as its task is labelled."""
    level, wanted = HEADS.get(head).facts["level"], task.level
    if level != wanted:
        gives = "one output per token" if level == "token" else "one output per row"
        needs = "labels every word" if wanted == "token" else "has one label per row"
        raise KdnluError(
            f"tasks.{key}.head: head '{head}' gives {gives}, but "
            f"task '{task.name}' {needs}; use e.g. head: {task.default_head}"
        )


def start_pooler(key: str, head: Any, encoder: Any) -> None:
    """A head with a pooler layer starts from the checkpoint's pretrained pooler, if any."""
    pooler = getattr(head, "pooler", None)
    if pooler is None:
        return
    reader = getattr(encoder, "pretrained_pooler", None)
    weights = reader() if reader is not None else None
    if weights is None:
        log.warning(
            "tasks.%s.head: pooling 'pooler' but the encoder has no pretrained pooler; its "
            "pooler layer starts from random weights",
            key,
        )
        return
    pooler.dense.load_state_dict(weights)


def encode_split(
    recipe: Recipe, tasks: dict[str, Task], tokenizer: Any, split: str, key: str
) -> EncodedSplit:
    """One task's split, tokenised (through the token cache unless it is off)."""
    spec, task = recipe.tasks[key], tasks[key]
    limit = spec.options.train_rows if split == "train" else spec.options.eval_rows
    max_length = spec.options.max_length

    def build() -> EncodedSplit:
        with about_task(key, recipe.source):
            examples = task.read(split, on_bad_row=spec.options.on_bad_row)
        return encode_examples(key, tokenizer, examples, max_length)

    if not recipe.train.token_cache:
        return build().head(limit)
    cache = TokenCache(Path(recipe.cache_dir) if recipe.cache_dir else default_cache_dir())
    reader = getattr(task.reader, "func", task.reader)  # functools.partial -> function
    options = {
        "task": spec.name,
        "split": split,
        "config": repr(spec.config),
        "on_bad_row": spec.options.on_bad_row,
        "labels": task.label_names,
        "reader": f"{reader.__module__}.{reader.__qualname__}",
        "kdnlu": __version__,
    }
    return cache.get_or_build(key, tokenizer, task.path(split), max_length, options, build).head(
        limit
    )


def encode_eval_splits(
    recipe: Recipe, tasks: dict[str, Task], tokenizer: Any
) -> dict[str, EncodedSplit]:
    return {
        eval_name(key, split, tasks[key]): encode_split(recipe, tasks, tokenizer, split, key)
        for key in recipe.tasks
        for split in tasks[key].eval_splits
    }


def check_best_metric(metric: str, tasks: dict[str, Task]) -> None:
    """``train.best_metric`` must name a score the evaluations will have."""
    names = [
        f"{eval_name(key, split, task)}.{m}"
        for key, task in tasks.items()
        for split in task.eval_splits
        for m in task.metrics
    ]
    if metric == "average":
        if names and not any(greater_is_better(n.rpartition(".")[2]) for n in names):
            raise KdnluError(
                "train.best_metric is 'average', but every metric of the evaluated tasks is "
                "lower-is-better and the average takes higher-is-better metrics only; name one "
                "instead, e.g. train.best_metric: " + names[0]
            )
        return
    if metric not in names:
        raise KdnluError(
            f"train.best_metric '{metric}' names no evaluation; choose 'average' or one of: "
            + ", ".join(names)
        )


def build_losses(recipe: Recipe) -> dict[str, Loss]:
    """Each task's loss, from the LOSSES registry."""
    return {key: build_loss(key, spec.loss) for key, spec in recipe.tasks.items()}


def build_loss(key: str, spec: ComponentSpec) -> Loss:
    """One loss; the labels it says it takes must be those it was registered with."""
    entry = LOSSES.get(spec.name)
    loss = entry.build(spec.config)
    built, declared = getattr(loss, "target", None), entry.facts["target"]
    if built is not None and built != declared:
        raise KdnluError(
            f"tasks.{key}.loss: loss '{entry.name}' ({entry.source}) returns a loss with "
            f"target '{built}' but is registered with target {declared!r}; register it with "
            f'LOSSES.register("{entry.name}", target="{built}")'
        )
    return loss


def loss_decoders(losses: Mapping[str, Loss]) -> dict[str, Decoder]:
    """The tasks whose loss decides how outputs become predictions (ranking), and how."""
    decoders = {key: getattr(loss, "decode", None) for key, loss in losses.items()}
    return {key: decode for key, decode in decoders.items() if decode is not None}


def no_groups_error(key: str, loss: Loss) -> DataError:
    """A group loss finds no group it can train on."""
    return DataError(
        f"task '{key}': its ranking loss finds no group of {loss.group_size} candidates "
        f"(rows of one question, or sharing their first text) with exactly one labelled "
        f"{loss.positive_label}; there is nothing to rank"
    )


def training_groups(
    splits: Mapping[str, EncodedSplit], losses: Mapping[str, Loss]
) -> dict[str, np.ndarray]:
    """The candidate groups of every task trained with a group-level (ranking) loss."""
    groups = {}
    for key, loss in losses.items():
        if getattr(loss, "target", None) != "group":
            continue
        assert loss.group_size is not None and loss.positive_label is not None
        rows, left_out = ranking_groups(splits[key], loss.group_size, loss.positive_label)
        if not len(rows):
            raise no_groups_error(key, loss)
        if left_out:
            log.warning(
                "%s: the ranking loss trains on %d groups of %d candidates; %d of %d rows are in "
                "groups of another size or without exactly one positive and are not trained on",
                key,
                len(rows),
                loss.group_size,
                left_out,
                len(splits[key]),
            )
        groups[key] = rows
    return groups


def training_units(
    recipe: Recipe, splits: Mapping[str, EncodedSplit], losses: Mapping[str, Loss]
) -> dict[str, np.ndarray]:
    """The units batches are made of (``[U, size]`` row indices) of every task that does not
    train on each of its rows alone: ranking tasks' candidate groups (``training_groups``), and
    the fixed random sample of a task with ``train_sample``. Rows keep their place in the split.
    """
    units = training_groups(splits, losses)
    for key, split in splits.items():
        options = recipe.tasks[key].options
        if options.train_sample is None:
            continue
        rows = units.get(key)
        if rows is None:
            rows = np.arange(len(split), dtype=np.int64)[:, None]
        what = "candidate groups" if key in units else "training rows"
        if options.train_sample >= len(rows):
            log.warning(
                "%s: train_sample %d is not below its %d %s; training on all of them",
                key,
                options.train_sample,
                len(rows),
                what,
            )
            continue
        rng = np.random.default_rng(options.sample_seed)
        pick = np.sort(rng.choice(len(rows), size=options.train_sample, replace=False))
        units[key] = rows[pick]
        log.info(
            "%s: training on %d of its %d %s (train_sample, sample_seed %d)",
            key,
            options.train_sample,
            len(rows),
            what,
            options.sample_seed,
        )
    return units
