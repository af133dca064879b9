"""Multi-task samplers: which task each training step's batch comes from."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from kdnlu.registry import SAMPLERS


class ShuffledBatchesSampler:
    """Every batch of every task once per epoch, in one shuffled order (MT-DNN's scheme)."""

    def probabilities(self, task_sizes: Mapping[str, int]) -> dict[str, float]:
        """Share of steps each task gets: proportional to its number of batches."""
        total = sum(task_sizes.values())
        return {task: size / total for task, size in task_sizes.items()}

    def epoch(self, batch_counts: Mapping[str, int], rng: random.Random) -> list[str]:
        """Task name of every step of one epoch."""
        order = [task for task, count in batch_counts.items() for _ in range(count)]
        rng.shuffle(order)
        return order


@dataclass(frozen=True)
class MtdnnConfig:
    """No options yet."""


@SAMPLERS.register("mtdnn", config=MtdnnConfig)
def mtdnn_sampler(config: MtdnnConfig) -> ShuffledBatchesSampler:
    """All tasks' batches shuffled together each epoch; task frequency follows dataset size."""
    return ShuffledBatchesSampler()
