"""The apex backend: apex's fused softmax cross-entropy, for the hard-label case (alpha = 1).

apex is never a dependency; this module is imported only when ``apex.contrib.xentropy`` is
installed and the call applies (CUDA tensors, ``alpha = 1``).
"""

from __future__ import annotations

import torch


def apex_cross_entropy(
    logits: torch.Tensor, hard_labels: torch.Tensor, ignore_index: int, reduction: str
) -> torch.Tensor:
    """Per-row cross-entropy from apex, reduced like the other backends (ignored rows: 0)."""
    from apex.contrib.xentropy import SoftmaxCrossEntropyLoss

    valid = hard_labels != ignore_index
    labels = torch.where(valid, hard_labels, torch.zeros_like(hard_labels))
    half_to_float = logits.dtype in (torch.float16, torch.bfloat16)
    losses = SoftmaxCrossEntropyLoss.apply(logits, labels, 0.0, -1, half_to_float)
    losses = torch.where(valid, losses.float(), torch.zeros_like(losses, dtype=torch.float32))
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / valid.sum().clamp(min=1)
