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
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from kdnlu.config import FieldError, doc_field, path_field
from kdnlu.errors import DataError
from kdnlu.metrics import metrics_for, unknown_metric_message
from kdnlu.registry import METRICS, TASKS
from kdnlu.task import BadRows, Example, Task
from kdnlu.tsv import TsvLayout, read_tsv_examples
from kdnlu_tasks.jsonl_rows import LABELLED_SPLITS, read_jsonl_task_file

SPLITS = ("train", "dev", "test")
SPLIT_FILE_HELP = "one file of that split; it overrides the `data` folder's"
SUBMISSION_HELP = "file name of the test predictions"


@dataclass(frozen=True)
class GenericTaskConfig:
    """Files, label space and metrics of a task configured in the recipe (tsv and jsonl)."""

    data: str | None = path_field(
        None, help="folder with the `train`, `dev` and `test` files (`.tsv` or `.jsonl`)"
    )
    train: str | None = path_field(None, help=SPLIT_FILE_HELP)
    dev: str | None = path_field(None, help=SPLIT_FILE_HELP)
    test: str | None = path_field(None, help=SPLIT_FILE_HELP)
    labels: tuple[int | str, ...] = doc_field(
        (),
        "the label strings, in class index order; quote numbers",
        shown_default="required unless `regression`",
    )
    regression: bool = doc_field(
        False, "the label is a number; the head is `regression` and the loss `mse`"
    )
    metrics: tuple[str, ...] = doc_field(
        (),
        "registered metrics (`kdnlu list metrics`) that fit the labels; the first is the main "
        "one; `f1` needs exactly two labels",
        shown_default="`[accuracy]`, or `[pearson, spearman]`",
    )
    output_range: tuple[float, ...] | None = doc_field(
        None,
        "regression only: `[low, high]` that predictions are clipped to; a target outside it "
        "is a bad row (`FILE:LINE`)",
    )
    submission: str | None = doc_field(None, SUBMISSION_HELP, shown_default="`<task key>-test.tsv`")

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

    header: bool = doc_field(True, "whether the first line names the columns")
    text_a: int | str = doc_field("text", "column of the text")
    text_b: int | str | None = doc_field(None, "column of the second text of a pair")
    label: int | str = doc_field("label", "column of the label")
    id: int | str | None = doc_field(None, "column of the example id (null: the row number)")

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

    text_a: str = doc_field("text", "field of the text (multiple choice: the question)")
    text_b: str | None = doc_field(None, "field of the second text of a pair")
    label: str = doc_field(
        "label", "field of the label (multiple choice: the index of the right candidate)"
    )
    id: str | None = doc_field(None, "field of the example id (null: the line number)")
    candidates: str | None = doc_field(
        None, "multiple choice: the field holding each question's list of candidate texts"
    )
    choices: int | None = doc_field(None, "multiple choice: how many candidates each question has")

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


class SplitFileConfig(Protocol):
    """A task config naming its files: a ``data`` folder and/or one file per split."""

    @property
    def data(self) -> str | None: ...
    @property
    def train(self) -> str | None: ...
    @property
    def dev(self) -> str | None: ...
    @property
    def test(self) -> str | None: ...


def split_files(config: SplitFileConfig, suffix: str, task: str) -> dict[str, Path]:
    """Split -> file: the ``data`` folder's ``<split><suffix>`` files, then explicit paths
    (for every task whose files are set in the recipe: tsv, jsonl, conll)."""
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


def split_roles(files: dict[str, Path], submission: str | None) -> dict[str, Any]:
    """The ``Task`` arguments that follow from a task's split files: dev is evaluated, test is
    predicted (into ``submission`` where the recipe names the file)."""
    return {
        "eval_splits": ("dev",) if "dev" in files else (),
        "test_splits": ("test",) if "test" in files else (),
        "submission": {"test": submission} if submission else {},
    }


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
        **split_roles(files, config.submission),
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
