"""Task metrics over numpy arrays of predictions and gold labels (values in [0, 100] scale)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float((pred == gold).mean() * 100.0)


def f1(pred: np.ndarray, gold: np.ndarray) -> float:
    """F1 of the positive class (label index 1), as GLUE reports for MRPC and QQP."""
    tp = float(((pred == 1) & (gold == 1)).sum())
    fp = float(((pred == 1) & (gold != 1)).sum())
    fn = float(((pred != 1) & (gold == 1)).sum())
    denom = 2 * tp + fp + fn
    return 0.0 if denom == 0 else 200.0 * tp / denom


def mcc(pred: np.ndarray, gold: np.ndarray) -> float:
    """Matthews correlation of binary predictions (CoLA's metric)."""
    tp = float(((pred == 1) & (gold == 1)).sum())
    tn = float(((pred == 0) & (gold == 0)).sum())
    fp = float(((pred == 1) & (gold == 0)).sum())
    fn = float(((pred == 0) & (gold == 1)).sum())
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denom == 0 else float((tp * tn - fp * fn) / denom * 100.0)


def pearson(pred: np.ndarray, gold: np.ndarray) -> float:
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
    return pearson(_ranks(np.asarray(pred)), _ranks(np.asarray(gold)))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "mcc": mcc,
    "pearson": pearson,
    "spearman": spearman,
}


def compute_metrics(names: tuple[str, ...], pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Every metric in ``names`` of predictions against gold labels."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
    return {name: METRICS[name](pred, gold) for name in names}
