"""Batches: dynamic padding, length bucketing, and alignment of rows with example indices."""

import random

import numpy as np
import torch

from kdnlu.data import EncodedSplit, batch_indices, collate, iterate_batches


def split_of(lengths: list[int]) -> EncodedSplit:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    # token i of row r is 1000 * (r + 1) + i, so every position tells where it came from
    ids = np.concatenate([1000 * (r + 1) + np.arange(n) for r, n in enumerate(lengths)])
    return EncodedSplit(
        "t",
        ids.astype(np.int32),
        np.zeros(len(ids), np.int8),
        offsets,
        np.arange(len(lengths), dtype=np.float64),
        pad_id=0,
    )


def test_collate_pads_to_the_longest_row_and_keeps_indices() -> None:
    split = split_of([3, 5, 2])
    batch = collate(split, [2, 0], torch.long)
    assert batch.input_ids.tolist() == [[3000, 3001, 0], [1000, 1001, 1002]]
    assert batch.attention_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch.indices.tolist() == [2, 0] and batch.labels.tolist() == [2, 0]


def test_every_row_once_with_and_without_bucketing() -> None:
    lengths = np.array(random.Random(0).choices(range(5, 120), k=997))
    for bucket in (False, True):
        batches = batch_indices(lengths, 32, shuffle=True, rng=random.Random(1), bucket=bucket)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(997))
        assert batches == batch_indices(lengths, 32, True, random.Random(1), bucket)


def test_bucketing_cuts_padding() -> None:
    lengths = np.array(random.Random(0).choices(range(5, 120), k=2000))

    def padded(bucket: bool) -> int:
        batches = batch_indices(lengths, 32, shuffle=True, rng=random.Random(1), bucket=bucket)
        return sum(len(b) * int(lengths[b].max()) for b in batches)

    assert padded(True) < 0.6 * padded(False)


def test_evaluation_batches_cover_rows_in_length_order() -> None:
    split = split_of([4, 1, 9, 2, 7])
    seen = [i for batch in iterate_batches(split, 2, torch.long) for i in batch.indices.tolist()]
    assert seen == [1, 3, 0, 4, 2]
    for batch in iterate_batches(split, 2, torch.long):
        first_tokens = batch.input_ids[:, 0].tolist()
        assert first_tokens == [1000 * (i + 1) for i in batch.indices.tolist()]


def test_head_takes_the_first_rows() -> None:
    split = split_of([3, 5, 2, 4])
    head = split.head(2)
    assert len(head) == 2 and head.lengths.tolist() == [3, 5]
    assert collate(head, [1], torch.long).input_ids.tolist() == [[2000, 2001, 2002, 2003, 2004]]
