"""Multiple choice with no code: the jsonl task reads a list of candidates and the answer's
index, groups each question's candidates by the question itself (not by equal texts), brings
its own loss settings, scores whole questions and predicts one candidate per question."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import write
from kdnlu.cli import main
from kdnlu.data import encode_examples
from kdnlu.errors import DataError, KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.registry import ENCODERS, TASKS
from kdnlu.task import Example
from kdnlu.trainer import train
from kdnlu_tasks.generic import JsonlTaskConfig

QUESTIONS = [
    {"id": "a", "q": "Which is a fruit?", "options": ["apple", "chair", "cloud"], "answer": 0},
    {"id": "b", "q": "Which is a fruit?", "options": ["stone", "pear", "river"], "answer": 1},
    {"id": "c", "q": "Which can fly?", "options": ["rock", "table", "bird"], "answer": 2},
    {"id": "d", "q": "Which can swim?", "options": ["fish", "brick", "lamp"], "answer": 0},
]

RECIPE = """\
name: choices
encoder: {name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}
tasks:
  quiz:
    name: jsonl
    data: quiz
    id: id
    text_a: q
    candidates: options
    choices: 3
    label: answer
    max_length: 32
train: {lr: 1.0e-3, batch_size: 2, max_steps: 4, eval_every: 2, device: cpu}
"""


def jsonl(path: Path, rows: list) -> Path:
    return write(path, "\n".join(json.dumps(r) for r in rows) + "\n")


def test_candidates_become_one_group_per_question(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "train.jsonl", QUESTIONS[:2])
    config = JsonlTaskConfig(
        train=str(path), id="id", text_a="q", candidates="options", choices=3, label="answer"
    )
    task = TASKS.get("jsonl").build(config)
    rows = task.read("train")
    assert rows[:3] == [
        Example("a/0", "Which is a fruit?", "apple", 1, group="a", candidate=0),
        Example("a/1", "Which is a fruit?", "chair", 0, group="a", candidate=1),
        Example("a/2", "Which is a fruit?", "cloud", 0, group="a", candidate=2),
    ]
    assert task.label_names == ("wrong", "right") and task.metrics == ("group_accuracy",)
    assert task.default_loss == {"name": "multiple_choice", "group_size": 3, "positive_label": 1}
    tokenizer = ENCODERS.get("tiny").build().tokenizer
    # the same question text twice is still two questions
    assert encode_examples("quiz", tokenizer, rows, 32).group_ids().tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            {"id": "x", "q": "?", "options": ["a", "b"], "answer": 0},
            "field 'options' has 2 candidates; choices is 3",
        ),
        (
            {"id": "x", "q": "?", "options": ["a", 1, "c"], "answer": 0},
            'field \'options\' is not a list of strings (got ["a", 1, "c"])',
        ),
        (
            {"id": "x", "q": "?", "options": ["a", "b", "c"], "answer": 3},
            "field 'answer' (the answer) must be the index of the right candidate, 0 to 2; got 3",
        ),
        (
            {"id": "x", "q": "?", "options": ["a", "b", "c"]},
            "field 'answer' (the answer) is missing",
        ),
    ],
)
def test_unreadable_questions_name_file_line_and_field(tmp_path: Path, row, reason: str) -> None:
    path = jsonl(tmp_path / "dev.jsonl", [QUESTIONS[0], row])
    config = JsonlTaskConfig(
        dev=str(path), id="id", text_a="q", candidates="options", choices=3, label="answer"
    )
    with pytest.raises(DataError) as err:
        TASKS.get("jsonl").build(config).read("dev")
    assert str(err.value).startswith(f"{path}:2: {reason}. Fix or remove this row")


def test_the_task_brings_its_loss_settings_and_the_recipe_may_override(tmp_path: Path) -> None:
    for split in ("train", "dev"):
        jsonl(tmp_path / "quiz" / f"{split}.jsonl", QUESTIONS)
    path = write(tmp_path / "r.yaml", RECIPE)
    spec = load_recipe(path).tasks["quiz"]
    assert (spec.loss.name, spec.loss.config.group_size, spec.loss.config.positive_label) == (
        "multiple_choice",
        3,
        1,
    )
    with pytest.raises(KdnluError, match="choices"):
        load_recipe(path, ["tasks.quiz.choices=1"])
    with pytest.raises(KdnluError, match="a multiple-choice task takes no labels"):
        load_recipe(path, ["tasks.quiz.labels=[x, y]"])


def test_multiple_choice_trains_scores_questions_and_predicts_one_candidate_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for split in ("train", "dev"):
        jsonl(tmp_path / "quiz" / f"{split}.jsonl", QUESTIONS)
    unanswered = [{k: v for k, v in q.items() if k != "answer"} for q in QUESTIONS[:2]]
    jsonl(tmp_path / "quiz" / "test.jsonl", unanswered)
    recipe = load_recipe(write(tmp_path / "r.yaml", RECIPE))
    assert main(["check", str(tmp_path / "r.yaml")]) == 0
    capsys.readouterr()
    result = train(recipe, progress=False)
    assert result.steps == 4 and list(result.metrics["quiz"]) == ["group_accuracy"]
    assert result.metrics["quiz"]["group_accuracy"] in (0.0, 25.0, 50.0, 75.0, 100.0)
    assert main(["predict", str(result.run_dir), "--quiet"]) == 0
    lines = (result.run_dir / "submission" / "quiz-test.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and [line.split("\t")[0] for line in lines[1:]] == [
        "a",
        "b",
    ]
    assert all(line.split("\t")[1] in ("0", "1", "2") for line in lines[1:])
    assert np.isfinite(result.best_score)


def test_teachers_scores_per_candidate_distil_over_each_question(tmp_path: Path) -> None:
    """A teacher's store holds one score per candidate; the student's soft loss is the
    cross-entropy of its softmax over each question's candidates against the teachers'."""
    import torch

    from kdnlu.data import Batch
    from kdnlu.distill import Distiller
    from kdnlu.store import LogitStore
    from kdnlu.teach import TeachOptions, teach

    for split in ("train", "dev"):
        jsonl(tmp_path / "quiz" / f"{split}.jsonl", QUESTIONS)
    teacher = train(load_recipe(write(tmp_path / "t.yaml", RECIPE)), progress=False).run_dir
    teach([teacher], tmp_path / "store", options=TeachOptions(splits=("train",)), progress=False)
    store = LogitStore.open(tmp_path / "store" / "quiz" / "train")
    assert (store.spec.rows, store.spec.classes) == (12, 1)  # 4 questions x 3 candidates

    text = RECIPE + f"distill: {{store: {tmp_path / 'store'}, alpha: 0.0, temperature: 2.0}}\n"
    student = load_recipe(write(tmp_path / "s.yaml", text))
    distiller = Distiller(student, {"quiz": store})
    rows = [3, 4, 5, 9, 10, 11]  # questions b and d, their candidates in order
    logits = torch.randn(6, 1, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1, 0, 0])
    batch = Batch("quiz", torch.tensor(rows), *(torch.zeros(6, 3, dtype=torch.long),) * 3, labels)
    from kdnlu.callbacks import TrainState

    hard = torch.tensor(0.0, dtype=torch.float64)
    value = distiller.on_loss(TrainState(run_dir=tmp_path, total_steps=4), batch, logits, hard)
    teacher_scores = torch.from_numpy(store.logits(rows)).double()[:, 0, 0].view(2, 3)
    target = torch.softmax(teacher_scores / 2.0, -1)
    expected = 4.0 * -(target * torch.log_softmax(logits.view(2, 3) / 2.0, -1)).sum(-1).mean()
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)

    result = train(student, progress=False)
    records = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite(records[-1]["train_scalars"]["distill/quiz/soft"])


def test_check_runs_a_first_step_on_whole_questions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for split in ("train", "dev"):
        jsonl(tmp_path / "quiz" / f"{split}.jsonl", QUESTIONS)
    path = write(tmp_path / "r.yaml", RECIPE)
    assert main(["check", str(path), "--set", "tasks.quiz.loss.group_size=4"]) == 2
    assert capsys.readouterr().err == (
        "error: task 'quiz': its ranking loss finds no group of 4 candidates (rows of one "
        "question, or sharing their first text) with exactly one labelled 1; there is nothing "
        "to rank\n"
    )
