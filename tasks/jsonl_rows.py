"""Reading the rows of a ``jsonl`` task: fields by name or dotted path, one example per line,
or a multiple-choice question's candidates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdnlu.task import BadRows, Example, parse_label
from kdnlu.tsv import read_utf8

if TYPE_CHECKING:
    from kdnlu_tasks.generic import JsonlTaskConfig

LABELLED_SPLITS = ("train", "dev")  # splits whose rows must have their label


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
