"""Ranking (MT-DNN's QNLI formulation): candidate groups, whole-group batches, group decoding,
and a real training run on QNLI rows."""

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, write
from kdnlu.batches import TaskBatches
from kdnlu.data import EncodedSplit, group_numbers, ranking_groups
from kdnlu.errors import KdnluError, RecipeError
from kdnlu.predict import write_predictions
from kdnlu.recipe import load_recipe
from kdnlu.trained import load_trained
from kdnlu.trainer import train

QNLI_PAIRS = REPO / "tests" / "fixtures" / "qnli_ranking"
GLUE_SAMPLE = REPO / "tests" / "fixtures" / "glue"

RANKING_RECIPE = f"""\
name: qnli_ranking
data_root: {QNLI_PAIRS}
encoder: {{name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64, dropout: 0.0}}
tasks:
  qnli:
    max_length: 64
    head: {{name: ranking, dropout: 0.0}}
    loss: {{name: ranking}}
train: {{lr: 3.0e-3, batch_size: 8, epochs: 12, warmup: 0.0, device: cpu}}
"""


def split_with(groups: list[int], labels: list[int]) -> EncodedSplit:
    n = len(groups)
    return EncodedSplit(
        "t",
        np.arange(2 * n, dtype=np.int32),
        np.zeros(2 * n, np.int8),
        np.arange(0, 2 * n + 1, 2, dtype=np.int64),
        np.asarray(labels, dtype=np.float64),
        pad_id=0,
        groups=np.asarray(groups, dtype=np.int64),
    )


def test_rows_sharing_their_first_text_share_a_group() -> None:
    numbers = group_numbers(["q1", "q2", "q1", "q3", "q2", "q1"])
    assert numbers.tolist() == [0, 1, 0, 2, 1, 0]


def test_ranking_groups_keep_only_rankable_groups() -> None:
    # group 0: rows 0, 2 (one positive 0) ok; group 1: rows 1, 4, both positive; group 2: row 3
    # alone; group 3: rows 5, 6 ok; group 4: rows 7, 8, 9, too many
    split = split_with([0, 1, 0, 2, 1, 3, 3, 4, 4, 4], [1, 0, 0, 0, 0, 0, 1, 0, 1, 1])
    rows, left_out = ranking_groups(split, group_size=2, positive_label=0)
    assert rows.tolist() == [[0, 2], [5, 6]]
    assert left_out == 6
    rows, left_out = ranking_groups(split, group_size=3, positive_label=0)
    assert rows.tolist() == [[7, 8, 9]] and left_out == 7


def test_batches_hold_whole_groups_and_every_group_once_per_pass() -> None:
    groups = [g for g in range(20) for _ in range(2)]
    random.Random(0).shuffle(groups)  # candidates of one question are far apart in the file
    split = split_with(groups, [0] * 40)
    rows = np.array([[i for i, g in enumerate(groups) if g == n] for n in range(20)])
    batches = TaskBatches({"q": split}, 8, bucket=True, rng=random.Random(3), groups={"q": rows})
    assert batches.counts() == {"q": 5}  # 8 rows = 4 groups of 2 per batch
    seen = [batches.next("q") for _ in range(5)]
    for batch in seen:
        assert len(batch) == 8
        pairs = [batch[i : i + 2] for i in range(0, 8, 2)]
        assert all(groups[a] == groups[b] for a, b in pairs)  # consecutive rows: one group
    assert sorted(i for b in seen for i in b) == list(range(40))


def test_ranking_needs_a_two_class_task(tmp_path: Path) -> None:
    text = RANKING_RECIPE.replace(f"data_root: {QNLI_PAIRS}", f"data_root: {GLUE_SAMPLE}")
    for task, classes in (("mnli", "3 classes"), ("stsb", None)):
        recipe = write(tmp_path / f"{task}.yaml", text.replace("  qnli:", f"  {task}:"))
        with pytest.raises(RecipeError) as err:
            load_recipe(recipe)
        message = str(err.value)
        assert f"tasks.{task}.loss: loss 'ranking'" in message
        if classes:
            assert f"but task 'mnli' has {classes}; a ranking loss needs a task with two" in message
        else:
            assert "but task 'stsb' has regression scores" in message


def test_training_ranks_qnli_candidates(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recipe = load_recipe(
        write(tmp_path / "r.yaml", RANKING_RECIPE), [f"output_dir={tmp_path / 'runs'}"]
    )
    with caplog.at_level(logging.WARNING, logger="kdnlu.train"):
        result = train(recipe, progress=False)
    assert (
        "qnli: the ranking loss trains on 24 groups of 2 candidates; 8 of 56 rows are in groups "
        "of another size or without exactly one positive and are not trained on"
    ) in caplog.text
    # 24 groups, 4 per batch: 6 steps an epoch
    assert result.steps == 12 * 6
    assert result.train_loss[-1] < 0.1 * result.train_loss[0], result.train_loss

    run = load_trained(result.run_dir, "last")
    assert run.model.heads["qnli"].out.weight.shape == (1, 32)  # one relevance score
    written = write_predictions(run, "dev", tmp_path / "pred")
    lines = written[0].read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 31
    predicted = dict(line.split("\t") for line in lines[1:])
    rows = [r.split("\t") for r in (QNLI_PAIRS / "QNLI" / "dev.tsv").read_text().splitlines()[1:]]
    by_question: dict[str, list[str]] = {}
    for index, question, _, _ in rows:
        by_question.setdefault(question, []).append(predicted[index])
    pairs = [v for v in by_question.values() if len(v) == 2]
    assert len(pairs) == 12
    # the two candidates of a question are ranked: exactly one is the answer
    assert all(sorted(v) == ["entailment", "not_entailment"] for v in pairs)
    # the run's dev accuracy is that of these predictions
    gold = {index: label for index, _, _, label in rows}
    accuracy = 100 * np.mean([predicted[i] == gold[i] for i in gold])
    last = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["dev"]["qnli"]["accuracy"] == pytest.approx(accuracy)


def test_a_head_that_cannot_rank_is_refused_with_its_key(tmp_path: Path) -> None:
    text = RANKING_RECIPE.replace("head: {name: ranking, dropout: 0.0}", "head: san")
    recipe = load_recipe(write(tmp_path / "r.yaml", text))
    with pytest.raises(KdnluError) as err:
        train(recipe, progress=False)
    assert str(err.value).startswith(
        "tasks.qnli.head: head 'san' cannot give the 1 output(s) task qnli needs with loss "
        "'ranking': "
    )
