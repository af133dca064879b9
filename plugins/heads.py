"""Linear task heads: classification and regression over [CLS], and token labelling.

Every head module has a ``level`` attribute: ``"sequence"`` heads return ``[B, num_outputs]``,
``"token"`` heads return ``[B, L, num_outputs]``. The stochastic answer network is in ``san.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kdnlu.config import check_fraction
from kdnlu.registry import HEADS

HEAD_LEVELS = ("sequence", "token")


@dataclass(frozen=True)
class DropoutConfig:
    """Dropout before the output layer."""

    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_fraction("dropout", self.dropout)


def output_layer(hidden_size: int, num_outputs: int) -> nn.Linear:
    """A linear output layer with BERT's initialisation (normal, std 0.02; zero bias)."""
    layer = nn.Linear(hidden_size, num_outputs)
    nn.init.normal_(layer.weight, std=0.02)
    nn.init.zeros_(layer.bias)
    return layer


class ClsHead(nn.Module):
    """Dropout and a linear layer over the first ([CLS]) token."""

    level = "sequence"

    def __init__(self, config: DropoutConfig, hidden_size: int, num_outputs: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.out = output_layer(hidden_size, num_outputs)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(hidden[:, 0]))


class TokenHead(nn.Module):
    """Dropout and a linear layer applied to every token."""

    level = "token"

    def __init__(self, config: DropoutConfig, hidden_size: int, num_outputs: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.out = output_layer(hidden_size, num_outputs)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # padded positions get outputs too; the token loss ignores them by their label
        return self.out(self.dropout(hidden))


@HEADS.register("classification", config=DropoutConfig)
def classification_head(config: DropoutConfig, hidden_size: int, num_outputs: int) -> ClsHead:
    """Linear layer over the [CLS] vector (MT-DNN's single-sentence and pairwise classifier)."""
    return ClsHead(config, hidden_size, num_outputs)


@HEADS.register("regression", config=DropoutConfig)
def regression_head(config: DropoutConfig, hidden_size: int, num_outputs: int) -> ClsHead:
    """Linear layer over the [CLS] vector giving a score ([B, 1]; MT-DNN's STS-B head)."""
    return ClsHead(config, hidden_size, num_outputs)


@HEADS.register("token", config=DropoutConfig)
def token_head(config: DropoutConfig, hidden_size: int, num_outputs: int) -> TokenHead:
    """Linear layer over every token vector, for token labelling ([B, L, num_outputs])."""
    return TokenHead(config, hidden_size, num_outputs)


@HEADS.register("ranking", config=DropoutConfig)
def ranking_head(config: DropoutConfig, hidden_size: int, num_outputs: int) -> ClsHead:
    """Linear layer over the [CLS] vector scoring each candidate (MT-DNN's QNLI head); with the
    ranking loss the trainer gives every head one output, the candidate's relevance score."""
    return ClsHead(config, hidden_size, num_outputs)
