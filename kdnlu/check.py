"""``kdnlu check``: build and validate every task of a recipe the way training will, without
training: the tasks, their metrics and best metric, every split read, a few rows of each
encoded, and one forward pass and loss per task."""

from __future__ import annotations

import numpy as np
import torch

from kdnlu.build import (
    build_losses,
    build_model,
    check_best_metric,
    loss_target,
    no_groups_error,
)
from kdnlu.data import (
    EncodedSplit,
    candidate_groups,
    collate,
    encode_examples,
    group_keys,
    group_numbers,
)
from kdnlu.errors import PluginError
from kdnlu.evaluation import label_dtype
from kdnlu.loss import Loss
from kdnlu.model import MultiTaskModel
from kdnlu.plugin_code import about_task, failure
from kdnlu.recipe import Recipe, TaskSpec
from kdnlu.task import Example, Task

SAMPLE_ROWS = 4  # rows of each split encoded, and of train put through the model


def dry_build(recipe: Recipe) -> str:
    """Build tasks, read their data and build the model without training; describe the result."""
    tasks = recipe.build_tasks()
    check_best_metric(recipe.train.best_metric, tasks)
    model = build_model(recipe, tasks)
    lines = [f"recipe '{recipe.name}' is valid"]
    if recipe.data_root is not None:
        lines.append(f"  data_root: {recipe.data_root} (from {recipe.data_root_source})")
    for key in recipe.tasks:
        with about_task(key, recipe.source):
            lines.append(check_task(recipe, key, tasks[key], model))
    params = sum(p.numel() for p in model.parameters())
    lines.append(f"  model: encoder {recipe.encoder.name}, {params / 1e6:.2f} M parameters")
    return "\n".join(lines)


def check_task(recipe: Recipe, key: str, task: Task, model: MultiTaskModel) -> str:
    """Read every split of one task, encode a few rows of each, run one training batch through
    the model and the loss; one line describing the task."""
    spec = recipe.tasks[key]
    policy, max_length = spec.options.on_bad_row, spec.options.max_length
    tokenizer = model.encoder.tokenizer
    read = {}
    for split in dict.fromkeys(("train", *task.eval_splits, *task.test_splits)):
        if split in task.files and (split == "train" or task.files[split].is_file()):
            read[split] = task.read(split, on_bad_row=policy)
    for name, path in task.extra_predictions.items():
        read[name] = task.read_file(path, "test", policy)
    for rows in read.values():  # a few rows of every split through the tokenizer
        encode_examples(key, tokenizer, rows[:SAMPLE_ROWS], max_length)
    loss = build_losses(recipe)[key]
    if loss_target(spec.loss.name) == "group":  # a step trains on whole candidate groups
        step_rows = first_group(key, loss, read["train"])
    else:
        step_rows = read["train"][:SAMPLE_ROWS]
    one_step(recipe, key, task, model, encode_examples(key, tokenizer, step_rows, max_length))
    train = min(len(read["train"]), spec.options.train_rows or len(read["train"]))
    sample = spec.options.train_sample
    trained = f"{sample} of {train}" if sample is not None and sample < train else str(train)
    limit = spec.options.eval_rows
    dev = sum(len(read[s][:limit] if limit else read[s]) for s in task.eval_splits if s in read)
    return (
        f"  {key}: {trained} train / {dev} dev rows, head {spec.head.name}, "
        f"{describe_loss(spec)}, metrics {', '.join(task.metrics)}"
    )


def describe_loss(spec: TaskSpec) -> str:
    """``loss NAME``, or the task's objective term by term."""
    if not spec.objective:
        return f"loss {spec.loss.name}"
    from kdnlu.objective import describe_term

    return "objective " + " + ".join(describe_term(t) for t in spec.objective)


def first_group(key: str, loss: Loss, examples: list[Example]) -> list[Example]:
    """The rows of the first candidate group a group loss can train on (an error if none)."""
    labels = np.array([np.nan if ex.label is None else float(ex.label) for ex in examples])
    groups = group_numbers(group_keys(examples))
    assert loss.group_size is not None and loss.positive_label is not None
    units, _ = candidate_groups(groups, labels, loss.group_size, loss.positive_label)
    if not len(units):
        raise no_groups_error(key, loss)
    return [examples[int(i)] for i in units[0]]


def one_step(
    recipe: Recipe, key: str, task: Task, model: MultiTaskModel, split: EncodedSplit
) -> None:
    """The forward pass and loss of a few training rows, as the first step would run them."""
    loss = build_losses(recipe)[key]
    spec = recipe.tasks[key]
    try:
        with torch.no_grad():
            batch = collate(split, list(range(len(split))), label_dtype(task))
            value = loss(model(batch).float(), batch.labels)
            float(value)
    except Exception as exc:  # head or loss plugin code
        what = f"the first training step (head {spec.head.name}, loss {spec.loss.name})"
        raise PluginError(failure(what, exc)) from exc
