"""The recipe-configured tsv and jsonl tasks, on small files written for each test."""

import dataclasses
import json
from pathlib import Path

import pytest

from conftest import write
from kdnlu.errors import DataError, KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.registry import TASKS
from kdnlu.task import Example
from kdnlu_tasks.generic import JsonlTaskConfig, TsvTaskConfig

FIX = "Fix or remove this row (or set on_bad_row: skip for the task to skip such rows)."
ENCODER = "encoder: {name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}\n"


def tsv_folder(root: Path) -> Path:
    folder = root / "pairs"
    write(folder / "train.tsv", "id\tfirst\tsecond\tgold\nt1\ta b\tc d\tyes\nt2\te\tf\tno\n")
    write(folder / "dev.tsv", "id\tfirst\tsecond\tgold\nd1\tg\th\tno\n")
    write(folder / "test.tsv", "id\tfirst\tsecond\nx1\ti\tj\nx2\tk\tl\n")
    return folder


def pairs_config(folder: Path, **changes) -> TsvTaskConfig:
    fields = dict(
        data=str(folder),
        text_a="first",
        text_b="second",
        label="gold",
        id="id",
        labels=("no", "yes"),
    )
    return TsvTaskConfig(**{**fields, **changes})


def test_tsv_with_header_reads_every_split(tmp_path: Path) -> None:
    task = TASKS.get("tsv").build(pairs_config(tsv_folder(tmp_path)))
    assert task.read("train") == [Example("t1", "a b", "c d", 1), Example("t2", "e", "f", 0)]
    assert task.read("dev") == [Example("d1", "g", "h", 0)]
    assert task.read("test") == [Example("x1", "i", "j", None), Example("x2", "k", "l", None)]
    assert (task.label_names, task.metrics, task.num_outputs) == (("no", "yes"), ("accuracy",), 2)
    assert (task.default_head, task.default_loss) == ("classification", "cross_entropy")
    assert (task.eval_splits, task.test_splits, dict(task.submission)) == (("dev",), ("test",), {})


def test_tsv_without_header_by_column_number(tmp_path: Path) -> None:
    train = write(tmp_path / "train.txt", "good movie\t1\nbad movie\t0\n")
    config = TsvTaskConfig(
        train=str(train), header=False, text_a=0, label=1, labels=(0, 1), submission="Movies.tsv"
    )
    task = TASKS.get("tsv").build(config)
    assert dict(task.files) == {"train": train}
    assert (task.eval_splits, task.test_splits) == ((), ())
    assert task.read("train") == [
        Example("1", "good movie", None, 1),
        Example("2", "bad movie", None, 0),
    ]
    assert dict(task.submission) == {"test": "Movies.tsv"}


def test_tsv_regression_defaults(tmp_path: Path) -> None:
    train = write(tmp_path / "train.tsv", "text\tlabel\nfine\t3.5\nawful\t0\n")
    config = TsvTaskConfig(train=str(train), regression=True, output_range=(0.0, 5.0))
    task = TASKS.get("tsv").build(config)
    assert task.read("train") == [Example("2", "fine", None, 3.5), Example("3", "awful", None, 0.0)]
    assert (task.label_names, task.num_outputs, task.metrics) == (None, 1, ("pearson", "spearman"))
    assert (task.default_head, task.default_loss, task.output_range) == (
        "regression",
        "mse",
        (0, 5),
    )


def test_explicit_file_overrides_the_folder(tmp_path: Path) -> None:
    folder = tsv_folder(tmp_path)
    other = write(tmp_path / "other_dev.tsv", "id\tfirst\tsecond\tgold\nz\tm\tn\tyes\n")
    task = TASKS.get("tsv").build(pairs_config(folder, dev=str(other)))
    assert dict(task.files) == {
        "train": folder / "train.tsv",
        "dev": other,
        "test": folder / "test.tsv",
    }
    assert task.read("dev") == [Example("z", "m", "n", 1)]


def test_tsv_errors_name_file_and_line(tmp_path: Path) -> None:
    folder = tsv_folder(tmp_path)
    write(folder / "dev.tsv", "id\tfirst\tsecond\tgold\nd1\tg\th\tmaybe\n")
    task = TASKS.get("tsv").build(pairs_config(folder))
    with pytest.raises(DataError) as err:
        task.read("dev")
    assert str(err.value) == (
        f"{folder / 'dev.tsv'}:2: unknown label 'maybe' for task tsv; expected one of no, "
        f"yes. {FIX}"
    )
    write(folder / "dev.tsv", "id\tfirst\tgold\nd1\tg\tno\n")
    with pytest.raises(DataError) as err:
        task.read("dev")
    assert str(err.value) == (
        f"{folder / 'dev.tsv'}:1: column 'second' not found in the header (id, first, gold)"
    )


