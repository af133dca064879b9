"""Tasks set up entirely in a recipe, no code: ``tsv`` and ``jsonl`` files of any layout.

```yaml
tasks:
  reviews:
    name: tsv
    data: data/reviews          # reviews/{train,dev,test}.tsv, relative to the recipe
    text_a: review              # header column names, or 0-based numbers with header: false
    label: stars
    labels: ["1", "2", "3", "4", "5"]
```
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from kdnlu.config import FieldError, path_field
from kdnlu.errors import DataError
from kdnlu.metrics import metrics_for, unknown_metric_message
from kdnlu.registry import METRICS, TASKS
from kdnlu.task import BadRows, Example, Task, parse_label
from kdnlu.tsv import TsvLayout, read_tsv_examples, read_utf8

SPLITS = ("train", "dev", "test")
LABELLED_SPLITS = ("train", "dev")


@dataclass(frozen=True)
class GenericTaskConfig:
    """Files, label space and metrics of a task configured in the recipe (tsv and jsonl).

    Files: ``data`` is a folder with ``train``, ``dev`` and ``test`` files (``.tsv`` or
    ``.jsonl``); ``train``, ``dev`` and ``test`` name single files (and override ``data``).
    Labels: ``labels`` lists the class strings (their order is the class index order), or
    ``regression: true`` makes the label a number. ``metrics`` defaults to accuracy for
    classification and pearson, spearman for regression; the first is the main one.
    ``submission`` is the file name test predictions are written to.
    """

    data: str | None = path_field(None)
    train: str | None = path_field(None)
    dev: str | None = path_field(None)
    test: str | None = path_field(None)
    labels: tuple[int | str, ...] = ()
    regression: bool = False
    metrics: tuple[str, ...] = ()
    output_range: tuple[float, ...] | None = None
    submission: str | None = None

    def __post_init__(self) -> None:
        kind = "regression" if self.regression else "classification"
        target = "score" if self.regression else "class"
        for name in self.metrics:
            if name not in METRICS:
                raise FieldError("metrics", unknown_metric_message(name))
            if target not in METRICS.get(name).facts["targets"]:
                raise FieldError(
                    "metrics",
                    f"'{name}' does not fit a {kind} task; use {', '.join(metrics_for(target))}",
                )
        if self.regression and self.labels:
            raise FieldError(
                "labels", "a regression task has no class labels; remove labels or regression"
            )
        names = [str(label) for label in self.labels]
        for label in names:
            if names.count(label) > 1:
                raise FieldError("labels", f"label '{label}' is listed twice")
        if "f1" in self.metrics and self.labels and len(self.labels) != 2:
            raise FieldError(
                "metrics",
                "f1 is the F1 of the positive class (the second label) and needs exactly two "
                f"labels; this task has {len(self.labels)}",
            )
        if self.output_range is not None:
            if not self.regression:
                raise FieldError("output_range", "only a regression task clips its outputs")
            if len(self.output_range) != 2 or self.output_range[0] >= self.output_range[1]:
                raise FieldError(
                    "output_range", f"must be [low, high] with low < high, got {self.output_range}"
                )

    @property
    def label_names(self) -> tuple[str, ...] | None:
        """The label strings in class index order; None for regression."""
        return None if self.regression else tuple(str(label) for label in self.labels)


@dataclass(frozen=True)
class TsvTaskConfig(GenericTaskConfig):
    """A tsv task: which columns hold the texts, the label and (optionally) the example id.

    Columns are header names, or 0-based column numbers (the only choice with header: false).
    """

    header: bool = True
    text_a: int | str = "text"
    text_b: int | str | None = None
    label: int | str = "label"
    id: int | str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("text_a", "text_b", "label", "id"):
            column = getattr(self, key)
            if isinstance(column, int) and column < 0:
                raise FieldError(key, f"column numbers start at 0, got {column}")
            if isinstance(column, str) and not self.header:
                raise FieldError(
                    key,
                    f"'{column}' is a column name, but header is false; give the column's "
                    "0-based number",
                )


@dataclass(frozen=True)
class JsonlTaskConfig(GenericTaskConfig):
    """A jsonl task (one JSON object per line): which fields hold texts, label and id.

    A field is a top-level name or a dotted path into nested objects (``meta.id``).
    Multiple choice: ``candidates`` names the field holding each question's list of
    ``choices`` candidate texts, ``text_a`` the question and ``label`` the index of the right
    candidate; the task trains with the ``multiple_choice`` loss and predicts one candidate per
    question.
    """

    text_a: str = "text"
    text_b: str | None = None
    label: str = "label"
    id: str | None = None
    candidates: str | None = None
    choices: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.candidates is None:
            if self.choices is not None:
                raise FieldError("choices", "only a multiple-choice task (candidates) has choices")
            return
        for key in ("labels", "text_b"):
            if getattr(self, key):
                raise FieldError(
                    key,
                    f"a multiple-choice task takes no {key}: the candidates are the second "
                    "texts and the label is the index of the right one",
                )
        if self.regression:
            raise FieldError("regression", "a multiple-choice task picks a candidate")
        if self.choices is None or self.choices < 2:
            raise FieldError(
                "choices",
                f"give the number of candidates per question (2 or more), got {self.choices}",
            )

    @property
    def label_names(self) -> tuple[str, ...] | None:
        """Per candidate: wrong (0) or right (1) for multiple choice; else the configured ones."""
        return MULTIPLE_CHOICE_LABELS if self.candidates is not None else super().label_names


MULTIPLE_CHOICE_LABELS = ("wrong", "right")


def split_files(config: GenericTaskConfig, suffix: str, task: str) -> dict[str, Path]:
    """Split -> file: the ``data`` folder's ``<split><suffix>`` files, then explicit paths."""
    files: dict[str, Path] = {}
    if config.data is not None:
        files = {split: Path(config.data) / f"{split}{suffix}" for split in SPLITS}
    for split in SPLITS:
        path = getattr(config, split)
        if path is not None:
            files[split] = Path(path)
    if not files:
        raise DataError(
            f"task '{task}' has no files: set data (a folder with train{suffix}, dev{suffix} "
            f"and test{suffix}) or train, dev and test (one file each)"
        )
    return files


