"""The training batches of every task: shuffled (length-bucketed) passes over each split."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

import numpy as np

from kdnlu.data import EncodedSplit, batch_indices


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
