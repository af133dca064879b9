"""What a task plugin returns: its files, label space, defaults and how to read its rows."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kdnlu.errors import DataError, KdnluError, PluginError

log = logging.getLogger("kdnlu.data")

BadRowPolicy = Literal["error", "skip"]
BAD_ROW_POLICIES: tuple[str, ...] = ("error", "skip")


@dataclass(frozen=True)
class Example:
    """One row: one or two texts and a label (class index, float score, or None when hidden).

    A token-labelling row gives its ``words`` (``text_a`` is them joined by spaces) and one tag
    class index per word in ``tags`` (None when hidden); its ``label`` is None.

    A candidate of a multiple-choice question (or of a ranked list) names its question in
    ``group`` and its place among the question's candidates in ``candidate`` (0-based); rows of
    one group are consecutive. Without ``group``, rows sharing their first text form a group.
    """

    uid: str
    text_a: str
    text_b: str | None
    label: int | float | None
    words: tuple[str, ...] | None = None
    tags: tuple[int, ...] | None = None
    group: str | None = None
    candidate: int | None = None


class BadRows:
    """Where a reader reports the rows of one file it cannot read.

    With the policy ``"error"`` the first report raises ``DataError`` naming ``file:line``; with
    ``"skip"`` reports are counted (the reader leaves the row out) and ``warn`` logs one warning
    for the whole file, so nothing is dropped without a word.
    """

    def __init__(self, path: Path, policy: BadRowPolicy = "error") -> None:
        if policy not in BAD_ROW_POLICIES:
            raise ValueError(f"on_bad_row must be one of {BAD_ROW_POLICIES}, got {policy!r}")
        self.path = path
        self.policy = policy
        self.count = 0
        self.first: tuple[int, str] | None = None

    def report(self, line: int, reason: str) -> None:
        """Record that row ``line`` is unreadable for ``reason`` (raises under "error")."""
        if self.policy == "error":
            raise DataError(
                f"{self.path}:{line}: {reason}. Fix or remove this row "
                "(or set on_bad_row: skip for the task to skip such rows)."
            )
        self.count += 1
        if self.first is None:
            self.first = (line, reason)

    def summary(self) -> str | None:
        """One sentence about the skipped rows, or None when there were none."""
        if self.first is None:
            return None
        line, reason = self.first
        rows = "row" if self.count == 1 else "rows"
        return f"skipped {self.count} bad {rows} in {self.path} (first at line {line}: {reason})"

    def warn(self) -> None:
        """Log the summary once as a warning on the ``kdnlu.data`` logger (if any were skipped)."""
        text = self.summary()
        if text is not None:
            log.warning(text)


def shorten(text: str, limit: int = 200) -> str:
    """``text`` as quoted in a message: cut to ``limit`` characters (a whole file read as one
    line must not become the message)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


FLOAT32_MAX = 3.4028234663852886e38  # a larger score is infinite once batched as float32


def parse_label(
    value: object,
    label_names: tuple[str, ...] | None,
    task: str,
    score_range: tuple[float, ...] | None = None,
) -> int | float:
    """A class index (position of the label string in ``label_names``) or, for regression
    (``label_names`` None), a finite float (within ``score_range`` ``(low, high)`` when the
    task declares one). Raises ``ValueError`` with the reason otherwise.

    Non-string values (JSON numbers and booleans) are compared in their JSON spelling, so the
    JSON number ``1`` matches the label ``"1"``.
    """
    if label_names is None:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(
                f"label {shorten(repr(value))} is not a number (task {task} is a regression task)"
            )
        try:
            score = float(value)
        except ValueError:
            raise ValueError(
                f"label '{shorten(str(value))}' is not a number (task {task} is a regression task)"
            ) from None
        if not math.isfinite(score) or abs(score) > FLOAT32_MAX:
            raise ValueError(f"label '{value}' is not a finite number (in float32, as trained)")
        if score_range is not None and not score_range[0] <= score <= score_range[-1]:
            low, high = score_range[0], score_range[-1]
            raise ValueError(f"score {value} is outside task {task}'s range {low:g} to {high:g}")
        return score
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = str(value)
    else:
        text = repr(value)
    if text not in label_names:
        raise ValueError(
            f"unknown label '{shorten(text)}' for task {task}; expected one of "
            f"{', '.join(label_names)}"
        )
    return label_names.index(text)


Reader = Callable[..., list[Example]]

# the head and loss a task gets when neither it nor the recipe names one, by label kind
DEFAULT_COMPONENTS = {
    "class": ("classification", "cross_entropy"),
    "score": ("regression", "mse"),
    "token": ("token", "token_cross_entropy"),
}