def test_tsv_column_number_out_of_range(tmp_path: Path) -> None:
    train = write(tmp_path / "train.tsv", "a\t1\n")
    task = TASKS.get("tsv").build(
        TsvTaskConfig(train=str(train), header=False, text_a=0, text_b=2, label=1, labels=("1",))
    )
    with pytest.raises(DataError) as err:
        task.read("train")
    assert str(err.value) == (
        f"{train}:1: column 2 is out of range: rows have 2 columns, numbered 0 to 1"
    )


def jsonl(path: Path, rows: list) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    return write(path, "\n".join(lines) + "\n")


def test_jsonl_reads_fields_and_json_number_labels(tmp_path: Path) -> None:
    folder = tmp_path / "nli"
    jsonl(
        folder / "train.jsonl",
        [{"p": "a", "h": "b", "y": 1, "uid": 7}, {"p": "c", "h": "d", "y": 0}],
    )
    jsonl(folder / "test.jsonl", [{"p": "e", "h": "f"}])
    config = JsonlTaskConfig(data=str(folder), text_a="p", text_b="h", label="y", labels=("0", "1"))
    task = TASKS.get("jsonl").build(config)
    assert task.read("train") == [Example("1", "a", "b", 1), Example("2", "c", "d", 0)]
    assert task.read("test") == [Example("1", "e", "f", None)]
    with pytest.raises(DataError) as err:
        task.read("dev")
    assert str(err.value) == f"task 'jsonl': data file {folder / 'dev.jsonl'} does not exist"


def test_jsonl_bad_rows_error_and_skip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = jsonl(
        tmp_path / "train.jsonl",
        [
            {"text": "ok", "label": "pos"},
            "{not json",
            ["a list"],
            {"label": "pos"},
            {"text": 3, "label": "pos"},
            {"text": "x", "label": "meh"},
            {"text": "x", "label": None},
            {"text": "fine", "label": "neg"},
        ],
    )
    task = TASKS.get("jsonl").build(JsonlTaskConfig(train=str(path), labels=("neg", "pos")))
    with pytest.raises(DataError) as err:
        task.read("train")
    assert str(err.value) == (
        f"{path}:2: not valid JSON (Expecting property name enclosed in double quotes at "
        f"column 2). {FIX}"
    )
    with caplog.at_level("WARNING", logger="kdnlu.data"):
        assert task.read("train", on_bad_row="skip") == [
            Example("1", "ok", None, 1),
            Example("8", "fine", None, 0),
        ]
    assert [r.getMessage() for r in caplog.records] == [
        f"skipped 6 bad rows in {path} (first at line 2: not valid JSON (Expecting property "
        "name enclosed in double quotes at column 2))"
    ]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (["a list"], "expected a JSON object, found list"),
        ({"label": "pos"}, "field 'text' is missing"),
        ({"text": 3, "label": "pos"}, "field 'text' is not a string (got 3)"),
        ({"text": "x"}, "field 'label' (the label) is missing"),
        ({"text": "x", "label": None}, "field 'label' (the label) is null"),
        (
            {"text": "x", "label": True},
            "unknown label 'true' for task jsonl; expected one of neg, pos",
        ),
    ],
)
def test_jsonl_row_errors(tmp_path: Path, row, reason: str) -> None:
    path = jsonl(tmp_path / "dev.jsonl", [{"text": "ok", "label": "neg"}, row])
    task = TASKS.get("jsonl").build(JsonlTaskConfig(dev=str(path), labels=("neg", "pos")))
    with pytest.raises(DataError) as err:
        task.read("dev")
    assert str(err.value) == f"{path}:2: {reason}. {FIX}"


def test_no_label_space_or_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        TASKS.get("jsonl").build(JsonlTaskConfig(train="x.jsonl"))
    assert str(err.value) == (
        "task 'jsonl' needs its label space: labels: [...] (the class strings, in class index "
        "order) or regression: true"
    )
    with pytest.raises(DataError) as err:
        TASKS.get("tsv").build(TsvTaskConfig(labels=("a", "b")))
    assert str(err.value) == (
        "task 'tsv' has no files: set data (a folder with train.tsv, dev.tsv and test.tsv) or "
        "train, dev and test (one file each)"
    )


def recipe(tmp_path: Path, task_yaml: str) -> Path:
    return write(tmp_path / "r.yaml", ENCODER + "tasks:\n  pairs:\n" + task_yaml)


def test_from_a_recipe_with_relative_paths_and_skip(tmp_path: Path) -> None:
    tsv_folder(tmp_path)
    path = recipe(
        tmp_path,
        "    name: tsv\n    data: pairs\n    text_a: first\n    text_b: second\n"
        "    label: gold\n    id: id\n    labels: [no_, yes_]\n    on_bad_row: skip\n"
        "    metrics: [f1, accuracy]\n",
    )
    path.write_text(path.read_text().replace("no_", '"no"').replace("yes_", '"yes"'))
    loaded = load_recipe(path)
    spec = loaded.tasks["pairs"]
    assert spec.options.on_bad_row == "skip"
    assert spec.config.data == str(tmp_path / "pairs")
    task = loaded.build_tasks()["pairs"]
    assert task.metrics == ("f1", "accuracy")
    assert task.read("train", on_bad_row=spec.options.on_bad_row)[0] == Example(
        "t1", "a b", "c d", 1
    )
    assert spec.head.name == "classification" and spec.loss.name == "cross_entropy"


