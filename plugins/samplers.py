"""Multi-task samplers: which task each training step's batch comes from.

A sampler has ``probabilities(task_sizes)``, each task's expected share of an epoch's steps,
and ``epoch(batch_counts, rng)``, the task name of every step of one epoch. Both take the
tasks in recipe order, are pure, and ``epoch`` depends only on its arguments and the state of
``rng``. A sampler may name a task more often than it has batches: the trainer then starts that
task's batches over. A task with no batches is never named.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kdnlu.config import FieldError, doc_field
from kdnlu.registry import SAMPLERS


def check_counts(counts: Mapping[str, int], sampler: str) -> None:
    """Reject an empty mapping, a negative count, or no batches at all."""
    if not counts:
        raise ValueError(f"sampler '{sampler}': there are no tasks to sample from")
    negative = [task for task, n in counts.items() if n < 0]
    if negative:
        raise ValueError(
            f"sampler '{sampler}': task '{negative[0]}' has a negative size {counts[negative[0]]}"
        )
    if not any(counts.values()):
        raise ValueError(f"sampler '{sampler}': no task has any batches to sample")


def normalise(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights divided by their (positive) sum."""
    total = sum(weights.values())
    return {task: w / total for task, w in weights.items()}


def check_steps_per_epoch(value: int | None) -> None:
    if value is not None and value < 1:
        raise FieldError("steps_per_epoch", f"must be at least 1 (or null), got {value}")


# --- MT-DNN: every batch once per epoch, optionally with the first task as the main task ---


@dataclass(frozen=True)
class MtdnnConfig:
    """MT-DNN's mix_opt and ratio."""

    mix_opt: int = doc_field(
        0,
        "MT-DNN's mix_opt: 0 shuffles every task's batches together; positive puts the "
        "auxiliary tasks' batches first and the main task's (the first task's) last",
    )
    ratio: float = doc_field(
        0.0,
        "MT-DNN's ratio: 0 takes every batch of every task once an epoch; above 0, all of the "
        "main (first) task's batches and ratio times as many auxiliary ones (at most all of "
        "them), drawn without replacement",
    )

    def __post_init__(self) -> None:
        if self.mix_opt < 0:
            raise FieldError("mix_opt", f"must be 0 (mix all) or positive, got {self.mix_opt}")
        if not (self.ratio >= 0.0 and math.isfinite(self.ratio)):
            raise FieldError("ratio", f"must be a finite number >= 0, got {self.ratio}")


def auxiliary_picks(main_batches: int, auxiliary_batches: int, ratio: float) -> int:
    """How many auxiliary batches an epoch holds when ``ratio`` > 0 (MT-DNN rounds down)."""
    return int(min(main_batches * ratio, auxiliary_batches))


class MtdnnSampler:
    """MT-DNN's epoch layout; the first task (in recipe order) is the main task.

    ``ratio`` = 0: every batch of every task once. ``ratio`` > 0 (and more than one task): all
    of the main task's batches plus ``min(ratio * main, auxiliary)`` batches drawn without
    replacement from the pool of all auxiliary batches. ``mix_opt`` = 0 shuffles the whole
    epoch together; ``mix_opt`` > 0 shuffles the auxiliary batches and puts them first, followed
    by the main task's block.
    """

    name = "mtdnn"

    def __init__(self, config: MtdnnConfig) -> None:
        self.mix_opt = config.mix_opt
        self.ratio = config.ratio

    def _uses_ratio(self, counts: Mapping[str, int]) -> bool:
        return self.ratio > 0 and len(counts) > 1

    def probabilities(self, task_sizes: Mapping[str, int]) -> dict[str, float]:
        """Each task's expected share of an epoch's steps."""
        check_counts(task_sizes, self.name)
        if not self._uses_ratio(task_sizes):
            return normalise(task_sizes)
        main, *auxiliary = task_sizes
        main_n = task_sizes[main]
        if main_n == 0:
            raise ValueError(self._no_main_batches(main))
        auxiliary_n = sum(task_sizes[task] for task in auxiliary)
        picks = auxiliary_picks(main_n, auxiliary_n, self.ratio)
        total = main_n + picks
        shares = {main: main_n / total}
        for task in auxiliary:
            shares[task] = picks * task_sizes[task] / auxiliary_n / total if picks else 0.0
        return shares

    def epoch(self, batch_counts: Mapping[str, int], rng: random.Random) -> list[str]:
        """Task name of every step of one epoch."""
        check_counts(batch_counts, self.name)
        main, *auxiliary = batch_counts
        main_block = [main] * batch_counts[main]
        pool = [task for task in auxiliary for _ in range(batch_counts[task])]
        if self._uses_ratio(batch_counts):
            if not main_block:
                raise ValueError(self._no_main_batches(main))
            # a sample without replacement comes out in random order already
            order = rng.sample(pool, auxiliary_picks(len(main_block), len(pool), self.ratio))
        else:
            order = pool
            if self.mix_opt > 0:
                rng.shuffle(order)
        order += main_block
        if self.mix_opt == 0:
            rng.shuffle(order)
        return order

    def _no_main_batches(self, main: str) -> str:
        return (
            f"sampler 'mtdnn': the main task '{main}' (the first task of the recipe) has no "
            f"batches, and with ratio {self.ratio} the epoch is sized by the main task"
        )