def takes_bad_rows(reader: Reader) -> bool:
    """Whether ``reader`` accepts the optional ``bad_rows`` keyword (older readers do not)."""
    try:
        parameters = inspect.signature(reader).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "bad_rows" or p.kind is p.VAR_KEYWORD for p in parameters)


@dataclass(frozen=True)
class Task:
    """A task definition built by a TASKS plugin from its config.

    ``reader(path, split, bad_rows=None)`` returns the examples of one split file. It reports each
    row it cannot read to ``bad_rows.report(line, reason)`` (a ``BadRows``; when None, it makes an
    error-raising one itself) and leaves the row out when that returns; anything wrong with the
    file as a whole raises ``DataError`` naming file and line. A reader that only takes
    ``(path, split)`` works too, but then only with ``on_bad_row="error"``.

    ``eval_splits`` are scored during training (MNLI has two); ``test_splits`` are predicted for
    submission, each written to the file name ``submission[split]`` (e.g. ``RTE.tsv``).
    ``extra_predictions`` maps more submission file names to unlabelled files scored with this
    task's head (GLUE's AX diagnostic set is predicted by the MNLI model). ``output_range``
    clips regression predictions (STS-B: 0 to 5). ``absent_splits`` explains splits a task does
    not have (AX has no train split), for the error raised when one is asked for.
    ``level`` is ``"token"`` for token labelling (one tag per word; ``label_names`` are the tags).
    ``default_head`` and ``default_loss`` (None: chosen by the label kind, see
    ``DEFAULT_COMPONENTS``) are used where the recipe names none: a name, or a mapping with
    ``name`` and config values (``{"name": "ranking", "group_size": 4}``) that the recipe's own
    keys for the same component override.
    """

    name: str
    files: Mapping[str, Path]
    reader: Reader
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    default_head: str | Mapping[str, Any] | None = None
    default_loss: str | Mapping[str, Any] | None = None
    eval_splits: tuple[str, ...] = ("dev",)
    test_splits: tuple[str, ...] = ("test",)
    submission: Mapping[str, str] = field(default_factory=dict)
    extra_predictions: Mapping[str, Path] = field(default_factory=dict)
    output_range: tuple[float, float] | None = None
    absent_splits: Mapping[str, str] = field(default_factory=dict)
    level: Literal["sequence", "token"] = "sequence"
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        head, loss = DEFAULT_COMPONENTS[self.label_kind]
        if self.default_head is None:
            object.__setattr__(self, "default_head", head)
        if self.default_loss is None:
            object.__setattr__(self, "default_loss", loss)

    @property
    def label_kind(self) -> Literal["class", "score", "token"]:
        """What its labels are: class indices, regression scores, or one tag per word."""
        if self.level == "token":
            return "token"
        return "score" if self.label_names is None else "class"

    @property
    def num_outputs(self) -> int:
        """Width of the head's output: the number of classes, or 1 for regression."""
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def main_metric(self) -> str:
        """The metric that ranks runs on this task (the first one)."""
        return self.metrics[0]

    def path(self, split: str) -> Path:
        """The file of ``split``; asking for a split the task does not have is a ``DataError``."""
        if split not in self.files:
            if split in self.absent_splits:
                raise DataError(
                    f"task '{self.name}' has no {split} split: {self.absent_splits[split]}"
                )
            raise DataError(
                f"task '{self.name}' has no split '{split}'; it has {', '.join(self.files)}"
            )
        return self.files[split]

    def read(
        self, split: str, limit: int | None = None, on_bad_row: BadRowPolicy = "error"
    ) -> list[Example]:
        """Read a split (the first ``limit`` rows when given); an empty split is an error.

        ``on_bad_row="skip"`` leaves out rows the reader cannot read and logs one warning per
        file on the ``kdnlu.data`` logger; ``"error"`` (the default) stops at the first one.
        """
        examples = self.read_file(self.path(split), split, on_bad_row)
        return examples if limit is None else examples[:limit]

    def read_file(
        self, path: Path, split: str, on_bad_row: BadRowPolicy = "error"
    ) -> list[Example]:
        """Read any file in this task's format as ``split`` (e.g. an extra prediction file)."""
        if not path.is_file():
            raise DataError(f"task '{self.name}': data file {path} does not exist")
        bad_rows = BadRows(path, on_bad_row)
        if not takes_bad_rows(self.reader) and on_bad_row != "error":
            raise DataError(
                f"task '{self.name}': its reader cannot skip bad rows (it takes no bad_rows "
                "argument); use on_bad_row: error, or update the task plugin"
            )
        examples = self._run_reader(path, split, bad_rows)
        bad_rows.warn()
        check_examples(self, examples, path, split == "train" or split in self.eval_splits)
        if not examples:
            rows = "row" if bad_rows.count == 1 else "rows"
            skipped = f", after skipping {bad_rows.count} bad {rows}" if bad_rows.count else ""
            raise DataError(
                f"task '{self.name}': {path} has no rows ({split} split is empty{skipped})"
            )
        return examples

    def _run_reader(self, path: Path, split: str, bad_rows: BadRows) -> list[Example]:
        """The reader's rows; an exception inside it names the reader's file and line."""
        from kdnlu.plugin_code import failure

        try:
            if takes_bad_rows(self.reader):
                examples = self.reader(path, split, bad_rows=bad_rows)
            else:
                examples = self.reader(path, split)
        except KdnluError:
            raise
        except Exception as exc:  # plugin code: say whose and where
            what = f"task '{self.name}': reading {path} ({reader_name(self.reader)})"
            raise PluginError(failure(what, exc, _source_file(self.reader))) from exc
        if not isinstance(examples, list):
            raise PluginError(
                f"task '{self.name}': its reader ({reader_name(self.reader)}) returned "
                f"{type(examples).__name__} for {path}, not a list of kdnlu.task.Example"
            )
        return examples


