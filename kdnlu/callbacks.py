"""Hook points of the training loop, for features that must not edit the loop itself.

kdnlu's own parts of a run (the progress bar, the metrics and TensorBoard reporter, early
stopping and the checkpointer, see ``kdnlu.train_callbacks``) are callbacks too. At the end of a
step yours run first; at an evaluation kdnlu's run first, so that your ``on_evaluate`` sees the
evaluation's record written and its checkpoints saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdnlu.data import Batch
from kdnlu.loop_state import LoopState


@dataclass
class Evaluation:
    """The latest evaluation as the loop's own callbacks read it (its metrics are
    ``LoopState.metrics``)."""

    score: float | None  # train.best_metric's value; None without an evaluation split
    improved: bool
    epoch_loss: float | None  # the epoch's mean training loss at an end-of-epoch evaluation


@dataclass
class TrainState:
    """What the loop knows at a hook: position, losses so far, best score, stop request.

    ``loop`` is the resumable state (``kdnlu.loop_state.LoopState``); the properties below read
    it, and a callback may set ``should_stop``.
    """

    run_dir: Path
    total_steps: int
    loop: LoopState = field(default_factory=LoopState)
    extra: dict[str, Any] = field(default_factory=dict)
    evaluation: Evaluation | None = None
    started: float = 0.0  # time.time() at which this run (with its earlier parts) began

    @property
    def step(self) -> int:
        return self.loop.step

    @property
    def epoch(self) -> int:
        return self.loop.epoch

    @property
    def best_score(self) -> float | None:
        return self.loop.best_score

    @property
    def best_step(self) -> int | None:
        return self.loop.best_step

    @property
    def evaluations_without_improvement(self) -> int:
        return self.loop.evaluations_without_improvement

    @property
    def skipped_batches(self) -> int:
        return self.loop.skipped_batches

    @property
    def should_stop(self) -> bool:
        return self.loop.should_stop

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self.loop.should_stop = value

    @property
    def scalars(self) -> dict[str, list[float]]:
        return self.loop.scalars

    @property
    def window_scalars(self) -> dict[str, list[float]]:
        return self.loop.window_scalars

    def log_scalar(self, name: str, value: float) -> None:
        """Record a training value; the trainer writes its means to tensorboard (``train/NAME``,
        every ``log_every`` steps) and to metrics.jsonl (``train_scalars``, at each evaluation)."""
        self.loop.log_scalar(name, value)


class Callback:
    """Override any hook; each is called by the trainer at the point its name says."""

    def on_train_start(self, state: TrainState, model: torch.nn.Module) -> None:
        """After the model, data and optimiser are built, before the first step."""

    def on_loss(
        self, state: TrainState, batch: Batch, logits: torch.Tensor, loss: torch.Tensor
    ) -> torch.Tensor:
        """May return a replacement loss for this batch (e.g. adding a distillation term)."""
        return loss

    def on_step_end(self, state: TrainState, task: str, loss: float) -> None:
        """After an optimiser step (every ``grad_accumulation`` batches)."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After an epoch's last step, before its evaluation."""

    def on_evaluate(self, state: TrainState, results: dict[str, dict[str, float]]) -> None:
        """After each evaluation, with ``{eval name: {metric: value}}``; may set should_stop."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last step and evaluation."""
