"""The stochastic answer network (SAN), MT-DNN's multi-step head for pairwise classification.

A state vector starts from the [CLS] vector (or a self-attentive summary of the tokens). Each of
``steps`` reasoning steps attends over the token memory with a bilinear attention led by the
state, updates the state with a GRU cell, and predicts class scores from
``[state; x; |state - x|; state * x]``, ``x`` being the attended summary. The answer averages
the steps' class *probabilities*. During training, stochastic prediction dropout removes whole
steps from that average (per example, always keeping at least one); evaluation uses every step.

The head returns the **log** of the averaged probabilities. They are valid logits:
``softmax(output)`` gives back the averaged probabilities exactly, so ``cross_entropy`` on the
output is the negative log-likelihood of the averaged prediction, and argmax, soft-target
distillation and metrics treat it like any other classifier's output.

Unlike the MT-DNN code, the memory is every unpadded token of the input (the head contract does
not separate premise from hypothesis), and dropped steps are left out of the average instead of
being zeroed and rescaled, so the output is always a normalised distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from kdnlu.config import FieldError, check_fraction
from kdnlu.registry import HEADS
from kdnlu_plugins.heads import output_layer


@dataclass(frozen=True)
class SanConfig:
    """Reasoning steps, dropout, stochastic prediction dropout and how the state starts."""

    steps: int = 5
    dropout: float = 0.1
    prediction_dropout: float = 0.1
    initial_state: Literal["cls", "self_attention"] = "cls"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise FieldError("steps", f"must be at least 1, got {self.steps}")
        check_fraction("dropout", self.dropout)
        check_fraction("prediction_dropout", self.prediction_dropout)


def masked_softmax(scores: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis of ``scores`` [B, L] where ``keep`` [B, L] is True."""
    scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    return scores.softmax(-1)


def prediction_keep_mask(
    batch: int, steps: int, drop: float, device: torch.device | None = None
) -> torch.Tensor:
    """Which steps' predictions each example keeps, [batch, steps] bool; at least one per row.

    Each step is dropped with probability ``drop``; one random step per row is always kept.
    """
    keep = torch.rand(batch, steps, device=device) >= drop
    always = torch.randint(steps, (batch,), device=device)
    keep[torch.arange(batch, device=device), always] = True
    return keep


def average_step_probabilities(step_logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """log(mean of softmax(step_logits) over the kept steps): [B, K, C] and [B, K] -> [B, C]."""
    log_probs = step_logits.float().log_softmax(-1)
    log_probs = log_probs.masked_fill(~keep.unsqueeze(-1), -math.inf)
    kept = keep.sum(1, keepdim=True).to(log_probs.dtype)
    return log_probs.logsumexp(1) - kept.log()


class SanHead(nn.Module):
    """Stochastic answer network over the encoder's token vectors."""

    level = "sequence"

    def __init__(self, config: SanConfig, hidden_size: int, num_outputs: int) -> None:
        super().__init__()
        if num_outputs < 2:
            raise ValueError(
                f"the san head predicts class probabilities and needs at least 2 outputs, got "
                f"{num_outputs}; use the 'regression' head for a score"
            )
        self.steps = config.steps
        self.prediction_dropout = config.prediction_dropout
        self.dropout = nn.Dropout(config.dropout)
        self.summary = (
            nn.Linear(hidden_size, 1) if config.initial_state == "self_attention" else None
        )
        self.attention = nn.Linear(hidden_size, hidden_size, bias=False)
        self.rnn = nn.GRUCell(hidden_size, hidden_size)
        self.out = output_layer(4 * hidden_size, num_outputs)

    def initial_state(self, memory: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The [CLS] vector, or the self-attentive summary of the unpadded tokens: [B, H]."""
        if self.summary is None:
            return memory[:, 0]
        weights = masked_softmax(self.summary(memory).squeeze(-1), keep)
        return torch.einsum("bl,blh->bh", weights, memory)

    def step_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Class scores of every reasoning step: [B, L, H] -> [B, steps, num_outputs]."""
        keep = attention_mask.bool()
        memory = self.dropout(hidden)
        state = self.initial_state(memory, keep)
        logits = []
        for _ in range(self.steps):
            # bilinear attention: score_j = memory_j . (W state)
            scores = torch.einsum("blh,bh->bl", memory, self.attention(state))
            x = torch.einsum("bl,blh->bh", masked_softmax(scores, keep), memory)
            state = self.rnn(x, self.dropout(state))
            features = torch.cat([state, x, (state - x).abs(), state * x], dim=-1)
            logits.append(self.out(self.dropout(features)))
        return torch.stack(logits, dim=1)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Log of the averaged step probabilities, [B, num_outputs] (see the module docstring)."""
        step_logits = self.step_logits(hidden, attention_mask)
        batch = step_logits.shape[0]
        if self.training and self.prediction_dropout > 0:
            keep = prediction_keep_mask(
                batch, self.steps, self.prediction_dropout, step_logits.device
            )
        else:
            keep = torch.ones(batch, self.steps, dtype=torch.bool, device=step_logits.device)
        return average_step_probabilities(step_logits, keep)


@HEADS.register("san", config=SanConfig)
def san_head(config: SanConfig, hidden_size: int, num_outputs: int) -> SanHead:
    """Stochastic answer network: K attention/GRU steps, averaged (MT-DNN's pairwise head)."""
    return SanHead(config, hidden_size, num_outputs)
