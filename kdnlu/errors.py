"""Errors meant for people: each says what was wrong, where, and what to do."""

from __future__ import annotations


class KdnluError(Exception):
    """Base of every error kdnlu reports to a user without a traceback."""


class RegistryError(KdnluError):
    """A component name is registered twice or cannot be found."""


class RecipeError(KdnluError):
    """A recipe cannot be read, merged or validated."""


class DataError(KdnluError):
    """A data file is missing or holds rows that cannot be read."""


class PluginLoadError(KdnluError):
    """A plugin module (built-in, entry point or recipe import) failed to import."""


class TrainingError(KdnluError):
    """Training cannot go on (e.g. a non-finite loss); the message says where and what to try."""


class TrainingInterrupted(KdnluError):
    """Training stopped on request (Ctrl-C) after saving everything needed to go on."""

    def __init__(self, run_dir: object, step: int) -> None:
        super().__init__(
            f"interrupted after step {step}; {run_dir}/checkpoints/last holds everything to go "
            f"on: kdnlu-train --resume {run_dir}"
        )
        self.run_dir, self.step = run_dir, step


class PluginError(KdnluError):
    """Plugin code (a task's builder or reader, a component) raised or returned something wrong;
    the message names the plugin file and line."""
