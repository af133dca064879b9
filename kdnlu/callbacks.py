"""Hook points of the training loop, for features that must not edit the loop itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdnlu.data import Batch


@dataclass
class TrainState:
    """What the loop knows at a hook: position, losses so far, best score, stop request."""

    run_dir: Path
    total_steps: int
    step: int = 0
    epoch: int = 0
    best_score: float | None = None
    best_step: int | None = None
    evaluations_without_improvement: int = 0
    skipped_batches: int = 0  # batches left out for a non-finite loss (train.on_nonfinite_loss)
    should_stop: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    scalars: dict[str, list[float]] = field(default_factory=dict)
    window_scalars: dict[str, list[float]] = field(default_factory=dict)

    def log_scalar(self, name: str, value: float) -> None:
        """Record a training value; the trainer writes its means to tensorboard (``train/NAME``,
        every ``log_every`` steps) and to metrics.jsonl (``train_scalars``, at each evaluation)."""
        self.scalars.setdefault(name, []).append(value)
        self.window_scalars.setdefault(name, []).append(value)


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

    def on_evaluate(self, state: TrainState, results: dict[str, dict[str, float]]) -> None:
        """After each evaluation, with ``{eval name: {metric: value}}``; may set should_stop."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last step and evaluation."""
