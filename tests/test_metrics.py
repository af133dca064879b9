import numpy as np
import pytest

from kdnlu.metrics import (
    CLASSIFICATION_METRICS,
    METRICS,
    REGRESSION_METRICS,
    accuracy,
    compute_metrics,
    f1,
    mcc,
    pearson,
    spearman,
)
from kdnlu_tasks.glue import glue_score


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


def test_mcc_multiclass_is_gorodkins_rk() -> None:
    pred = np.array([0, 1, 2, 0, 1, 2])
    gold = np.array([0, 1, 2, 1, 2, 0])
    # 3 correct of 6, every class predicted and true twice: (3*6 - 12) / (36 - 12)
    assert mcc(pred, gold) == pytest.approx(25.0)
    assert mcc(gold, gold) == pytest.approx(100.0)


def test_metric_kinds_cover_every_metric() -> None:
    assert set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS) == set(METRICS)


FULL_GLUE = {
    "cola": {"mcc": 50.0},
    "sst2": {"accuracy": 90.0},
    "mrpc": {"f1": 88.0, "accuracy": 84.0},
    "stsb": {"pearson": 80.0, "spearman": 78.0},
    "qqp": {"f1": 70.0, "accuracy": 88.0},
    "mnli/dev_matched": {"accuracy": 84.0},
    "mnli/dev_mismatched": {"accuracy": 83.0},
    "qnli": {"accuracy": 91.0},
    "rte": {"accuracy": 66.0},
    "wnli": {"accuracy": 56.0},
    "ax": {"mcc": 35.0},
}


def test_glue_score_by_hand() -> None:
    # 50 + 90 + (88+84)/2 + (80+78)/2 + (70+88)/2 + (84+83)/2 + 91 + 66 + 56 = 680.5 over 9
    assert glue_score(FULL_GLUE) == pytest.approx(680.5 / 9)
    mnli_once = {k: v for k, v in FULL_GLUE.items() if not k.startswith("mnli")}
    assert glue_score({**mnli_once, "mnli": {"accuracy": 83.5}}) == pytest.approx(680.5 / 9)


def test_glue_score_skips_absent_tasks_and_ignores_others() -> None:
    results = {"rte": {"accuracy": 60.0}, "mrpc": {"f1": 80.0, "accuracy": 70.0}}
    assert glue_score({**results, "ax": {"mcc": 10.0}, "reviews": {"accuracy": 0.0}}) == 67.5


def test_glue_score_needs_a_glue_task() -> None:
    with pytest.raises(ValueError) as err:
        glue_score({"ax": {"mcc": 1.0}})
    assert str(err.value) == (
        "glue_score: none of the GLUE tasks (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli) "
        "is in the results (got ax)"
    )


def test_task_average_counts_a_multi_split_task_once() -> None:
    from kdnlu.metrics import task_average

    results = {
        "mnli/dev_matched": {"accuracy": 80.0},
        "mnli/dev_mismatched": {"accuracy": 70.0},
        "my_pairs": {"f1": 90.0, "accuracy": 80.0},
    }
    assert task_average(results) == pytest.approx((75.0 + 85.0) / 2)
