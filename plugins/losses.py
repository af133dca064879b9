"""Training losses: ``loss(logits, labels) -> scalar tensor``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdnlu.config import check_fraction
from kdnlu.registry import LOSSES


@dataclass(frozen=True)
class CrossEntropyConfig:
    """Optional label smoothing."""

    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        check_fraction("label_smoothing", self.label_smoothing)


@LOSSES.register("cross_entropy", config=CrossEntropyConfig)
def cross_entropy(
    config: CrossEntropyConfig,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy against gold class indices (mean over the batch)."""

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels.long(), label_smoothing=config.label_smoothing)

    return loss
