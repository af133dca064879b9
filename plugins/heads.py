"""Linear task heads: classification, regression and ranking over one vector of the sequence
([CLS], the mean of the tokens, or the pretrained pooler's output), and token labelling.

Every head is registered with its ``level`` (``HEADS.register(name, level=...)``; default
``"sequence"``): ``"sequence"`` heads return ``[B, num_outputs]``, ``"token"`` heads return
``[B, L, num_outputs]``; the modules carry the same ``level`` attribute. The stochastic answer
network is in ``san.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from kdnlu.config import check_fraction
from kdnlu.registry import HEADS


@dataclass(frozen=True)
class DropoutConfig:
    """Dropout before the output layer."""

    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_fraction("dropout", self.dropout)


@dataclass(frozen=True)
class SequenceHeadConfig:
    """Dropout before the output layer, and the vector the head reads: ``cls`` (the first
    token's), ``mean`` (the average over the unpadded tokens, as sentence-embedding checkpoints
    such as MiniLM were trained), or ``pooler`` (tanh of a dense layer over [CLS], started from
    the checkpoint's pretrained pooler where it has one, as BERT's classifiers do)."""

    dropout: float = 0.1
    pooling: Literal["cls", "mean", "pooler"] = "cls"

    def __post_init__(self) -> None:
        check_fraction("dropout", self.dropout)


class Pooler(nn.Module):
    """BERT's pooler: tanh(W h_[CLS] + b). The trainer loads the checkpoint's weights into it."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        nn.init.normal_(self.dense.weight, std=0.02)
        nn.init.zeros_(self.dense.bias)

    def forward(self, first_token: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(first_token))


def mean_over_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, L, H] -> [B, H]: the average of the vectors whose mask is 1."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def output_layer(hidden_size: int, num_outputs: int) -> nn.Linear:
    """A linear output layer with BERT's initialisation (normal, std 0.02; zero bias)."""
    layer = nn.Linear(hidden_size, num_outputs)
    nn.init.normal_(layer.weight, std=0.02)
    nn.init.zeros_(layer.bias)
    return layer


class ClsHead(nn.Module):
    """Dropout and a linear layer over one vector of the sequence (see SequenceHeadConfig)."""

    level = "sequence"

    def __init__(self, config: SequenceHeadConfig, hidden_size: int, num_outputs: int) -> None:
        super().__init__()
        self.pooling = config.pooling
        self.pooler = Pooler(hidden_size) if config.pooling == "pooler" else None
        self.dropout = nn.Dropout(config.dropout)
        self.out = output_layer(hidden_size, num_outputs)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "mean":
            return mean_over_tokens(hidden, attention_mask)
        if self.pooler is not None:
            return self.pooler(hidden[:, 0])
        return hidden[:, 0]

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.pool(hidden, attention_mask)))


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


@HEADS.register("classification", config=SequenceHeadConfig)
def classification_head(config: SequenceHeadConfig, hidden_size: int, num_outputs: int) -> ClsHead:
    """Linear layer over the [CLS] (or mean, or pooler) vector: MT-DNN's classifier."""
    return ClsHead(config, hidden_size, num_outputs)


@HEADS.register("regression", config=SequenceHeadConfig)
def regression_head(config: SequenceHeadConfig, hidden_size: int, num_outputs: int) -> ClsHead:
    """Linear layer over the sequence vector giving a score ([B, 1]; MT-DNN's STS-B head)."""
    return ClsHead(config, hidden_size, num_outputs)


@HEADS.register("token", level="token", config=DropoutConfig)
def token_head(config: DropoutConfig, hidden_size: int, num_outputs: int) -> TokenHead:
    """Linear layer over every token vector, for token labelling ([B, L, num_outputs])."""
    return TokenHead(config, hidden_size, num_outputs)


@HEADS.register("ranking", config=SequenceHeadConfig)
def ranking_head(config: SequenceHeadConfig, hidden_size: int, num_outputs: int) -> ClsHead:
    """Linear layer over the [CLS] vector scoring each candidate (MT-DNN's QNLI head); with the
    ranking loss the trainer gives every head one output, the candidate's relevance score."""
    return ClsHead(config, hidden_size, num_outputs)
