import numpy as np
import pytest

from kdnlu.metrics import accuracy, compute_metrics, f1, mcc, pearson, spearman


def test_accuracy_and_f1_exact() -> None:
    pred = np.array([1, 1, 0, 0, 1])
    gold = np.array([1, 0, 0, 1, 1])
    assert accuracy(pred, gold) == pytest.approx(60.0)
    # tp=2 fp=1 fn=1 -> 2*2/(4+1+1)
    assert f1(pred, gold) == pytest.approx(200 * 2 / 6)


def test_mcc_matches_definition() -> None:
    pred = np.array([1, 1, 0, 0, 1, 0])
    gold = np.array([1, 0, 0, 1, 1, 0])
    tp, tn, fp, fn = 2, 2, 1, 1
    expected = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) * 100
    assert mcc(pred, gold) == pytest.approx(expected)
    assert mcc(np.ones(4), np.array([1, 0, 1, 0])) == 0.0


def test_correlations() -> None:
    gold = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert pearson(gold * 2 + 1, gold) == pytest.approx(100.0)
    assert spearman(gold**3, gold) == pytest.approx(100.0)
    assert spearman(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(
        86.60254037844386
    )


def test_unknown_metric() -> None:
    with pytest.raises(KeyError, match="unknown metric"):
        compute_metrics(("bleu",), np.zeros(2), np.zeros(2))
