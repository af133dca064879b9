"""The multi-task model: one shared encoder and one head per task."""

from __future__ import annotations

import torch
from torch import nn

from kdnlu.data import Batch


class MultiTaskModel(nn.Module):
    """Shared encoder + ``heads[task]``; a batch holds one task, so one head runs per step."""

    def __init__(self, encoder: nn.Module, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)
        # learned maps of intermediate-layer distillation (kdnlu.objective), training only
        self.projections = nn.ModuleDict()

    def forward(self, batch: Batch) -> torch.Tensor:
        hidden = self.encoder(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        return self.heads[batch.task](hidden, batch.attention_mask)
