"""Training losses: ``loss(logits, labels) -> scalar tensor``.

Every loss is a ``Loss`` whose ``target`` says which labels it takes:

| target | logits | labels |
| --- | --- | --- |
| ``class`` | ``[B, C]`` | class indices ``[B]`` |
| ``score`` | ``[B, 1]`` or ``[B]`` | numbers ``[B]`` |
| ``group`` | ``[B, 1]`` or ``[B]``, one score per candidate | class indices ``[B]``, in groups |
| ``token`` | ``[B, L, C]`` | class indices ``[B, L]``, negative where unlabelled |
| ``soft`` | ``[B, C]`` | probability distributions ``[B, C]`` (teacher soft targets) |
| ``hidden`` | student hidden states ``[N, H]`` | the teachers' hidden states ``[N, H]`` |
| ``attention`` | student attention rows ``[N, K]`` | the teachers' attention rows ``[N, K]`` |

A ``hidden`` loss gets the rows of one layer pair: one row per example ([CLS]) or per unpadded
token, the student's passed through the term's learned projection when the widths differ. An
``attention`` loss gets attention distributions over K key positions, one row per head and
query ([CLS], or every unpadded query).

A loss may also say how head outputs become class predictions (``decode``): the ranking loss
scores candidates against each other, so its predictions depend on the candidate groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from kdnlu.config import FieldError, check_fraction
from kdnlu.kernels import soft_cross_entropy as fused_soft_cross_entropy
from kdnlu.loss import Decoder, Loss
from kdnlu.registry import LOSSES, NoConfig


def shape_of(tensor: torch.Tensor) -> str:
    return "[" + ", ".join(str(n) for n in tensor.shape) + "]"


def one_score_per_row(logits: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    """``[B, 1]`` or ``[B]`` logits as ``[B]`` scores; any other shape raises."""
    scores = logits.squeeze(-1) if logits.ndim == 2 and logits.shape[1] == 1 else logits
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(
            f"{loss} loss expects one score per row (logits [B, 1] or [B]) and labels [B]; got "
            f"logits {shape_of(logits)} and labels {shape_of(labels)}"
        )
    return scores


@dataclass(frozen=True)
class CrossEntropyConfig:
    """Optional label smoothing (of the row-level and the token-level cross-entropy)."""

    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        check_fraction("label_smoothing", self.label_smoothing)


@LOSSES.register("cross_entropy", target="class", config=CrossEntropyConfig)
def cross_entropy(config: CrossEntropyConfig) -> Loss:
    """Cross-entropy against gold class indices (mean over the batch)."""

    def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels.long(), label_smoothing=config.label_smoothing)

    return Loss("class", cross_entropy_loss)


@LOSSES.register("token_cross_entropy", target="token", config=CrossEntropyConfig)
def token_cross_entropy(config: CrossEntropyConfig) -> Loss:
    """Cross-entropy per token (mean over labelled tokens), for token heads; tokens labelled
    with a negative number (padding, later sub-words, hidden tags) are ignored."""

    def token_cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 3 or labels.shape != logits.shape[:2]:
            raise ValueError(
                f"token_cross_entropy expects logits [B, L, C] and labels [B, L]; got logits "
                f"{shape_of(logits)} and labels {shape_of(labels)}"
            )
        flat = labels.reshape(-1).long()
        flat = flat.masked_fill(flat < 0, -100)
        # rows of [B * L, C]: the 1-D path, which has deterministic GPU kernels
        total = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            flat,
            ignore_index=-100,
            label_smoothing=config.label_smoothing,
            reduction="sum",
        )
        # a batch with no labelled token gives 0, not the NaN of an empty mean
        return total / (flat >= 0).sum().clamp(min=1)

    return Loss("token", token_cross_entropy_loss)


@LOSSES.register("mse", target="score")
def mse(config: NoConfig) -> Loss:
    """Mean squared error of one score per row against numeric labels (MT-DNN's STS-B loss)."""

    def mse_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        scores = one_score_per_row(logits, labels, "mse")
        return F.mse_loss(scores, labels.to(scores.dtype))

    return Loss("score", mse_loss)


@dataclass(frozen=True)
class RankingConfig:
    """Candidates per group, the class index of the right candidate (QNLI: 0, "entailment"),
    and gamma, the sharpness of the softmax over the candidates' relevance scores."""

    group_size: int = 2
    positive_label: int = 0
    gamma: float = 5.0

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise FieldError("group_size", f"must be at least 2, got {self.group_size}")
        if self.positive_label not in (0, 1):
            raise FieldError(
                "positive_label",
                f"must be 0 or 1 (a binary task's class), got {self.positive_label}",
            )
        if not self.gamma > 0:
            raise FieldError("gamma", f"must be positive, got {self.gamma}")


def rank_decode(positive_label: int) -> Decoder:
    """Predictions from relevance scores: in a group of several candidates the best-scored one
    is the positive class and the others the negative class; a candidate alone in its group is
    positive when its relevance (the sigmoid of its score) is above one half."""

    def decode(outputs: np.ndarray, groups: np.ndarray) -> np.ndarray:
        scores = outputs.reshape(len(outputs), -1)[:, 0]
        positive = scores > 0
        count = np.bincount(groups)
        best = np.full(len(count), -np.inf)
        np.maximum.at(best, groups, scores)
        first_best = np.full(len(count), len(scores))
        winners = np.flatnonzero(scores == best[groups])
        np.minimum.at(first_best, groups[winners], winners)  # one winner per group on ties
        shared = count[groups] > 1
        positive[shared] = first_best[groups[shared]] == np.flatnonzero(shared)
        return np.where(positive, positive_label, 1 - positive_label)

    return decode


def group_cross_entropy(
    scores: torch.Tensor, labels: torch.Tensor, size: int, positive_label: int, name: str
) -> torch.Tensor:
    """Cross-entropy of a softmax over each group of ``size`` consecutive rows' scores against
    the group's one row labelled ``positive_label``."""
    rows = scores.shape[0]
    if rows == 0 or rows % size:
        raise ValueError(
            f"{name} loss: a batch of {rows} rows is not a whole number of groups of "
            f"group_size {size}; each group's candidates must be consecutive rows, so the "
            f"batch size must be a multiple of {size}"
        )
    positive = (labels == positive_label).view(-1, size)
    positives = positive.sum(1)
    wrong = (positives != 1).nonzero().flatten()
    if wrong.numel():
        group = int(wrong[0])
        found = int(positives[group])
        what = "no positive candidate" if found == 0 else f"{found} positive candidates"
        raise ValueError(
            f"{name} loss: group {group} (rows {group * size} to {group * size + size - 1}) "
            f"has {what}; each group needs exactly one row labelled {positive_label}"
        )
    return F.cross_entropy(scores.view(-1, size), positive.int().argmax(1))


@LOSSES.register("ranking", target="group", config=RankingConfig)
def ranking(config: RankingConfig) -> Loss:
    """Softmax over each group's gamma-scaled relevance scores (sigmoid of the head's score),
    NLL of the right candidate: MT-DNN's QNLI loss. Needs a head with one output per row."""
    size = config.group_size

    def relevance(outputs: torch.Tensor) -> torch.Tensor:
        return config.gamma * torch.sigmoid(outputs)

    def ranking_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        scores = relevance(one_score_per_row(logits, labels, "ranking"))
        return group_cross_entropy(scores, labels, size, config.positive_label, "ranking")

    return Loss(
        "group",
        ranking_loss,
        decode=rank_decode(config.positive_label),
        group_size=size,
        positive_label=config.positive_label,
        scores=relevance,
    )


@dataclass(frozen=True)
class MultipleChoiceConfig:
    """Candidates per question, and the class index that marks the right one."""

    group_size: int = 2
    positive_label: int = 1

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise FieldError("group_size", f"must be at least 2, got {self.group_size}")
        if self.positive_label not in (0, 1):
            raise FieldError(
                "positive_label", f"must be 0 or 1 (a binary class), got {self.positive_label}"
            )


@LOSSES.register("multiple_choice", target="group", config=MultipleChoiceConfig)
def multiple_choice(config: MultipleChoiceConfig) -> Loss:
    """Softmax over each question's candidate scores (one head output per candidate), NLL of
    the right one; predicts the best-scored candidate of each question."""

    def multiple_choice_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        scores = one_score_per_row(logits, labels, "multiple_choice")
        name = "multiple_choice"
        return group_cross_entropy(scores, labels, config.group_size, config.positive_label, name)

    return Loss(
        "group",
        multiple_choice_loss,
        decode=rank_decode(config.positive_label),
        group_size=config.group_size,
        positive_label=config.positive_label,
    )


@LOSSES.register("soft_cross_entropy", target="soft")
def soft_cross_entropy_loss(config: NoConfig) -> Loss:
    """Cross-entropy against probability targets, mean over rows (the distillation soft loss;
    runs on the fused kernels of kdnlu.kernels, straight from teacher logits)."""

    def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 2 or targets.shape != logits.shape:
            raise ValueError(
                f"soft_cross_entropy expects logits [B, C] and targets [B, C]; got logits "
                f"{shape_of(logits)} and targets {shape_of(targets)}"
            )
        return fused_soft_cross_entropy(logits, target_probs=targets)

    def from_teacher_logits(
        logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, backend: str
    ) -> torch.Tensor:
        return fused_soft_cross_entropy(
            logits,
            teacher_logits=teacher_logits,
            temperature=temperature,
            backend=backend,  # type: ignore[arg-type]
        )

    return Loss("soft", soft_cross_entropy, from_teacher_logits=from_teacher_logits)


def check_state_pair(student: torch.Tensor, teacher: torch.Tensor, loss: str) -> None:
    if student.ndim != 2 or student.shape != teacher.shape:
        raise ValueError(
            f"{loss} expects student and teacher states [N, H] of one shape; got "
            f"{shape_of(student)} and {shape_of(teacher)}"
        )


@LOSSES.register("hidden_mse", target="hidden")
def hidden_mse(config: NoConfig) -> Loss:
    """Mean squared error between student and teacher hidden states, mean over rows and
    dimensions (TinyBERT's hidden-state loss)."""

    def hidden_mse_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        check_state_pair(student, teacher, "hidden_mse")
        return F.mse_loss(student, teacher.to(student.dtype))

    return Loss("hidden", hidden_mse_loss)


@LOSSES.register("hidden_cosine", target="hidden")
def hidden_cosine(config: NoConfig) -> Loss:
    """One minus the cosine similarity of student and teacher hidden states, mean over rows
    (DistilBERT's cosine embedding loss): matches directions, not norms."""

    def hidden_cosine_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        check_state_pair(student, teacher, "hidden_cosine")
        return (1 - F.cosine_similarity(student, teacher.to(student.dtype), dim=-1)).mean()

    return Loss("hidden", hidden_cosine_loss)


@LOSSES.register("attention_kl", target="attention")
def attention_kl(config: NoConfig) -> Loss:
    """KL(teacher || student) of attention distributions over the keys, mean over rows (one
    row per head and query; MiniLM's attention transfer)."""

    def attention_kl_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        check_state_pair(student, teacher, "attention_kl")
        teacher = teacher.to(student.dtype)
        log_student = torch.log(student.clamp_min(1e-12))
        kl = torch.xlogy(teacher, teacher) - teacher * log_student
        return kl.sum(-1).mean()

    return Loss("attention", attention_kl_loss)
