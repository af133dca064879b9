"""Where data lives: one rule for every recipe, command, test and benchmark.

A recipe's ``data_root`` (or ``--set data_root=PATH``, which replaces it) wins. Without one,
GLUE is looked for in ``$KDNLU_DATA/glue``, and without that variable in the default folder
``~/.cache/kdnlu/data/glue`` (``$XDG_CACHE_HOME/kdnlu/data/glue`` where that is set), which is
where ``kdnlu data glue`` writes by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "KDNLU_DATA"
GLUE_FOLDER = "glue"
GET_GLUE_HINT = (
    "Get GLUE with `kdnlu data glue` (add `--from ARCHIVE_OR_FOLDER_OR_URL` without internet), "
    "or point at your copy with --set data_root=PATH or KDNLU_DATA=PARENT (the folder holding "
    "glue/)"
)


@dataclass(frozen=True)
class DataLocation:
    """A data folder and the rule that chose it, in words (for messages)."""

    path: Path
    source: str


def default_data_dir() -> Path:
    """The per-user data folder used when neither a recipe nor ``KDNLU_DATA`` names one."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kdnlu" / "data"


def data_dir() -> DataLocation:
    """``$KDNLU_DATA`` when set (relative to the working directory), else the default folder."""
    value = os.environ.get(DATA_ENV)
    if value:
        return DataLocation(Path(value).expanduser().resolve(), f"{DATA_ENV}={value}")
    return DataLocation(
        default_data_dir(), f"the default folder; {DATA_ENV} is not set and the recipe has none"
    )


def glue_dir() -> DataLocation:
    """The GLUE folder the rule gives when a recipe sets no ``data_root``."""
    base = data_dir()
    return DataLocation(base.path / GLUE_FOLDER, base.source)
