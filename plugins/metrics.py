"""Built-in metrics, each registered with its direction and the label kinds it scores.

A metric is ``metric(pred, gold) -> float``: numpy arrays of predicted and gold class indices
(``targets`` "class") or scores ("score"); for "token" metrics, per-sentence lists of tag
strings. Values are percentages where that makes sense (GLUE's scale).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kdnlu.metrics import correlation
from kdnlu.registry import METRICS


@METRICS.register("accuracy", greater_is_better=True, targets=("class",))
def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    """Percentage of predictions equal to the gold label."""
    return float((pred == gold).mean() * 100.0)


@METRICS.register("group_accuracy", greater_is_better=True, targets=("class",), groups=True)
def group_accuracy(pred: np.ndarray, gold: np.ndarray, groups: np.ndarray) -> float:
    """Percentage of groups (questions) with every row right: questions answered right."""
    if len(gold) == 0:
        return 0.0
    wrong = np.zeros(int(groups.max()) + 1, dtype=bool)
    np.logical_or.at(wrong, groups, pred != gold)
    return float((~wrong[np.unique(groups)]).mean() * 100.0)


@METRICS.register("f1", greater_is_better=True, targets=("class",))
def f1(pred: np.ndarray, gold: np.ndarray) -> float:
    """F1 of the positive class (label index 1), as GLUE reports for MRPC and QQP."""
    tp = float(((pred == 1) & (gold == 1)).sum())
    fp = float(((pred == 1) & (gold != 1)).sum())
    fn = float(((pred != 1) & (gold == 1)).sum())
    denom = 2 * tp + fp + fn
    return 0.0 if denom == 0 else 200.0 * tp / denom


@METRICS.register("mcc", greater_is_better=True, targets=("class",))
def mcc(pred: np.ndarray, gold: np.ndarray) -> float:
    """Matthews correlation, CoLA's metric (multi-class R_K with more than two classes).

    With more than two classes this is Gorodkin's R_K, GLUE's metric for the AX diagnostic
    set. 0 when undefined.
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


@METRICS.register("pearson", greater_is_better=True, targets=("score",))
def pearson(pred: np.ndarray, gold: np.ndarray) -> float:
    """Pearson correlation of scores (0 when either side is constant)."""
    return correlation(pred, gold)


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


@METRICS.register("spearman", greater_is_better=True, targets=("score",))
def spearman(pred: np.ndarray, gold: np.ndarray) -> float:
    """Spearman rank correlation (Pearson of the ranks, ties averaged)."""
    return correlation(_ranks(np.asarray(pred)), _ranks(np.asarray(gold)))


@METRICS.register("mae", greater_is_better=False, targets=("score",))
def mae(pred: np.ndarray, gold: np.ndarray) -> float:
    """Mean absolute error of scores, in the labels' own units (lower is better)."""
    return float(np.abs(pred.astype(np.float64) - gold.astype(np.float64)).mean())


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


@METRICS.register("span_f1", greater_is_better=True, targets=("token",))
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


@METRICS.register("token_accuracy", greater_is_better=True, targets=("token",))
def token_accuracy(pred: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> float:
    """Percent of words whose tag is right."""
    pairs = [(a, b) for p, g in zip(pred, gold, strict=True) for a, b in zip(p, g, strict=True)]
    return float(100 * np.mean([a == b for a, b in pairs])) if pairs else 0.0
