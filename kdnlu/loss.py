"""The loss contract: what every LOSSES plugin returns (see ``plugins/losses.py``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from kdnlu.registry import LOSS_TARGETS

__all__ = ["LOSS_TARGETS", "Decoder", "Loss", "TeacherLogitsLoss"]


Decoder = Callable[[np.ndarray, np.ndarray], np.ndarray]
TeacherLogitsLoss = Callable[[torch.Tensor, torch.Tensor, float, str], torch.Tensor]


class Loss:
    """A training loss ``loss(logits, labels) -> scalar`` tagged with the labels it takes.

    ``decode(outputs, groups) -> class indices`` is given by losses whose predictions are not
    simply the argmax of each row (``groups`` numbers each row's candidate group).
    ``group_size`` and ``positive_label`` are set for ``group`` targets: the trainer batches
    whole groups of ``group_size`` rows with one ``positive_label`` row each; ``scores`` turns
    head outputs ``[B]`` into the scores its softmax over each group takes (as they are when
    None), which distillation uses for the teachers' distribution over a group's candidates.
    A ``soft`` loss may give ``from_teacher_logits(logits, teacher_logits, temperature,
    backend)``: its distillation loss straight from the teachers' logits ``[B, teachers, C]``
    (target: the mean of ``softmax(teacher / T)``; ``T^2`` included), as a fused kernel does;
    without it the distiller computes that target and calls the loss on ``logits / T``.
    """

    def __init__(
        self,
        target: str,
        fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        decode: Decoder | None = None,
        group_size: int | None = None,
        positive_label: int | None = None,
        scores: Callable[[torch.Tensor], torch.Tensor] | None = None,
        from_teacher_logits: TeacherLogitsLoss | None = None,
    ):
        if target not in LOSS_TARGETS:
            raise ValueError(
                f"loss target must be one of {', '.join(LOSS_TARGETS)}, got {target!r}"
            )
        if target == "group" and (group_size is None or positive_label is None):
            raise ValueError("a loss with target 'group' needs group_size and positive_label")
        self.target = target
        self.fn = fn
        self.decode = decode
        self.group_size = group_size
        self.positive_label = positive_label
        self.scores = scores
        self.from_teacher_logits = from_teacher_logits

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.fn(logits, labels)

    def __repr__(self) -> str:
        return f"Loss(target={self.target!r}, fn={getattr(self.fn, '__name__', self.fn)})"
