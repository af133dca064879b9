"""The plain reference every backend is tested against: full softmaxes, then sums."""

from __future__ import annotations

import torch


def reference_soft_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    temperature: float = 1.0,
    hard_labels: torch.Tensor | None = None,
    alpha: float = 0.0,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """``target`` is dense probabilities ``[N, V]`` (build them from teacher logits or top-k
    before calling). Computed in float32 (float64 inputs stay float64)."""
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    z = logits.to(dtype)
    p = target.to(dtype)
    log_q = torch.log_softmax(z / temperature, -1)
    loss = (1 - alpha) * temperature**2 * -(p * log_q).sum(-1)
    valid = torch.ones(len(z), dtype=torch.bool, device=z.device)
    if hard_labels is not None:
        valid = hard_labels != ignore_index
        safe = torch.where(valid, hard_labels, torch.zeros_like(hard_labels))
        hard = -torch.log_softmax(z, -1).gather(1, safe[:, None])[:, 0]
        loss = loss + alpha * hard
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum().clamp(min=1)


def dense_target(
    vocab: int,
    target_probs: torch.Tensor | None = None,
    teacher_logits: torch.Tensor | None = None,
    topk_ids: torch.Tensor | None = None,
    topk_probs: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The dense ``[N, V]`` float32 target of any target form (for the reference)."""
    if target_probs is not None:
        return target_probs.float()
    if teacher_logits is not None:
        return torch.softmax(teacher_logits.float() / temperature, -1).mean(1)
    assert topk_ids is not None and topk_probs is not None
    dense = torch.zeros(len(topk_ids), vocab, device=topk_ids.device)
    return dense.scatter_add_(1, topk_ids.long(), topk_probs.float())
