"""docs/new_task.md runs as written: its plugin code, data samples and recipes, each example
trained in a multi-task recipe beside real GLUE rows."""

import importlib
import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from conftest import GLUE_SAMPLE, REPO, write
from kdnlu.cli import dry_build, main
from kdnlu.errors import DataError
from kdnlu.recipe import load_recipe
from kdnlu.registry import METRICS, TASKS
from kdnlu.task import Example, Task
from kdnlu.trainer import train

TUTORIAL = REPO / "docs" / "new_task.md"
TINY_ENCODER = "encoder: {name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}"


def blocks(language: str) -> list[str]:
    """The fenced code blocks of one language in the tutorial, in order."""
    text = TUTORIAL.read_text(encoding="utf-8")
    return [block.split("```", 1)[0] for block in text.split(f"```{language}\n")[1:]]


def block(language: str, containing: str) -> str:
    """The one block of ``language`` that contains ``containing``."""
    (found,) = [b for b in blocks(language) if containing in b]
    return found


def test_every_block_is_one_this_test_runs() -> None:
    assert [len(blocks(language)) for language in ("python", "yaml", "text")] == [2, 6, 6]


@pytest.mark.parametrize("code", blocks("python"), ids=["sentiment", "readability"])
def test_each_plugin_is_one_file_under_60_lines(code: str) -> None:
    assert len(code.splitlines()) < 60


def test_no_code_route_recipe_reads_the_sample(tmp_path: Path) -> None:
    recipe_text = block("yaml", "name: reviews")
    sample = block("text", "review_id\treview\tstars")
    for split in ("train", "dev", "test"):
        write(tmp_path / "data" / "reviews" / f"{split}.tsv", sample)
    recipe = load_recipe(write(tmp_path / "reviews.yaml", recipe_text))
    spec = recipe.tasks["reviews"]
    assert (spec.name, spec.options.on_bad_row) == ("tsv", "skip")
    assert (spec.head.name, spec.loss.name) == ("classification", "cross_entropy")
    task = recipe.build_tasks()["reviews"]
    assert task.read("train", on_bad_row=spec.options.on_bad_row) == [
        Example("r1", "Arrived quickly and works exactly as described.", None, 4),
        Example("r2", "The lid cracked on the second day.", None, 0),
        Example("r3", "Does the job, although the cable is short.", None, 3),
    ]
    assert (task.label_names, task.metrics) == (("1", "2", "3", "4", "5"), ("accuracy",))
    assert dict(task.submission) == {"test": "Reviews.tsv"}


def test_token_labelling_recipe_reads_the_sample(tmp_path: Path) -> None:
    task_yaml = block("yaml", "name: conll")
    sample = block("text", "Kowalczyk")
    for split in ("train", "dev"):
        write(tmp_path / "data" / "ner" / f"{split}.txt", sample)
    write(tmp_path / "data" / "ner" / "test.txt", "Anna\nlives\n")
    recipe = load_recipe(write(tmp_path / "ner.yaml", "encoder: {name: tiny}\n" + task_yaml))
    spec = recipe.tasks["ner"]
    assert (spec.name, spec.head.name, spec.loss.name) == ("conll", "token", "token_cross_entropy")
    task = recipe.build_tasks()["ner"]
    (row,) = task.read("train")
    assert row.words == ("Anna", "Kowalczyk", "lives", "in", "Warsaw")
    assert row.tags == (1, 2, 0, 0, 3)
    assert task.metrics == ("span_f1", "token_accuracy")


def multi_task(tmp_path: Path, recipe_text: str, key: str, *overrides: str):
    """The tutorial's recipe with a tiny encoder, trained beside RTE's real GLUE rows."""
    text = recipe_text.replace("encoder: {name: hf, path: minilm}", TINY_ENCODER)
    if "encoder:" not in text:
        text = f"name: {key}\n{TINY_ENCODER}\n" + text
    sets = [
        f"data_root={GLUE_SAMPLE}",
        "tasks.rte.train_rows=16",
        "tasks.rte.eval_rows=8",
        "tasks.rte.max_length=48",
        "train.max_steps=4",
        "train.eval_every=1",
        "train.batch_size=4",
        "train.device=cpu",
        *overrides,
    ]
    recipe = load_recipe(write(tmp_path / "recipe.yaml", text), sets)
    assert list(recipe.tasks) == [key, "rte"]
    assert dry_build(recipe).startswith(f"recipe '{key}' is valid")
    return train(recipe, progress=False)


