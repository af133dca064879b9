import numpy as np
import pytest

from kdnlu.errors import RegistryError
from kdnlu.metrics import compute_metrics, metrics_for, task_average, task_score
from kdnlu.registry import METRIC_TARGETS, METRICS, Registry
from kdnlu_plugins.metrics import accuracy, f1, mae, mcc, pearson, spearman
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
    covered = {name for target in METRIC_TARGETS for name in metrics_for(target)}
    assert covered == set(METRICS.names())
    assert metrics_for("score") == ["mae", "pearson", "spearman"]


@pytest.mark.parametrize("entry", list(METRICS), ids=lambda e: e.name)
def test_metric_contract(entry) -> None:
    """Every metric declares its direction and the label kinds it scores, and scores them."""
    assert isinstance(entry.facts["greater_is_better"], bool)
    assert set(entry.facts["targets"]) <= set(METRIC_TARGETS) and entry.facts["targets"]
    assert isinstance(entry.facts["groups"], bool)
    if "token" in entry.facts["targets"]:
        value = compute_metrics([entry.name], [["B-X", "O"]], [["B-X", "O"]])[entry.name]
    else:
        pred, gold = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])
        value = compute_metrics([entry.name], pred, gold, np.array([0, 0, 1, 1]))[entry.name]
    assert np.isfinite(value)


def test_group_accuracy_scores_whole_questions() -> None:
    # two questions of two candidates: the first answered right, the second wrong
    pred, gold = np.array([1, 0, 1, 0]), np.array([1, 0, 0, 1])
    scores = compute_metrics(["group_accuracy", "accuracy"], pred, gold, np.array([0, 0, 1, 1]))
    assert scores == {"group_accuracy": 50.0, "accuracy": 50.0}
    assert compute_metrics(["group_accuracy"], pred, gold, np.array([3, 3, 3, 3])) == {
        "group_accuracy": 0.0
    }


def test_mae_is_an_error_metric() -> None:
    assert mae(np.array([1.0, 3.0]), np.array([2.0, 3.0])) == pytest.approx(0.5)
    assert METRICS.get("mae").facts == {
        "greater_is_better": False,
        "targets": ("score",),
        "groups": False,
    }


def test_a_metric_must_declare_its_direction() -> None:
    reg = Registry("metric", "metrics", facts=METRICS.facts)
    with pytest.raises(RegistryError) as err:
        reg.register("hits")(accuracy)
    assert str(err.value) == (
        "metric 'hits': register it with greater_is_better=... (True when a higher value is a "
        "better model)"
    )
    with pytest.raises(RegistryError) as err:
        reg.register("hits", greater_is_better=True, higher=True)(accuracy)
    assert str(err.value) == (
        "metric 'hits': unknown keyword 'higher' for metrics.register (the metrics registry "
        "takes: greater_is_better, targets, groups)"
    )


def test_a_metric_scores_known_label_kinds() -> None:
    reg = Registry("metric", "metrics", facts=METRICS.facts)
    with pytest.raises(RegistryError) as err:
        reg.register("hits", greater_is_better=True, targets=("scores",))(accuracy)
    assert str(err.value) == (
        "metric 'hits': targets takes some of class, score, token; got ('scores',)"
    )


def test_a_metric_name_is_registered_once() -> None:
    def accuracy(pred, gold):
        """Another accuracy."""
        return 0.0

    accuracy.__module__ = "my_plugin"
    with pytest.raises(RegistryError, match="metric 'accuracy' is registered twice: first by "):
        METRICS.register("accuracy", greater_is_better=True)(accuracy)
    assert METRICS.get("accuracy").module == "kdnlu_plugins.metrics"


def test_lower_is_better_metrics_stay_out_of_the_average() -> None:
    assert task_score({"pearson": 80.0, "mae": 0.7}) == (80.0, True)
    assert task_score({"mae": 0.7}) == (0.7, False)
    results = {"rte": {"accuracy": 60.0}, "price": {"mae": 3.0}, "stsb": {"pearson": 80.0}}
    assert task_average(results) == pytest.approx(70.0)
    with pytest.raises(ValueError, match="the average takes higher-is-better metrics only"):
        task_average({"price": {"mae": 3.0}})


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
