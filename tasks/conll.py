"""Token labelling from CoNLL-style files, set up in a recipe (named entities, chunks, POS).

```yaml
tasks:
  ner:
    name: conll
    data: data/ner            # ner/{train,dev,test}.txt, relative to the recipe
    labels: [O, B-PER, I-PER, B-LOC, I-LOC]
```

One word per line, its columns separated by whitespace (tabs or spaces): the word in
``word_column``, its tag in ``tag_column`` (default: the last column). A blank line ends a
sentence; ``-DOCSTART-`` lines are skipped. Test files may hold the words alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from kdnlu.config import FieldError, doc_field, path_field
from kdnlu.errors import DataError
from kdnlu.metrics import metrics_for, unknown_metric_message
from kdnlu.registry import METRICS, TASKS
from kdnlu.task import BadRows, Example, Task
from kdnlu.tsv import read_utf8
from kdnlu_tasks.generic import SPLIT_FILE_HELP, SUBMISSION_HELP, split_files, split_roles
from kdnlu_tasks.jsonl_rows import LABELLED_SPLITS


@dataclass(frozen=True)
class ConllTaskConfig:
    """Files, tag set, columns and metrics of a token-labelling task."""

    data: str | None = path_field(
        None, help="folder with the `train`, `dev` and `test` files (`.txt`)"
    )
    train: str | None = path_field(None, help=SPLIT_FILE_HELP)
    dev: str | None = path_field(None, help=SPLIT_FILE_HELP)
    test: str | None = path_field(None, help=SPLIT_FILE_HELP)
    labels: tuple[str, ...] = doc_field(
        (), "every tag, in class index order", shown_default="required"
    )
    word_column: int = doc_field(0, "column of the word (0-based)")
    tag_column: int = doc_field(-1, "column of the tag (-1: the last)")
    metrics: tuple[str, ...] = doc_field(
        ("span_f1", "token_accuracy"),
        "`span_f1` (exact labelled spans of BIO tags, the usual NER score) and "
        "`token_accuracy`; the first is the main one",
    )
    submission: str | None = doc_field(None, SUBMISSION_HELP, shown_default="`<task key>-test.tsv`")

    def __post_init__(self) -> None:
        for name in self.metrics:
            if name not in METRICS:
                raise FieldError("metrics", unknown_metric_message(name))
            if "token" not in METRICS.get(name).facts["targets"]:
                raise FieldError(
                    "metrics",
                    f"'{name}' does not score tags; use {', '.join(metrics_for('token'))}",
                )
        if not self.metrics:
            raise FieldError("metrics", "needs at least one metric")
        for label in self.labels:
            if self.labels.count(label) > 1:
                raise FieldError("labels", f"tag '{label}' is listed twice")
        if self.word_column == self.tag_column:
            raise FieldError("tag_column", "must differ from word_column")


def read_conll_file(
    config: ConllTaskConfig,
    task: str,
    path: Path,
    split: str,
    bad_rows: BadRows | None = None,
) -> list[Example]:
    """Sentences of one file; a line that cannot be read (missing column, unknown tag) is
    reported to ``bad_rows``, and under ``on_bad_row: skip`` its whole sentence is left out."""
    bad_rows = bad_rows if bad_rows is not None else BadRows(path)
    labelled = split in LABELLED_SPLITS
    examples: list[Example] = []
    words: list[str] = []
    tags: list[int] = []
    first_line, broken = 0, False

    def end_sentence() -> None:
        if words and not broken:
            examples.append(
                Example(
                    uid=str(first_line),
                    text_a=" ".join(words),
                    text_b=None,
                    label=None,
                    words=tuple(words),
                    tags=tuple(tags) if labelled else None,
                )
            )
        words.clear()
        tags.clear()

    for number, raw in enumerate(read_utf8(path).split("\n"), start=1):
        fields = raw.split()
        if not fields or fields[0] == "-DOCSTART-":
            end_sentence()
            broken = False
            continue
        if not words:
            first_line = number
        if broken:
            continue
        try:
            words.append(_column(fields, config.word_column, "word"))
            if labelled:
                tag = _column(fields, config.tag_column, "tag")
                if tag not in config.labels:
                    raise ValueError(
                        f"unknown tag '{tag}' for task {task}; expected one of "
                        f"{', '.join(config.labels)}"
                    )
                tags.append(config.labels.index(tag))
        except ValueError as exc:
            bad_rows.report(number, str(exc))
            broken = True  # a sentence with a gap would misalign its tags: leave it all out
    end_sentence()
    return examples


def _column(fields: list[str], column: int, what: str) -> str:
    if not -len(fields) <= column < len(fields) or (what == "tag" and len(fields) < 2):
        raise ValueError(
            f"the line has {len(fields)} column(s); the {what} is expected in column {column}"
        )
    return fields[column]


@TASKS.register("conll", config=ConllTaskConfig)
def conll_task(config: ConllTaskConfig, data_root: str | None = None) -> Task:
    """Token labelling (NER, chunking, POS) from CoNLL-style files set up in the recipe."""
    if not config.labels:
        raise DataError(
            "task 'conll' needs its tag set: labels: [O, B-PER, I-PER, ...] (class index order)"
        )
    files = split_files(config, ".txt", "conll")
    return Task(
        name="conll",
        files=files,
        reader=partial(read_conll_file, config, "conll"),
        label_names=tuple(config.labels),
        metrics=tuple(config.metrics),
        default_head="token",
        default_loss="token_cross_entropy",
        **split_roles(files, config.submission),
        level="token",
        description="token labelling from CoNLL-style files",
    )
