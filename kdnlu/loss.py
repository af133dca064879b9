"""The loss contract: what every LOSSES plugin returns (see ``plugins/losses.py``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

LOSS_TARGETS = ("class", "score", "group", "token", "soft")


Decoder = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Loss:
    """A training loss ``loss(logits, labels) -> scalar`` tagged with the labels it takes.

    ``decode(outputs, groups) -> class indices`` is given by losses whose predictions are not
    simply the argmax of each row (``groups`` numbers each row's candidate group).
    ``group_size`` and ``positive_label`` are set for ``group`` targets: the trainer batches
    whole groups of ``group_size`` rows with one ``positive_label`` row each; ``scores`` turns
    head outputs ``[B]`` into the scores its softmax over each group takes (as they are when
    None), which distillation uses for the teachers' distribution over a group's candidates.
    """

    def __init__(
        self,
        target: str,
        fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        decode: Decoder | None = None,
        group_size: int | None = None,
        positive_label: int | None = None,
        scores: Callable[[torch.Tensor], torch.Tensor] | None = None,
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

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.fn(logits, labels)

    def __repr__(self) -> str:
        return f"Loss(target={self.target!r}, fn={getattr(self.fn, '__name__', self.fn)})"
