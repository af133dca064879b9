"""docs/new_task.md runs as written: its plugin code, data samples and recipes."""

from pathlib import Path

import pytest

from conftest import REPO, write
from kdnlu.errors import DataError, KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.registry import TASKS
from kdnlu.task import Example

TUTORIAL = REPO / "docs" / "new_task.md"


def blocks(language: str) -> list[str]:
    """The fenced code blocks of one language in the tutorial, in order."""
    text = TUTORIAL.read_text(encoding="utf-8")
    return [block.split("```", 1)[0] for block in text.split(f"```{language}\n")[1:]]


def test_the_tutorial_blocks_this_test_runs() -> None:
    assert [len(blocks(language)) for language in ("python", "yaml", "text")] == [1, 3, 3]


def test_no_code_route_recipe_reads_the_sample(tmp_path: Path) -> None:
    recipe_text, _, _ = blocks("yaml")
    sample, _, _ = blocks("text")
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
    _, task_yaml, _ = blocks("yaml")
    _, sample, _ = blocks("text")
    for split in ("train", "dev"):
        write(tmp_path / "data" / "ner" / f"{split}.txt", sample)
    write(tmp_path / "data" / "ner" / "test.txt", "Anna\nlives\n")
    recipe_text = "encoder: {name: tiny}\n" + task_yaml
    recipe = load_recipe(write(tmp_path / "ner.yaml", recipe_text))
    spec = recipe.tasks["ner"]
    assert (spec.name, spec.head.name, spec.loss.name) == ("conll", "token", "token_cross_entropy")
    task = recipe.build_tasks()["ner"]
    (row,) = task.read("train")
    assert row.words == ("Anna", "Kowalczyk", "lives", "in", "Warsaw")
    assert row.tags == (1, 2, 0, 0, 3)
    assert task.metrics == ("span_f1", "token_accuracy")


def test_plugin_route_code_and_recipe_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (code,) = blocks("python")
    _, _, recipe_text = blocks("yaml")
    _, _, sample = blocks("text")
    write(tmp_path / "sentiment_task.py", code)
    data = tmp_path / "data" / "sentiment"
    for split in ("train", "dev"):
        write(data / f"{split}.txt", sample)
    write(data / "test.txt", "an unlabelled review line\n")
    path = write(tmp_path / "recipe.yaml", recipe_text)
    try:
        recipe = load_recipe(path)
        spec = recipe.tasks["sentiment"]
        assert (spec.config.min_words, spec.options.max_length) == (2, 64)
        task = recipe.build_tasks()["sentiment"]
        assert (task.label_names, task.metrics) == (("neg", "pos"), ("accuracy", "f1"))
        assert dict(task.submission) == {"test": "Sentiment.tsv"}
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

        with pytest.raises(KdnluError) as err:
            load_recipe(path, ["tasks.sentiment.min_words=0"])
        assert str(err.value) == (
            "--set tasks.sentiment.min_words=0: tasks.sentiment.min_words: must be at least 1, "
            "got 0"
        )
    finally:
        TASKS.unregister("sentiment")
