"""Scoring a model on its tasks' evaluation splits, and turning outputs into predictions."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from kdnlu.data import EncodedSplit, iterate_batches, word_positions
from kdnlu.loss import Decoder
from kdnlu.metrics import compute_metrics, greater_is_better, improves, task_average
from kdnlu.model import MultiTaskModel
from kdnlu.task import Task


def label_dtype(task: Task) -> torch.dtype:
    return torch.float32 if task.label_names is None else torch.long


def eval_name(task_key: str, split: str, task: Task) -> str:
    """Name of one evaluation: the task key, or ``key/split`` for tasks scored on several."""
    return task_key if len(task.eval_splits) == 1 else f"{task_key}/{split}"


@torch.no_grad()
def predict_outputs(
    model: MultiTaskModel,
    task_key: str,
    task: Task,
    split: EncodedSplit,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Head outputs for every row of ``split``, in row order (float32 numpy).

    For a token-labelling split the outputs are per token, ``[tokens, C]`` aligned with the
    split's flat token arrays (row ``i`` is ``outputs[offsets[i]:offsets[i + 1]]``).
    """
    was_training = model.training
    model.eval()
    outputs: np.ndarray | None = None
    for batch in iterate_batches(split, batch_size, label_dtype(task)):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(batch.to(device)).float().cpu().numpy()
        if split.token_level:
            if outputs is None:
                outputs = np.zeros((len(split.ids), logits.shape[-1]), dtype=np.float32)
            for row, index in enumerate(batch.indices.tolist()):
                start, end = int(split.offsets[index]), int(split.offsets[index + 1])
                outputs[start:end] = logits[row, : end - start]
            continue
        if outputs is None:
            outputs = np.zeros((len(split), *logits.shape[1:]), dtype=np.float32)
        outputs[batch.indices.numpy()] = logits
    model.train(was_training)
    assert outputs is not None
    return outputs


def to_predictions(
    task: Task,
    outputs: np.ndarray,
    decode: Decoder | None = None,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Class indices, or regression scores clipped to the task's output range.

    ``decode`` (from the task's loss, e.g. ranking) turns outputs and candidate ``groups`` into
    class indices instead of the row-wise argmax.
    """
    if decode is not None:
        if groups is None:
            groups = np.arange(len(outputs), dtype=np.int64)
        return decode(outputs, groups)
    if task.label_names is not None:
        return outputs.argmax(-1)
    scores = outputs.reshape(len(outputs), -1)[:, 0]
    if task.output_range is not None:
        scores = np.clip(scores, *task.output_range)
    return scores


def word_tags(split: EncodedSplit, token_classes: np.ndarray) -> list[np.ndarray]:
    """Per row, the class at the first sub-word of each kept word (flat ``token_classes`` are
    aligned with the split's tokens, e.g. its ``token_labels`` or predicted classes)."""
    return [np.asarray(token_classes[word_positions(split, row)]) for row in range(len(split))]


def token_scores(task: Task, split: EncodedSplit, outputs: np.ndarray) -> dict[str, float]:
    """Token-labelling metrics of per-token ``outputs`` against the split's word tags."""
    assert split.token_labels is not None and task.label_names is not None
    names = task.label_names
    gold = word_tags(split, split.token_labels)
    pred = word_tags(split, outputs.argmax(-1))
    as_tags = [[names[int(i)] for i in row] for row in pred]
    gold_tags = [[names[int(i)] for i in row] for row in gold]
    return compute_metrics(task.metrics, as_tags, gold_tags)


def evaluate(
    model: MultiTaskModel,
    tasks: dict[str, Task],
    splits: dict[str, EncodedSplit],
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    decoders: Mapping[str, Decoder] | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of every evaluation split, keyed by evaluation name (see ``eval_name``).

    ``decoders`` maps task keys to their loss's ``decode`` where predictions are not argmaxes.
    """
    results = {}
    for name, split in splits.items():
        task_key = split.task
        task = tasks[task_key]
        outputs = predict_outputs(model, task_key, task, split, batch_size, device, amp_dtype)
        if split.token_level:
            results[name] = token_scores(task, split, outputs)
            continue
        decode = (decoders or {}).get(task_key)
        groups = split.group_ids()
        predictions = to_predictions(task, outputs, decode, groups)
        results[name] = compute_metrics(task.metrics, predictions, split.labels, groups)
    return results


def select_score(results: dict[str, dict[str, float]], metric: str) -> float:
    """The number ``train.best_metric`` names: ``average`` or ``<eval name>.<metric>``."""
    if metric == "average":
        return task_average(results)
    name, _, key = metric.rpartition(".")
    if name not in results or key not in results[name]:
        known = ", ".join(f"{n}.{m}" for n, ms in results.items() for m in ms)
        raise KeyError(f"best_metric '{metric}' is not among the evaluations: average, {known}")
    return results[name][key]


def score_greater_is_better(metric: str) -> bool:
    """The direction of ``train.best_metric``: the average rises as models improve; a named
    metric goes the way it was registered (an error such as ``mae`` falls)."""
    return metric == "average" or greater_is_better(metric.rpartition(".")[2])


def is_improvement(score: float, best: float | None, metric: str) -> bool:
    """Whether ``score`` of ``train.best_metric`` beats the best so far (None: the first)."""
    return improves(score, best, score_greater_is_better(metric))