@pytest.mark.parametrize(
    ("task_yaml", "message"),
    [
        (
            "    name: tsv\n    data: pairs\n    labels: [a, b]\n    metrics: [accuracy, bleu]\n",
            "{path}:7: tasks.pairs.metrics: unknown metric 'bleu'; known metrics: accuracy, f1, "
            "group_accuracy, "
            "mae, mcc, pearson, span_f1, spearman, token_accuracy (`kdnlu list metrics` shows "
            "every metric)",
        ),
        (
            "    name: tsv\n    data: pairs\n    regression: true\n    metrics: [accuracy]\n",
            "{path}:7: tasks.pairs.metrics: 'accuracy' does not fit a regression task; use "
            "mae, pearson, spearman",
        ),
        (
            "    name: tsv\n    data: pairs\n    labels: [a, b, c]\n    metrics: [f1]\n",
            "{path}:7: tasks.pairs.metrics: f1 is the F1 of the positive class (the second label) "
            "and needs exactly two labels; this task has 3",
        ),
        (
            "    name: tsv\n    data: pairs\n    header: false\n    text_a: first\n"
            "    labels: [a]\n",
            "{path}:7: tasks.pairs.text_a: 'first' is a column name, but header is false; give "
            "the column's 0-based number",
        ),
        (
            "    name: jsonl\n    data: pairs\n    labels: [a, a]\n",
            "{path}:6: tasks.pairs.labels: label 'a' is listed twice",
        ),
        (
            "    name: jsonl\n    data: pairs\n",
            "{path}:3: tasks.pairs: task 'jsonl' needs its label space: labels: [...] (the class "
            "strings, in class index order) or regression: true",
        ),
        (
            "    name: tsv\n    data: pairs\n    labels: [a]\n    on_bad_row: ignore\n",
            "{path}:7: tasks.pairs.on_bad_row: expected one of 'error', 'skip', got 'ignore' "
            "(a string)",
        ),
    ],
)
def test_recipe_errors_name_the_key(tmp_path: Path, task_yaml: str, message: str) -> None:
    tsv_folder(tmp_path)
    path = recipe(tmp_path, task_yaml)
    with pytest.raises(KdnluError) as err:
        load_recipe(path)
    assert str(err.value) == message.format(path=path)


def test_jsonl_with_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path / "train.jsonl", '\ufeff{"text": "a", "label": "x"}\n')
    task = TASKS.get("jsonl").build(JsonlTaskConfig(train=str(path), labels=("x",)))
    assert task.read("train") == [Example("1", "a", None, 0)]


def test_jsonl_reads_nested_fields_by_dotted_path(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "train.jsonl",
        [
            {"meta": {"id": "q1", "gold": {"label": "pos"}}, "body": {"text": "fine"}},
            {"meta": {"id": 2, "gold": {"label": "neg"}}, "body": {"text": "bad"}, "x.y": "z"},
        ],
    )
    config = JsonlTaskConfig(
        train=str(path),
        text_a="body.text",
        label="meta.gold.label",
        id="meta.id",
        labels=("neg", "pos"),
    )
    task = TASKS.get("jsonl").build(config)
    assert task.read("train") == [Example("q1", "fine", None, 1), Example("2", "bad", None, 0)]
    literal = dataclasses.replace(config, id="x.y")
    with pytest.raises(DataError) as err:  # a field named with a dot is read as it is
        TASKS.get("jsonl").build(literal).read("train")
    assert str(err.value) == f"{path}:1: field 'x.y' (the id) is missing. {FIX}"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            {"text": "x", "label": "pos", "meta": {"id": 1}},
            "field 'meta' (the id) is not a string or a number (got {\"id\": 1}); name the "
            "nested field with a dotted path, e.g. meta.id",
        ),
        (
            {"text": {"en": "x"}, "label": "pos", "meta": 1},
            'field \'text\' is not a string (got {"en": "x"})',
        ),
        (
            {"text": "x", "label": ["pos"], "meta": 1},
            "field 'label' (the label) is not a string or a number (got [\"pos\"])",
        ),
    ],
)
def test_jsonl_non_scalar_id_text_or_label_is_an_error(tmp_path: Path, row, reason: str) -> None:
    path = jsonl(tmp_path / "dev.jsonl", [{"text": "ok", "label": "neg", "meta": "a"}, row])
    config = JsonlTaskConfig(dev=str(path), id="meta", labels=("neg", "pos"))
    with pytest.raises(DataError) as err:
        TASKS.get("jsonl").build(config).read("dev")
    assert str(err.value) == f"{path}:2: {reason}. {FIX}"