@SAMPLERS.register("mtdnn", config=MtdnnConfig)
def mtdnn_sampler(config: MtdnnConfig) -> MtdnnSampler:
    """Every task's batches once per epoch, shuffled together (MT-DNN's mix_opt and ratio)."""
    return MtdnnSampler(config)


# --- i.i.d. samplers: every step draws its task independently ---


class IidSampler:
    """Each step's task drawn independently with probabilities from a weighting of the tasks.

    An epoch has ``steps_per_epoch`` steps, or as many as there are batches in all tasks.
    """

    def __init__(
        self,
        name: str,
        weigh: Callable[[str, int], float],
        steps_per_epoch: int | None,
    ) -> None:
        self.name = name
        self.weigh = weigh
        self.steps_per_epoch = steps_per_epoch

    def probabilities(self, task_sizes: Mapping[str, int]) -> dict[str, float]:
        """Each task's probability of being drawn at a step."""
        check_counts(task_sizes, self.name)
        weights = {task: self.weigh(task, n) if n > 0 else 0.0 for task, n in task_sizes.items()}
        if not sum(weights.values()) > 0:
            raise ValueError(
                f"sampler '{self.name}': every task with batches has weight 0 "
                f"({', '.join(f'{t} {w:g}' for t, w in weights.items())})"
            )
        return normalise(weights)

    def epoch(self, batch_counts: Mapping[str, int], rng: random.Random) -> list[str]:
        """Task name of every step of one epoch."""
        probs = self.probabilities(batch_counts)
        steps = self.steps_per_epoch or sum(batch_counts.values())
        return rng.choices(list(probs), weights=list(probs.values()), k=steps)


@dataclass(frozen=True)
class StepsConfig:
    """Steps per epoch."""

    steps_per_epoch: int | None = doc_field(
        None, "steps per epoch (null: the number of batches of all tasks)"
    )

    def __post_init__(self) -> None:
        check_steps_per_epoch(self.steps_per_epoch)


@SAMPLERS.register("proportional", config=StepsConfig)
def proportional_sampler(config: StepsConfig) -> IidSampler:
    """Each step draws a task with probability proportional to its number of batches."""
    return IidSampler("proportional", lambda task, n: float(n), config.steps_per_epoch)


@dataclass(frozen=True)
class TemperatureConfig:
    """Temperature T and steps per epoch."""

    temperature: float = doc_field(2.0, "T: 1 draws in proportion to the batches, large: uniformly")
    steps_per_epoch: int | None = doc_field(
        None, "steps per epoch (null: the number of batches of all tasks)"
    )

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise FieldError("temperature", f"must be a finite number > 0, got {self.temperature}")
        check_steps_per_epoch(self.steps_per_epoch)


@SAMPLERS.register("temperature", config=TemperatureConfig)
def temperature_sampler(config: TemperatureConfig) -> IidSampler:
    """Each step draws a task with probability proportional to n_batches ** (1 / T)."""
    exponent = 1.0 / config.temperature
    return IidSampler("temperature", lambda task, n: n**exponent, config.steps_per_epoch)


@SAMPLERS.register("uniform", config=StepsConfig)
def uniform_sampler(config: StepsConfig) -> IidSampler:
    """Each step draws a task uniformly (tasks without batches excluded)."""
    return IidSampler("uniform", lambda task, n: 1.0, config.steps_per_epoch)


@dataclass(frozen=True)
class WeightsConfig:
    """Weight of each task by name and steps per epoch."""

    weights: dict[str, float] = doc_field(
        default_factory=dict, help="weight of each task by its key (a task not named gets 0)"
    )
    steps_per_epoch: int | None = doc_field(
        None, "steps per epoch (null: the number of batches of all tasks)"
    )

    def __post_init__(self) -> None:
        for task, weight in self.weights.items():
            if not (weight >= 0 and math.isfinite(weight)):
                raise FieldError("weights", f"weight of '{task}' must be >= 0, got {weight}")
        check_steps_per_epoch(self.steps_per_epoch)


class WeightsSampler(IidSampler):
    """An i.i.d. sampler whose weights name the tasks; unknown names are an error."""

    def __init__(self, config: WeightsConfig) -> None:
        self.weights = dict(config.weights)
        super().__init__(
            "weights", lambda task, n: self.weights.get(task, 0.0), config.steps_per_epoch
        )

    def probabilities(self, task_sizes: Mapping[str, int]) -> dict[str, float]:
        """Each task's probability of being drawn at a step: its weight, normalised."""
        if not self.weights:
            raise ValueError(
                "sampler 'weights' has no weights: set sampler.weights to a mapping of task name "
                "to weight, e.g. {rte: 1.0, mrpc: 2.0}"
            )
        unknown = [task for task in self.weights if task not in task_sizes]
        if unknown:
            raise ValueError(
                f"sampler 'weights' names unknown task(s) {', '.join(map(repr, unknown))}; "
                f"the recipe's tasks are {', '.join(task_sizes)}"
            )
        return super().probabilities(task_sizes)


@SAMPLERS.register("weights", config=WeightsConfig)
def weights_sampler(config: WeightsConfig) -> WeightsSampler:
    """Each step draws a task with probability proportional to its weight in the recipe."""
    return WeightsSampler(config)
