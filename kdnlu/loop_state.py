"""Everything the training loop carries from one step to the next, in one dataclass.

``checkpoints/last`` saves it with ``dataclasses.asdict`` and a resume restores it with
``LoopState(**saved)``; with the model, optimizer, scheduler, scaler, generators and the
batcher's and task schedule's ``state_dict()``, that is all a run needs to go on as if it had
never stopped. A field added here is saved and restored with no other change.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoopState:
    """Where the loop is, what it has measured, and what it decided."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # the epoch being trained (0 before the first)
    # the epoch's task order and the next position in it; None: epoch ``epoch`` is done (or
    # none began) and the loop goes on with the next one
    order: list[str] | None = None
    position: int = 0
    best_score: float | None = None
    best_step: int | None = None
    evaluations_without_improvement: int = 0
    skipped_batches: int = 0  # batches left out for a non-finite loss (train.on_nonfinite_loss)
    should_stop: bool = False
    evaluated_at: int = -1  # the step of the last evaluation
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # of that evaluation
    epoch_losses: list[float] = field(default_factory=list)  # the mean loss of each epoch
    task_losses: dict[str, list[float]] = field(default_factory=dict)  # this epoch's, per task
    window: dict[str, list[float]] = field(default_factory=dict)  # since the last evaluation
    logged: dict[str, list[float]] = field(default_factory=dict)  # since the last scalar write
    scalars: dict[str, list[float]] = field(default_factory=dict)  # callbacks' values, same
    window_scalars: dict[str, list[float]] = field(default_factory=dict)  # and since evaluation
    seconds: float = 0.0  # training time before this process (a resumed run's earlier part)

    def add_loss(self, task: str, value: float) -> None:
        """One batch's loss, into the epoch's, the evaluation window's and the log's means."""
        for losses in (self.task_losses, self.window, self.logged):
            losses.setdefault(task, []).append(value)

    def log_scalar(self, name: str, value: float) -> None:
        self.scalars.setdefault(name, []).append(value)
        self.window_scalars.setdefault(name, []).append(value)
