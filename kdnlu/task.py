"""What a task plugin returns: its files, label space, defaults and how to read its rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kdnlu.errors import DataError


@dataclass(frozen=True)
class Example:
    """One row: one or two texts and a label (class index, float score, or None when hidden)."""

    uid: str
    text_a: str
    text_b: str | None
    label: int | float | None


@dataclass(frozen=True)
class Task:
    """A task definition built by a TASKS plugin from its config.

    ``reader(path, split)`` returns the examples of one split file; it must raise ``DataError``
    naming file and line for any row it cannot read.

    ``eval_splits`` are scored during training (MNLI has two); ``test_splits`` are predicted for
    submission, each written to the file name ``submission[split]`` (e.g. ``RTE.tsv``).
    ``extra_predictions`` maps more submission file names to unlabelled files scored with this
    task's head (GLUE's AX diagnostic set is predicted by the MNLI model). ``output_range``
    clips regression predictions (STS-B: 0 to 5).
    """

    name: str
    files: Mapping[str, Path]
    reader: Callable[[Path, str], list[Example]]
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    default_head: str = "classification"
    default_loss: str = "cross_entropy"
    eval_splits: tuple[str, ...] = ("dev",)
    test_splits: tuple[str, ...] = ("test",)
    submission: Mapping[str, str] = field(default_factory=dict)
    extra_predictions: Mapping[str, Path] = field(default_factory=dict)
    output_range: tuple[float, float] | None = None
    description: str = field(default="", compare=False)

    @property
    def num_outputs(self) -> int:
        """Width of the head's output: the number of classes, or 1 for regression."""
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    def path(self, split: str) -> Path:
        if split not in self.files:
            raise DataError(
                f"task '{self.name}' has no split '{split}'; it has {', '.join(self.files)}"
            )
        return self.files[split]

    def read(self, split: str, limit: int | None = None) -> list[Example]:
        """Read a split (the first ``limit`` rows when given); an empty split is an error."""
        path = self.path(split)
        if not path.is_file():
            raise DataError(f"task '{self.name}': data file {path} does not exist")
        examples = self.reader(path, split)
        if not examples:
            raise DataError(f"task '{self.name}': {path} has no rows ({split} split is empty)")
        return examples if limit is None else examples[:limit]