def reader_name(reader: Reader) -> str:
    """``function at file:line`` of a reader (through ``functools.partial``)."""
    from kdnlu.registry import source_of

    function = getattr(reader, "func", reader)
    return f"{getattr(function, '__qualname__', repr(function))} at {source_of(reader)}"


def _source_file(reader: Reader) -> str | None:
    from kdnlu.registry import source_of

    return source_of(reader).rpartition(":")[0] or None


def _label_problem(task: Task, label: object, labelled: bool) -> str | None:
    """Why ``label`` cannot be a label of ``task`` (None when it can)."""
    if label is None:
        return "has no label (None) in a split that trains or is scored" if labelled else None
    kind = task.label_kind
    if kind == "class":
        assert task.label_names is not None
        if isinstance(label, bool) or not isinstance(label, int):
            return (
                f"has the label {label!r} ({type(label).__name__}), but a classification "
                f"task's labels are class indices 0..{len(task.label_names) - 1}; turn label "
                "strings into indices with kdnlu.task.parse_label"
            )
        if not 0 <= label < len(task.label_names):
            return f"has the class index {label}, outside 0..{len(task.label_names) - 1}"
        return None
    if kind == "score":
        if isinstance(label, bool) or not isinstance(label, (int, float)):
            return (
                f"has the label {label!r} ({type(label).__name__}), but a regression task's "
                "labels are numbers; parse them with kdnlu.task.parse_label(value, None, task)"
            )
        return None if math.isfinite(label) else f"has the non-finite label {label}"
    return f"has the label {label!r}; a token-labelling row gives tags and label None"


def _example_problem(task: Task, example: object, labelled: bool) -> str | None:
    """Why one row from a reader does not fit ``task`` (None when it does)."""
    if not isinstance(example, Example):
        return f"is a {type(example).__name__}, not a kdnlu.task.Example"
    if not isinstance(example.uid, str):
        return f"has the uid {example.uid!r} ({type(example.uid).__name__}), not a string"
    if not isinstance(example.text_a, str) or not isinstance(example.text_b, (str, type(None))):
        return "has a text that is not a string (text_a a str; text_b a str or None)"
    if not isinstance(example.group, (str, type(None))):
        return f"has the group {example.group!r}, not a string"
    candidate = example.candidate
    if candidate is not None and (isinstance(candidate, bool) or not isinstance(candidate, int)):
        return f"has the candidate {candidate!r}, not an index"
    if task.label_kind != "token":
        return _label_problem(task, example.label, labelled)
    if example.words is None or example.label is not None:
        return "is a token-labelling row without words, or with a row label"
    names = task.label_names or ()
    if example.tags is None:
        return "has no tags in a split that trains or is scored" if labelled else None
    if len(example.tags) != len(example.words):
        return f"has {len(example.tags)} tags for {len(example.words)} words"
    bad = [t for t in example.tags if isinstance(t, bool) or not isinstance(t, int)]
    if bad or any(not 0 <= t < len(names) for t in example.tags):
        return f"has tags {example.tags!r}; tags are class indices 0..{len(names) - 1}"
    return None


def check_examples(task: Task, examples: list[Example], path: Path, labelled: bool) -> None:
    """Every row a reader gave must fit the task: its label kind, class range and texts."""
    for number, example in enumerate(examples, start=1):
        problem = _example_problem(task, example, labelled)
        if problem is not None:
            uid = getattr(example, "uid", "?")
            raise PluginError(
                f"task '{task.name}': its reader ({reader_name(task.reader)}) gave a row that "
                f"does not fit the task: row {number} of {path} (uid {uid!r}) {problem}"
            )