def build_generic_task(
    name: str,
    config: GenericTaskConfig,
    suffix: str,
    reader: Callable[..., list[Example]],
    description: str,
) -> Task:
    """The ``Task`` of a tsv or jsonl config; ``reader(config, label_names, name, path, split)``."""
    if not config.regression and not config.label_names:
        raise DataError(
            f"task '{name}' needs its label space: labels: [...] (the class strings, in class "
            "index order) or regression: true"
        )
    files = split_files(config, suffix, name)
    regression = config.regression
    metrics = config.metrics or (("pearson", "spearman") if regression else ("accuracy",))
    output_range = config.output_range
    return Task(
        name=name,
        files=files,
        reader=partial(reader, config, config.label_names, name),
        label_names=config.label_names,
        metrics=metrics,
        default_head="regression" if regression else "classification",
        default_loss="mse" if regression else "cross_entropy",
        eval_splits=("dev",) if "dev" in files else (),
        test_splits=("test",) if "test" in files else (),
        submission={"test": config.submission} if config.submission else {},
        output_range=(output_range[0], output_range[1]) if output_range else None,
        description=description,
    )


def read_tsv_task_file(
    config: TsvTaskConfig,
    label_names: tuple[str, ...] | None,
    task: str,
    path: Path,
    split: str,
    bad_rows: BadRows | None = None,
) -> list[Example]:
    """Read one file of a tsv task; train and dev files must have the label column."""
    layout = TsvLayout(
        text_a=config.text_a,
        text_b=config.text_b,
        label=config.label,
        uid=config.id,
        header=config.header,
    )
    labelled = split in LABELLED_SPLITS
    return read_tsv_examples(
        path, layout, label_names, task, labelled, bad_rows, config.output_range
    )


MISSING = object()


def field_value(row: dict[str, Any], key: str) -> Any:
    """The value at ``key``: a top-level field, or a dotted path into nested objects
    (``meta.id``); ``MISSING`` when absent. A field whose own name has a dot wins."""
    if key in row:
        return row[key]
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def _text_field(row: dict[str, Any], key: str) -> str:
    value = field_value(row, key)
    if value is MISSING:
        raise ValueError(f"field '{key}' is missing")
    if not isinstance(value, str):
        raise ValueError(f"field '{key}' is not a string (got {json.dumps(value)})")
    return value


def _id_field(row: dict[str, Any], key: str) -> str:
    value = field_value(row, key)
    if value is MISSING:
        raise ValueError(f"field '{key}' (the id) is missing")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(
            f"field '{key}' (the id) is not a string or a number (got {json.dumps(value)}); "
            "name the nested field with a dotted path, e.g. meta.id"
        )
    return str(value)


