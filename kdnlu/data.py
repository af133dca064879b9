"""Tokenised task splits and batches: one task per batch, padded to the batch's longest row."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kdnlu.task import Example


@dataclass(frozen=True)
class EncodedSplit:
    """Token ids of every example of one split, with labels (NaN where hidden)."""

    task: str
    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    labels: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class Batch:
    """One task's rows; ``indices`` are positions in the split (to align stored teacher outputs)."""

    task: str
    indices: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    labels: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.task,
            self.indices,
            *(
                t.to(device)
                for t in (self.input_ids, self.attention_mask, self.token_type_ids, self.labels)
            ),
        )


def encode_examples(
    task: str, tokenizer: Any, examples: Sequence[Example], max_length: int
) -> EncodedSplit:
    """Tokenise texts (pairs truncated longest-first to ``max_length``)."""
    text_a = [ex.text_a for ex in examples]
    pairs = any(ex.text_b is not None for ex in examples)
    text_b = [ex.text_b or "" for ex in examples] if pairs else None
    enc = tokenizer(
        text_a,
        text_b,
        truncation="longest_first" if pairs else True,
        max_length=max_length,
        return_token_type_ids=True,
    )
    labels = np.array(
        [np.nan if ex.label is None else float(ex.label) for ex in examples], dtype=np.float64
    )
    return EncodedSplit(
        task=task,
        input_ids=[np.asarray(ids, dtype=np.int64) for ids in enc["input_ids"]],
        token_type_ids=[np.asarray(t, dtype=np.int64) for t in enc["token_type_ids"]],
        labels=labels,
        pad_id=int(tokenizer.pad_token_id or 0),
    )


def collate(split: EncodedSplit, indices: Sequence[int], label_dtype: torch.dtype) -> Batch:
    """Pad the chosen rows to their longest length."""
    width = max(len(split.input_ids[i]) for i in indices)
    n = len(indices)
    input_ids = np.full((n, width), split.pad_id, dtype=np.int64)
    token_types = np.zeros((n, width), dtype=np.int64)
    mask = np.zeros((n, width), dtype=np.int64)
    for row, i in enumerate(indices):
        length = len(split.input_ids[i])
        input_ids[row, :length] = split.input_ids[i]
        token_types[row, :length] = split.token_type_ids[i]
        mask[row, :length] = 1
    labels = torch.from_numpy(split.labels[list(indices)])
    return Batch(
        task=split.task,
        indices=torch.tensor(list(indices), dtype=torch.long),
        input_ids=torch.from_numpy(input_ids),
        attention_mask=torch.from_numpy(mask),
        token_type_ids=torch.from_numpy(token_types),
        labels=labels.to(label_dtype),
    )


def batch_indices(
    size: int, batch_size: int, shuffle: bool, rng: random.Random | None = None
) -> list[list[int]]:
    """Split ``range(size)`` into batches, shuffled first when asked."""
    order = list(range(size))
    if shuffle:
        (rng or random.Random(0)).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, size, batch_size)]


def iterate_batches(
    split: EncodedSplit, batch_size: int, label_dtype: torch.dtype
) -> Iterator[Batch]:
    """In-order batches for evaluation and prediction."""
    for indices in batch_indices(len(split), batch_size, shuffle=False):
        yield collate(split, indices, label_dtype)
