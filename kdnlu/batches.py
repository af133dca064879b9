"""The training batches of every task: shuffled (length-bucketed) passes over each split."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from kdnlu.data import EncodedSplit, batch_indices
from kdnlu.generators import python_state, set_python_state


class TaskBatches:
    """Each task's shuffled batches for the current pass; a task that runs out starts a new pass.

    A task listed in ``groups`` (a ``[G, size]`` array of row indices, see ``ranking_groups``) is
    batched by whole groups: ``batch_size // size`` groups per batch, each group's rows
    consecutive, so a ranking loss sees every candidate of a question together.
    """

    def __init__(
        self,
        splits: dict[str, EncodedSplit],
        batch_size: int,
        bucket: bool,
        rng: random.Random,
        groups: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.splits, self.batch_size, self.bucket, self.rng = splits, batch_size, bucket, rng
        self.groups = dict(groups or {})
        self.queues: dict[str, list[list[int]]] = {}

    def _units(self, task: str) -> tuple[np.ndarray, int]:
        """Lengths of the units batches are made of (rows or groups), and units per batch."""
        lengths = self.splits[task].lengths
        if task not in self.groups:
            return lengths, self.batch_size
        rows = self.groups[task]
        return lengths[rows].max(1), max(1, self.batch_size // rows.shape[1])

    def counts(self) -> dict[str, int]:
        counts = {}
        for task in self.splits:
            lengths, per_batch = self._units(task)
            counts[task] = math.ceil(len(lengths) / per_batch)
        return counts

    def next(self, task: str) -> list[int]:
        if not self.queues.get(task):
            lengths, per_batch = self._units(task)
            batches = batch_indices(
                lengths, per_batch, shuffle=True, rng=self.rng, bucket=self.bucket
            )
            if task in self.groups:
                rows = self.groups[task]
                batches = [rows[units].reshape(-1).tolist() for units in batches]
            self.queues[task] = batches[::-1]  # pop() from the end keeps the shuffled order
        return self.queues[task].pop()

    def state_dict(self) -> dict[str, Any]:
        """Every task's remaining batches of its current pass and the shuffling generator."""
        return {"queues": self.queues, "rng": python_state(self.rng)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.queues = {k: [list(b) for b in v] for k, v in state["queues"].items()}
        set_python_state(state["rng"], self.rng)


class Sampler(Protocol):
    """A registered sampler (plugins/samplers.py): one epoch's order of task batches."""

    def epoch(self, batch_counts: Mapping[str, int], rng: random.Random) -> list[str]: ...


class TaskSchedule:
    """The order of task batches in each epoch: a sampler with a generator of its own, so the
    task order never changes which rows form a task's batches."""

    def __init__(self, sampler: Sampler, rng: random.Random) -> None:
        self.sampler, self.rng = sampler, rng

    def epoch(self, batch_counts: Mapping[str, int]) -> list[str]:
        return self.sampler.epoch(batch_counts, self.rng)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": python_state(self.rng)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        set_python_state(state["rng"], self.rng)