def _json_object(line: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, found {type(row).__name__}")
    return row


def _candidates(config: JsonlTaskConfig, row: dict[str, Any], number: int, labelled: bool):
    """One question's rows: a candidate each, labelled 1 for the right one and 0 otherwise."""
    key, choices = str(config.candidates), int(config.choices or 0)
    texts = field_value(row, key)
    if texts is MISSING:
        raise ValueError(f"field '{key}' (the candidates) is missing")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"field '{key}' is not a list of strings (got {json.dumps(texts)})")
    if len(texts) != choices:
        raise ValueError(f"field '{key}' has {len(texts)} candidates; choices is {choices}")
    answer = field_value(row, config.label)
    if answer is MISSING or answer is None:
        if labelled:
            state = "null" if answer is None else "missing"
            raise ValueError(f"field '{config.label}' (the answer) is {state}")
        answer = None
    elif isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < choices:
        raise ValueError(
            f"field '{config.label}' (the answer) must be the index of the right candidate, "
            f"0 to {choices - 1}; got {json.dumps(answer)}"
        )
    question = _text_field(row, config.text_a)
    uid = str(number) if config.id is None else _id_field(row, config.id)
    return [
        Example(
            uid=f"{uid}/{i}",
            text_a=question,
            text_b=text,
            label=None if answer is None else int(i == answer),
            group=uid,
            candidate=i,
        )
        for i, text in enumerate(texts)
    ]


def _jsonl_examples(
    config: JsonlTaskConfig,
    label_names: tuple[str, ...] | None,
    task: str,
    line: str,
    number: int,
    labelled: bool,
) -> list[Example]:
    """One JSON line as its Examples (one, or a question's candidates); ``ValueError`` says
    why the row cannot be read."""
    row = _json_object(line)
    if config.candidates is not None:
        return _candidates(config, row, number, labelled)
    return [_jsonl_example(config, label_names, task, row, number, labelled)]


def _jsonl_example(
    config: JsonlTaskConfig,
    label_names: tuple[str, ...] | None,
    task: str,
    row: dict[str, Any],
    number: int,
    labelled: bool,
) -> Example:
    """One JSON object as an Example; ``ValueError`` says why the row cannot be read."""
    label = None
    value = field_value(row, config.label)
    if value is not MISSING and value is not None:
        if isinstance(value, (dict, list)):
            raise ValueError(
                f"field '{config.label}' (the label) is not a string or a number "
                f"(got {json.dumps(value)})"
            )
        label = parse_label(value, label_names, task, config.output_range)
    elif labelled:
        state = "null" if value is None else "missing"
        raise ValueError(f"field '{config.label}' (the label) is {state}")
    return Example(
        uid=str(number) if config.id is None else _id_field(row, config.id),
        text_a=_text_field(row, config.text_a),
        text_b=_text_field(row, config.text_b) if config.text_b is not None else None,
        label=label,
    )


def read_jsonl_task_file(
    config: JsonlTaskConfig,
    label_names: tuple[str, ...] | None,
    task: str,
    path: Path,
    split: str,
    bad_rows: BadRows | None = None,
) -> list[Example]:
    """Read one JSON-lines file; train and dev rows must have a label. Blank lines are skipped."""
    bad_rows = bad_rows if bad_rows is not None else BadRows(path)
    labelled = split in LABELLED_SPLITS
    examples = []
    for number, line in enumerate(read_utf8(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            examples += _jsonl_examples(config, label_names, task, line, number, labelled)
        except ValueError as exc:
            bad_rows.report(number, str(exc))
    return examples


@TASKS.register("tsv", config=TsvTaskConfig)
def tsv_task(config: TsvTaskConfig, data_root: str | None = None) -> Task:
    """Any tab-separated files: columns, labels and metrics set in the recipe."""
    return build_generic_task("tsv", config, ".tsv", read_tsv_task_file, "tab-separated task")


@TASKS.register("jsonl", config=JsonlTaskConfig)
def jsonl_task(config: JsonlTaskConfig, data_root: str | None = None) -> Task:
    """Any JSON-lines files: fields, labels and metrics set in the recipe."""
    task = build_generic_task("jsonl", config, ".jsonl", read_jsonl_task_file, "JSON-lines task")
    if config.candidates is None:
        return task
    loss = {"name": "multiple_choice", "group_size": config.choices, "positive_label": 1}
    return dataclasses.replace(
        task, metrics=config.metrics or ("group_accuracy",), default_loss=loss
    )
