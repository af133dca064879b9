"""Check a GLUE folder against the manifest: which tasks are complete, partial, missing or
damaged, and why."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from kdnlu.glue_data.manifest import FileCheck, TaskFiles


def count_and_digest(path: Path) -> tuple[int, str, int]:
    """Lines (a last line without newline counts), SHA-256 and size of a file, in one pass."""
    digest, lines, size, last = hashlib.sha256(), 0, 0, b"\n"
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
            lines += chunk.count(b"\n")
            size += len(chunk)
            last = chunk[-1:]
    return lines + (last != b"\n"), digest.hexdigest(), size


def file_problem(path: Path, check: FileCheck) -> str | None:
    """Why ``path`` is not the expected file, or ``None`` when it is."""
    if not path.is_file():
        return "missing"
    lines, sha256, size = count_and_digest(path)
    rows = lines - check.header if lines else 0
    if rows != check.rows:
        return f"{rows} rows, expected {check.rows}"
    if check.size is not None and size != check.size:
        return f"{size} bytes, expected {check.size}"
    if check.sha256 is not None and sha256 != check.sha256:
        return f"SHA-256 {sha256[:16]}..., expected {check.sha256[:16]}... (the contents differ)"
    return None


@dataclass
class TaskReport:
    """The state of one task folder: ``complete``, ``partial``, ``missing`` or ``damaged``."""

    task: TaskFiles
    status: str
    problems: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        if self.status == "complete":
            rows = ", ".join(f"{name} {c.rows}" for name, c in self.task.files.items())
            unchecked = [n for n, c in self.task.files.items() if c.sha256 is None]
            digests = "digests match" if not unchecked else "rows checked (no digest recorded)"
            return f"rows {rows}; {digests}"
        if self.status == "missing":
            return f"not there (kdnlu data glue --tasks {self.task.key})"
        return "; ".join(f"{name}: {problem}" for name, problem in self.problems.items())


def check_task(folder: Path, task: TaskFiles) -> TaskReport:
    """Compare ``folder`` (e.g. ``<glue>/RTE``) with the task's files in the manifest."""
    problems = {
        name: problem
        for name, check in task.files.items()
        if (problem := file_problem(folder / name, check)) is not None
    }
    if not problems:
        return TaskReport(task, "complete")
    if all(p == "missing" for p in problems.values()):
        status = "missing" if len(problems) == len(task.files) else "partial"
        return TaskReport(task, status, problems)
    return TaskReport(task, "damaged", problems)
