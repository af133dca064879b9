"""What a run does about NaN and infinite values beyond its loss: weights are checked after
every step, and the skip policy gives up once too many batches were skipped."""

from __future__ import annotations

import torch

from kdnlu.errors import TrainingError
from kdnlu.schema import TrainConfig


def nonfinite_weights(model: torch.nn.Module) -> list[str]:
    """The names of the weight tensors holding NaN or infinite values."""
    with torch.no_grad():
        return [name for name, p in model.named_parameters() if not bool(p.isfinite().all())]


def check_weights(model: torch.nn.Module, step: int, epoch: int, task: str) -> None:
    """Non-finite weights after a step stop the run, whatever ``on_nonfinite_loss`` says: no
    later batch could be trained or skipped back to health, nor any checkpoint of them kept."""
    broken = nonfinite_weights(model)
    if broken:
        raise TrainingError(
            f"step {step} (epoch {epoch}, a {task} batch) left NaN or infinite values in "
            f"{len(broken)} weight tensor(s), e.g. {broken[0]}; the run stops without "
            "saving them. Lower train.lr or set train.grad_clip"
        )


def check_skipped(skipped: int, total: int, cfg: TrainConfig) -> None:
    """The skip policy gives up once more than ``max_skipped_fraction`` of the run's batches
    had a non-finite loss: such a run is diverging, not meeting a few bad batches."""
    if skipped > cfg.max_skipped_fraction * total:
        raise TrainingError(
            f"{skipped} of the run's {total} batches had a non-finite loss, more than "
            f"train.max_skipped_fraction ({cfg.max_skipped_fraction}) allows: the run is "
            "diverging; lower train.lr, set train.grad_clip, or check the data"
        )
