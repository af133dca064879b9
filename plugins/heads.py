"""Task heads: map the encoder's hidden states to one task's outputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kdnlu.config import check_fraction
from kdnlu.registry import HEADS


@dataclass(frozen=True)
class ClassificationConfig:
    """Dropout before the output layer."""

    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_fraction("dropout", self.dropout)


class ClassificationHead(nn.Module):
    """Dropout and a linear layer over the first ([CLS]) token."""

    def __init__(self, config: ClassificationConfig, hidden_size: int, num_outputs: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(hidden_size, num_outputs)
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(hidden[:, 0]))


@HEADS.register("classification", config=ClassificationConfig)
def classification_head(
    config: ClassificationConfig, hidden_size: int, num_outputs: int
) -> ClassificationHead:
    """Linear layer over the [CLS] vector (MT-DNN's single-sentence and pairwise classifier)."""
    return ClassificationHead(config, hidden_size, num_outputs)
