"""GLUE tasks read from the official layout: ``<data_root>/<TASK>/{train,dev,test}.tsv``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from kdnlu.config import path_field
from kdnlu.errors import DataError
from kdnlu.registry import TASKS
from kdnlu.task import Example, Task
from kdnlu.tsv import column_index, read_tsv_rows


@dataclass(frozen=True)
class GlueFormat:
    """Where a GLUE task's files are and which header columns hold texts and label."""

    folder: str
    text_a: str
    text_b: str | None
    label: str
    label_names: tuple[str, ...]
    metrics: tuple[str, ...]
    description: str


FORMATS = {
    "rte": GlueFormat(
        "RTE",
        "sentence1",
        "sentence2",
        "label",
        ("entailment", "not_entailment"),
        ("accuracy",),
        "Recognizing Textual Entailment: does sentence1 entail sentence2",
    ),
    "mrpc": GlueFormat(
        "MRPC",
        "#1 String",
        "#2 String",
        "Quality",
        ("0", "1"),
        ("f1", "accuracy"),
        "Microsoft Research Paraphrase Corpus: are the two sentences paraphrases",
    ),
}


@dataclass(frozen=True)
class GlueConfig:
    """Task folder; by default <data_root>/<GLUE name> (e.g. <data_root>/RTE)."""

    data: str | None = path_field(None)


def read_glue_file(fmt: GlueFormat, task: str, path: Path, split: str) -> list[Example]:
    """Read one GLUE TSV; test files have no label column, so their labels are None."""
    names, rows = read_tsv_rows(path, header=True)
    assert names is not None
    a = column_index(names, fmt.text_a, path)
    b = column_index(names, fmt.text_b, path) if fmt.text_b else None
    has_label = fmt.label in names
    if not has_label and split != "test":
        raise DataError(f"{path}:1: column '{fmt.label}' (the label) is missing from the header")
    y = names.index(fmt.label) if has_label else None
    uid_col = names.index("index") if "index" in names else None
    examples = []
    for line, fields in rows:
        label: int | None = None
        if y is not None:
            text = fields[y]
            if text not in fmt.label_names:
                raise DataError(
                    f"{path}:{line}: unknown label '{text}' for task {task}; expected one of "
                    f"{', '.join(fmt.label_names)}"
                )
            label = fmt.label_names.index(text)
        examples.append(
            Example(
                uid=fields[uid_col] if uid_col is not None else str(line),
                text_a=fields[a],
                text_b=fields[b] if b is not None else None,
                label=label,
            )
        )
    return examples


def build_glue_task(name: str, config: GlueConfig, data_root: str | None) -> Task:
    fmt = FORMATS[name]
    if config.data is not None:
        folder = Path(config.data)
    elif data_root is not None:
        folder = Path(data_root) / fmt.folder
    else:
        raise DataError(
            f"task '{name}' needs data_root (a folder holding {fmt.folder}/train.tsv) or its own "
            "'data' folder"
        )
    return Task(
        name=name,
        files={split: folder / f"{split}.tsv" for split in ("train", "dev", "test")},
        reader=partial(read_glue_file, fmt, name),
        label_names=fmt.label_names,
        metrics=fmt.metrics,
        description=fmt.description,
    )


def _register(name: str) -> None:
    def builder(config: GlueConfig, data_root: str | None = None) -> Task:
        return build_glue_task(name, config, data_root)

    builder.__qualname__ = f"glue_{name}"
    TASKS.register(name, config=GlueConfig, description=FORMATS[name].description)(builder)


for _name in FORMATS:
    _register(_name)
