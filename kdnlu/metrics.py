"""Task metrics over numpy arrays of predictions and gold labels (values in [0, 100] scale)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    """Percentage of predictions equal to the gold label."""
    return float((pred == gold).mean() * 100.0)


def f1(pred: np.ndarray, gold: np.ndarray) -> float:
    """F1 of the positive class (label index 1), as GLUE reports for MRPC and QQP."""
    tp = float(((pred == 1) & (gold == 1)).sum())
    fp = float(((pred == 1) & (gold != 1)).sum())
    fn = float(((pred != 1) & (gold == 1)).sum())
    denom = 2 * tp + fp + fn
    return 0.0 if denom == 0 else 200.0 * tp / denom


def mcc(pred: np.ndarray, gold: np.ndarray) -> float:
    """Matthews correlation (CoLA's metric); with more than two classes, its multi-class form
    (Gorodkin's R_K, GLUE's metric for the AX diagnostic set). 0 when undefined.
    """
    pred, gold = np.asarray(pred), np.asarray(gold)
    classes = np.union1d(pred, gold)
    n = float(len(gold))
    correct = float((pred == gold).sum())
    predicted = np.array([(pred == c).sum() for c in classes], dtype=np.float64)
    true = np.array([(gold == c).sum() for c in classes], dtype=np.float64)
    covariance = correct * n - float(predicted @ true)
    denom = np.sqrt((n * n - float(predicted @ predicted)) * (n * n - float(true @ true)))
    return 0.0 if denom == 0 else float(covariance / denom * 100.0)


def pearson(pred: np.ndarray, gold: np.ndarray) -> float:
    """Pearson correlation of scores (0 when either side is constant)."""
    pred, gold = pred.astype(np.float64), gold.astype(np.float64)
    if pred.std() == 0 or gold.std() == 0:
        return 0.0
    return float(np.corrcoef(pred, gold)[0, 1] * 100.0)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0
        start = end + 1
    return ranks


def spearman(pred: np.ndarray, gold: np.ndarray) -> float:
    """Spearman rank correlation (Pearson of the ranks, ties averaged)."""
    return pearson(_ranks(np.asarray(pred)), _ranks(np.asarray(gold)))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "mcc": mcc,
    "pearson": pearson,
    "spearman": spearman,
}
CLASSIFICATION_METRICS = ("accuracy", "f1", "mcc")
REGRESSION_METRICS = ("pearson", "spearman")


TOKEN_METRICS = ("span_f1", "token_accuracy")


def tag_spans(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """Labelled spans ``(start, end, type)`` of one tag sequence (end exclusive).

    ``B-X`` starts a span of type X and ``I-X`` continues it (an ``I-X`` after anything but a
    span of type X starts one, as CoNLL's evaluation script reads IOB1); ``O`` is outside; any
    other tag is its own type, a run of equal tags being one span.
    """
    spans: set[tuple[int, int, str]] = set()
    start, kind = 0, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, rest = tag.partition("-")
        if tag == "O":
            new, begins = None, True
        elif prefix in ("B", "I") and rest:
            new, begins = rest, prefix == "B" or kind != rest
        else:
            new, begins = tag, kind != tag
        if kind is not None and (begins or new != kind):
            spans.add((start, i, kind))
        if begins or new != kind:
            start, kind = i, new
    return spans


def span_f1(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> float:
    """Micro F1 (percent) of exactly matching labelled spans over all sequences."""
    found = correct = expected = 0
    for p, g in zip(pred, gold, strict=True):
        p_spans, g_spans = tag_spans(p), tag_spans(g)
        found, expected = found + len(p_spans), expected + len(g_spans)
        correct += len(p_spans & g_spans)
    if correct == 0:
        return 0.0
    precision, recall = correct / found, correct / expected
    return float(200 * precision * recall / (precision + recall))


def token_accuracy(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> float:
    """Percent of words whose tag is right."""
    pairs = [(a, b) for p, g in zip(pred, gold, strict=True) for a, b in zip(p, g, strict=True)]
    return float(100 * np.mean([a == b for a, b in pairs])) if pairs else 0.0


TOKEN_METRIC_FUNCTIONS = {"span_f1": span_f1, "token_accuracy": token_accuracy}


def compute_token_metrics(
    names: tuple[str, ...], pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Token-labelling metrics from per-sentence tag sequences (tag strings)."""
    unknown = [n for n in names if n not in TOKEN_METRIC_FUNCTIONS]
    if unknown:
        raise KeyError(f"unknown token metric(s) {unknown}; known: {', '.join(TOKEN_METRICS)}")
    return {name: TOKEN_METRIC_FUNCTIONS[name](pred, gold) for name in names}


def compute_metrics(names: tuple[str, ...], pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Every metric in ``names`` of predictions against gold labels."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
    return {name: METRICS[name](pred, gold) for name in names}


def task_average(results: Mapping[str, Mapping[str, float]]) -> float:
    """Mean over tasks of each task's score, GLUE-style, for any tasks.

    A task's score is the mean of its metrics; a task evaluated on several splits (keys
    ``task/split``) scores the mean over its splits, so it counts once.
    """
    per_split: dict[str, list[float]] = {}
    for key, metrics in results.items():
        if not metrics:
            raise ValueError(f"'{key}' has no metric values")
        per_split.setdefault(key.split("/", 1)[0], []).append(
            float(np.mean(list(metrics.values())))
        )
    if not per_split:
        raise ValueError("no evaluation results to average")
    return float(np.mean([np.mean(scores) for scores in per_split.values()]))
