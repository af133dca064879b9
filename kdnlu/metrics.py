"""Scoring with registered metrics (``kdnlu.registry.METRICS``) and folding scores together.

The metrics themselves are components: the built-ins are in ``kdnlu_plugins.metrics`` and a
plugin adds its own with ``METRICS.register(name, greater_is_better=...)``. A metric whose
``greater_is_better`` is False (an error, such as ``mae``) is better when lower: the best
checkpoint and early stopping follow that direction, and task scores and the ``average`` use
only higher-is-better metrics (see ``task_score``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kdnlu.registry import METRICS


def correlation(pred: np.ndarray, gold: np.ndarray) -> float:
    """Pearson correlation in percent (0 when either side is constant)."""
    pred, gold = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if pred.std() == 0 or gold.std() == 0:
        return 0.0
    return float(np.corrcoef(pred, gold)[0, 1] * 100.0)


def unknown_metric_message(name: str) -> str:
    """Why ``name`` is no metric, with close registered names."""
    known = METRICS.names()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = (
        "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        if close
        else f"known metrics: {', '.join(known)}"
    )
    return f"unknown metric '{name}'; {hint} (`kdnlu list metrics` shows every metric)"


def metrics_for(target: str) -> list[str]:
    """The registered metrics that score labels of kind ``target`` (class, score, token)."""
    return [entry.name for entry in METRICS if target in entry.facts["targets"]]


def greater_is_better(name: str) -> bool:
    """Whether a higher value of metric ``name`` is better (True for names not registered in
    this process, e.g. a plugin's metric read back from a results file)."""
    if name not in METRICS:
        return True
    return bool(METRICS.get(name).facts["greater_is_better"])


def improves(score: float, best: float | None, higher_is_better: bool) -> bool:
    """Whether ``score`` beats ``best`` (None: nothing yet) in the metric's direction."""
    if best is None:
        return True
    return score > best if higher_is_better else score < best


def compute_metrics(
    names: Sequence[str], pred: Any, gold: Any, groups: np.ndarray | None = None
) -> dict[str, float]:
    """Every metric in ``names`` of predictions against gold labels (arrays, or per-sentence tag
    lists for token metrics). Metrics registered with ``groups=True`` also get each row's group
    number (``groups``; every row alone when None)."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise KeyError(unknown_metric_message(unknown[0]))
    values = {}
    for name in names:
        entry = METRICS.get(name)
        if entry.facts["groups"]:
            numbers = np.arange(len(gold)) if groups is None else np.asarray(groups)
            values[name] = float(entry.builder(pred, gold, numbers))
        else:
            values[name] = float(entry.builder(pred, gold))
    return values


def higher_is_better(names: Sequence[str]) -> bool:
    """The direction of a task's score over metrics ``names`` (see ``task_score``): higher is
    better unless every one of them is lower-is-better."""
    return not names or any(greater_is_better(name) for name in names)


def task_score(metrics: Mapping[str, float]) -> tuple[float, bool]:
    """One task's score and whether higher is better.

    The score is the mean of the task's higher-is-better metrics; a task with only
    lower-is-better metrics (errors) scores the mean of those, lower being better.
    """
    if not metrics:
        raise ValueError("no metric values")
    if not higher_is_better(list(metrics)):
        return float(np.mean(list(metrics.values()))), False
    return float(np.mean([v for name, v in metrics.items() if greater_is_better(name)])), True


def task_average(results: Mapping[str, Mapping[str, float]]) -> float:
    """Mean over tasks of each task's score, GLUE-style, for any tasks.

    A task's score is the mean of its higher-is-better metrics (``task_score``); a task
    evaluated on several splits (keys ``task/split``) scores the mean over its splits, so it
    counts once. Tasks scored only by lower-is-better metrics are left out: an error is not
    added to accuracies. Raises ``ValueError`` when no task is left to average.
    """
    per_task: dict[str, list[float]] = {}
    for key, metrics in results.items():
        if not metrics:
            raise ValueError(f"'{key}' has no metric values")
        score, higher = task_score(metrics)
        if higher:
            per_task.setdefault(key.split("/", 1)[0], []).append(score)
    if not per_task:
        what = ", ".join(results) if results else "none"
        raise ValueError(
            f"no evaluation to average: the average takes higher-is-better metrics only, and "
            f"there are none (evaluations: {what})"
        )
    return float(np.mean([np.mean(scores) for scores in per_task.values()]))