def predicted(run_dir: Path, key: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """``kdnlu predict --tasks KEY`` on the test split: the lines of its one file."""
    out = run_dir / "only"
    assert main(["predict", str(run_dir), "--tasks", key, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    (file,) = [p for p in out.iterdir() if p.suffix == ".tsv"]
    return [file.name, *file.read_text().splitlines()]


def test_nested_json_no_code_recipe_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = block("text", '"meta": {"id": "q1"}')
    for split in ("train", "dev", "test"):
        write(tmp_path / "data" / "questions" / f"{split}.jsonl", sample)
    result = multi_task(tmp_path, block("yaml", "label: gold.topic"), "questions")
    assert result.steps == 4 and set(result.metrics) == {"questions", "rte"}
    lines = predicted(result.run_dir, "questions", capsys)
    assert lines[:2] == ["questions-test.tsv", "index\tprediction"]
    assert [line.split("\t")[0] for line in lines[2:]] == ["q1", "q2", "q3"]


def test_multiple_choice_no_code_recipe_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = block("text", '"options": ["a chair"')
    for split in ("train", "dev"):
        write(tmp_path / "data" / "quiz" / f"{split}.jsonl", sample)
    unanswered = "".join(
        json.dumps({k: v for k, v in json.loads(line).items() if k != "answer"}) + "\n"
        for line in sample.splitlines()
    )
    write(tmp_path / "data" / "quiz" / "test.jsonl", unanswered)
    recipe_text = block("yaml", "candidates: options")
    spec = load_recipe(write(tmp_path / "quiz.yaml", f"{TINY_ENCODER}\n{recipe_text}"))
    loss = spec.tasks["quiz"].loss
    assert (loss.name, loss.config.group_size) == ("multiple_choice", 3)
    result = multi_task(tmp_path, recipe_text, "quiz", "train.batch_size=3")
    assert list(result.metrics["quiz"]) == ["group_accuracy"]
    lines = predicted(result.run_dir, "quiz", capsys)
    assert lines[:2] == ["quiz-test.tsv", "index\tprediction"]
    assert [line.split("\t")[0] for line in lines[2:]] == ["q1", "q2", "q3"]
    assert {line.split("\t")[1] for line in lines[2:]} <= {"0", "1", "2"}


@pytest.fixture
def plugin_registries():
    yield
    for name in ("sentiment", "readability"):
        TASKS.unregister(name)
    METRICS.unregister("rmse")


def test_sentiment_plugin_reads_checks_and_trains(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    plugin_registries: None,
) -> None:
    write(tmp_path / "sentiment_task.py", block("python", '"sentiment"'))
    sample = block("text", "__label__pos a warm")
    data = tmp_path / "data" / "sentiment"
    for split in ("train", "dev"):
        write(data / f"{split}.txt", sample)
    write(data / "test.txt", "an unlabelled review line\n")
    recipe_text = block("yaml", "imports: [sentiment_task.py]")
    recipe = load_recipe(write(tmp_path / "recipe.yaml", recipe_text))
    spec = recipe.tasks["sentiment"]
    assert (spec.config.min_words, spec.options.max_length) == (2, 64)
    task = recipe.build_tasks()["sentiment"]
    assert (task.label_names, task.metrics) == (("neg", "pos"), ("accuracy", "f1"))
    assert (task.default_head, task.default_loss) == ("classification", "cross_entropy")
    assert task.read("dev") == [
        Example("1", "a warm , funny and quietly moving film .", None, 1),
        Example("2", "the plot goes nowhere and takes two hours to get there .", None, 0),
        Example("3", "the best thing the director has made in years .", None, 1),
    ]
    assert task.read("test") == [Example("1", "an unlabelled review line", None, None)]

    write(data / "train.txt", sample + "__label__meh so-so\nno label here\n__label__pos ok\n")
    with pytest.raises(DataError) as err:
        task.read("train")
    assert str(err.value) == (
        f"{data / 'train.txt'}:4: unknown label 'meh' for task sentiment; expected one of "
        "neg, pos. Fix or remove this row (or set on_bad_row: skip for the task to skip "
        "such rows)."
    )
    with caplog.at_level("WARNING", logger="kdnlu.data"):
        assert len(task.read("train", on_bad_row="skip")) == 3
    assert [r.getMessage() for r in caplog.records] == [
        f"skipped 3 bad rows in {data / 'train.txt'} (first at line 4: unknown label 'meh' "
        "for task sentiment; expected one of neg, pos)"
    ]

    write(data / "train.txt", sample)
    assert main(["list", "tasks", "--recipe", str(tmp_path / "recipe.yaml")]) == 0
    listed = capsys.readouterr().out
    assert "  sentiment  -  Movie-review sentiment (neg/pos) from fastText-format files." in listed
    assert "      min_words: int = 1" in listed
    result = multi_task(tmp_path, recipe_text, "sentiment", "tasks.sentiment.data=data/sentiment")
    lines = predicted(result.run_dir, "sentiment", capsys)
    assert lines[:2] == ["Sentiment.tsv", "index\tprediction"] and len(lines) == 3


def test_error_metric_plugin_keeps_the_lowest_error_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], plugin_registries: None
) -> None:
    write(tmp_path / "readability_task.py", block("python", '"readability"'))
    sample = block("text", "text,score")
    data = tmp_path / "data" / "readability"
    for split in ("train", "dev", "test"):
        write(data / f"{split}.csv", sample)
    recipe_text = block("yaml", "imports: [readability_task.py]")
    recipe = load_recipe(write(tmp_path / "recipe.yaml", recipe_text))
    assert recipe.train.best_metric == "readability.rmse"
    spec = recipe.tasks["readability"]
    assert (spec.head.name, spec.loss.name) == ("regression", "mse")
    task = recipe.build_tasks()["readability"]
    assert task.read("train")[0] == Example("1", "The cat sat on the mat.", None, 1.2)
    assert METRICS.get("rmse").facts["greater_is_better"] is False

    result = multi_task(
        tmp_path, recipe_text, "readability", "tasks.readability.data=data/readability"
    )
    records = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    errors = [r["dev"]["readability"]["rmse"] for r in records]
    best = json.loads((result.run_dir / "checkpoints" / "best" / "trainer_state.json").read_text())
    assert best["score"] == min(errors) == result.best_score
    assert best["step"] == records[errors.index(min(errors))]["step"]
    assert all(r["score"] == r["dev"]["readability"]["rmse"] for r in records)
    lines = predicted(result.run_dir, "readability", capsys)
    assert lines[0] == "Readability.tsv"
    assert all(1.0 <= float(line.split("\t")[1]) <= 5.0 for line in lines[2:])


def reference_rows(heading: str) -> list[list[str]]:
    """The table rows under one ``### heading`` of the tutorial, as cells."""
    text = TUTORIAL.read_text(encoding="utf-8").split(f"### {heading}\n", 1)[1]
    table = text.split("\n### ", 1)[0]
    lines = table.split("| --- |", 1)[1].splitlines()[1:]  # below the header row
    rows = [line for line in lines if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_reference_lists_every_task_field() -> None:
    names = [row[0].strip("`") for row in reference_rows("`Task` fields")]
    assert names == [f.name for f in fields(Task)]


def test_every_documented_helper_imports_and_says_what_it_is() -> None:
    rows = reference_rows("Helpers a plugin may import")
    assert len(rows) >= 10
    for module_cell, names_cell, _ in rows:
        module = importlib.import_module(module_cell.strip("`"))
        for name in re.findall(r"`(\w+)`", names_cell):
            value = getattr(module, name)
            assert (value.__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"
