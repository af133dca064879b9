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
    """Token ids of one split stored flat (row ``i`` is ``ids[offsets[i]:offsets[i+1]]``).

    The arrays may be numpy memmaps of the token cache: rows are read only when batched.
    Labels are NaN where hidden (test splits). ``groups`` numbers the candidate groups: rows that
    share their first text (a question and its candidate answers) share a group number, the
    groups numbered in order of first appearance; None means every row is alone.
    """

    task: str
    ids: np.ndarray
    type_ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    pad_id: int
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def head(self, limit: int | None) -> EncodedSplit:
        """The first ``limit`` rows (all rows when None)."""
        if limit is None or limit >= len(self):
            return self
        end = int(self.offsets[limit])
        return EncodedSplit(
            self.task,
            self.ids[:end],
            self.type_ids[:end],
            self.offsets[: limit + 1],
            self.labels[:limit],
            self.pad_id,
            None if self.groups is None else self.groups[:limit],
        )

    def group_ids(self) -> np.ndarray:
        """The group number of every row (``arange`` when the split has no groups)."""
        if self.groups is None:
            return np.arange(len(self), dtype=np.int64)
        return np.asarray(self.groups, dtype=np.int64)


def group_numbers(texts: Sequence[str]) -> np.ndarray:
    """Equal texts get equal numbers, numbered in order of first appearance."""
    numbers: dict[str, int] = {}
    return np.fromiter(
        (numbers.setdefault(t, len(numbers)) for t in texts), dtype=np.int64, count=len(texts)
    )


def ranking_groups(
    split: EncodedSplit, group_size: int, positive_label: int
) -> tuple[np.ndarray, int]:
    """The candidate groups a ranking loss can train on, as a ``[G, group_size]`` array of row
    indices, and the number of rows left out.

    A group qualifies when it has exactly ``group_size`` rows and exactly one of them is labelled
    ``positive_label``; rows of other groups (a question with one candidate, say) cannot be
    ranked. Groups keep their first-appearance order, rows their file order.
    """
    groups = split.group_ids()
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    positive = split.labels[order] == positive_label
    positives = np.add.reduceat(positive.astype(np.int64), starts) if len(order) else sizes
    keep = (sizes == group_size) & (positives == 1)
    rows = order[starts[keep][:, None] + np.arange(group_size)]
    return rows, int(len(split) - keep.sum() * group_size)


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
    lengths = np.fromiter(
        (len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(examples)
    )
    offsets = np.zeros(len(examples) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = [t for ids in enc["input_ids"] for t in ids]
    flat_types = [t for types in enc["token_type_ids"] for t in types]
    labels = np.array(
        [np.nan if ex.label is None else float(ex.label) for ex in examples], dtype=np.float64
    )
    return EncodedSplit(
        task=task,
        ids=np.asarray(flat, dtype=np.int32),
        type_ids=np.asarray(flat_types, dtype=np.int8),
        offsets=offsets,
        labels=labels,
        pad_id=int(tokenizer.pad_token_id or 0),
        groups=group_numbers(text_a),
    )


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
        move = {"non_blocking": True} if str(device).startswith("cuda") else {}
        return Batch(
            self.task,
            self.indices,
            *(
                t.to(device, **move)
                for t in (self.input_ids, self.attention_mask, self.token_type_ids, self.labels)
            ),
        )


def collate(split: EncodedSplit, indices: Sequence[int], label_dtype: torch.dtype) -> Batch:
    """Pad the chosen rows to their longest length (dynamic padding)."""
    starts, ends = split.offsets[indices], split.offsets[np.asarray(indices) + 1]
    width = int((ends - starts).max())
    n = len(indices)
    input_ids = np.full((n, width), split.pad_id, dtype=np.int64)
    token_types = np.zeros((n, width), dtype=np.int64)
    mask = np.zeros((n, width), dtype=np.int64)
    for row, (start, end) in enumerate(zip(starts, ends, strict=True)):
        length = int(end - start)
        input_ids[row, :length] = split.ids[start:end]
        token_types[row, :length] = split.type_ids[start:end]
        mask[row, :length] = 1
    labels = torch.from_numpy(np.asarray(split.labels[list(indices)], dtype=np.float64))
    return Batch(
        task=split.task,
        indices=torch.as_tensor(list(indices), dtype=torch.long),
        input_ids=torch.from_numpy(input_ids),
        attention_mask=torch.from_numpy(mask),
        token_type_ids=torch.from_numpy(token_types),
        labels=labels.to(label_dtype),
    )


def batch_indices(
    lengths: np.ndarray,
    batch_size: int,
    shuffle: bool,
    rng: random.Random | None = None,
    bucket: bool = False,
    pool_batches: int = 50,
) -> list[list[int]]:
    """Split rows into batches.

    With ``bucket``, rows are shuffled, cut into pools of ``pool_batches`` batches, sorted by
    length inside each pool and batched, so a batch holds rows of similar length (less padding);
    the batch order is then shuffled again. Without ``shuffle`` the order is kept.
    """
    rng = rng or random.Random(0)
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)
    if bucket:
        pool = batch_size * pool_batches
        order = [
            i
            for start in range(0, len(order), pool)
            for i in sorted(order[start : start + pool], key=lambda i: int(lengths[i]))
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if bucket and shuffle:
        rng.shuffle(batches)
    return batches


def iterate_batches(
    split: EncodedSplit, batch_size: int, label_dtype: torch.dtype
) -> Iterator[Batch]:
    """Batches for evaluation and prediction, rows grouped by length; ``indices`` say the order."""
    for indices in batch_indices(
        split.lengths, batch_size, shuffle=False, bucket=True, pool_batches=10**9
    ):
        yield collate(split, indices, label_dtype)
