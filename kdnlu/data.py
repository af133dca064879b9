"""Tokenised task splits and batches: one task per batch, padded to the batch's longest row."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kdnlu.task import Example

log = logging.getLogger("kdnlu.data")

IGNORE = -100  # label of tokens that are not a word's first sub-word (and of padding)
UNKNOWN_TAG = -1  # a word's first sub-word whose tag is hidden (test files)


@dataclass(frozen=True)
class EncodedSplit:
    """Token ids of one split stored flat (row ``i`` is ``ids[offsets[i]:offsets[i+1]]``).

    The arrays may be numpy memmaps of the token cache: rows are read only when batched.
    Token-labelling splits have ``token_labels`` aligned with ``ids``: the tag of a word at its
    first sub-word token, ``UNKNOWN_TAG`` there when the tag is hidden, ``IGNORE`` elsewhere;
    ``word_ids`` (set when freshly encoded, not from the token cache) gives the word's index in
    its row at the same positions and -1 elsewhere. ``notes`` are warnings about the encoding
    (words cut off), kept with the cache entry so they are repeated when it is reused.
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
    token_labels: np.ndarray | None = None
    word_ids: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    @property
    def token_level(self) -> bool:
        """Whether rows carry one label per token (token labelling) instead of one per row."""
        return self.token_labels is not None

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
            None if self.token_labels is None else self.token_labels[:end],
            None if self.word_ids is None else self.word_ids[:end],
            self.notes,
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


def group_keys(examples: Sequence[Example]) -> list[str]:
    """What groups rows: their explicit ``group`` where the reader gives one (a multiple-choice
    question), else their first text (QNLI's question and its candidate sentences)."""
    if any(ex.group is not None for ex in examples):
        return [ex.uid if ex.group is None else f"group:{ex.group}" for ex in examples]
    return [ex.text_a for ex in examples]


def ranking_groups(
    split: EncodedSplit, group_size: int, positive_label: int
) -> tuple[np.ndarray, int]:
    """The candidate groups a ranking loss can train on (see ``candidate_groups``)."""
    return candidate_groups(split.group_ids(), split.labels, group_size, positive_label)


def candidate_groups(
    groups: np.ndarray, labels: np.ndarray, group_size: int, positive_label: int
) -> tuple[np.ndarray, int]:
    """The candidate groups a group loss can train on, as a ``[G, group_size]`` array of row
    indices, and the number of rows left out (``groups`` and ``labels`` per row).

    A group qualifies when it has exactly ``group_size`` rows and exactly one of them is labelled
    ``positive_label``; rows of other groups (a question with one candidate, say) cannot be
    ranked. Groups keep their first-appearance order, rows their file order.
    """
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    positive = labels[order] == positive_label
    positives = np.add.reduceat(positive.astype(np.int64), starts) if len(order) else sizes
    keep = (sizes == group_size) & (positives == 1)
    rows = order[starts[keep][:, None] + np.arange(group_size)]
    return rows, int(len(groups) - keep.sum() * group_size)


def encode_examples(
    task: str, tokenizer: Any, examples: Sequence[Example], max_length: int
) -> EncodedSplit:
    """Tokenise texts (pairs truncated longest-first to ``max_length``), or words of
    token-labelling rows (see ``encode_words``)."""
    if examples and examples[0].words is not None:
        return encode_words(task, tokenizer, examples, max_length)
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
    return _flat_split(task, tokenizer, enc, labels, group_numbers(group_keys(examples)))


def _flat_split(
    task: str,
    tokenizer: Any,
    enc: Any,
    labels: np.ndarray,
    groups: np.ndarray,
) -> EncodedSplit:
    rows = len(enc["input_ids"])
    lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=rows)
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return EncodedSplit(
        task=task,
        ids=np.asarray([t for ids in enc["input_ids"] for t in ids], dtype=np.int32),
        type_ids=np.asarray([t for ts in enc["token_type_ids"] for t in ts], dtype=np.int8),
        offsets=offsets,
        labels=labels,
        pad_id=int(tokenizer.pad_token_id or 0),
        groups=groups.astype(np.int64),
    )


def encode_words(
    task: str, tokenizer: Any, examples: Sequence[Example], max_length: int
) -> EncodedSplit:
    """Tokenise pre-split words; each word's tag goes to its first sub-word token.

    Words beyond ``max_length`` tokens are cut off: they are neither trained on nor scored,
    and a warning says how many there were.
    """
    if any(ex.words is None for ex in examples):
        raise ValueError(f"task '{task}': every row of a token-labelling split needs words")
    enc = tokenizer(
        [list(ex.words or ()) for ex in examples],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        return_token_type_ids=True,
    )
    token_labels: list[int] = []
    word_ids: list[int] = []
    cut = empty = 0
    for row, ex in enumerate(examples):
        words = ex.words or ()
        seen: set[int] = set()
        for word in enc.word_ids(row):
            if word is None or word in seen:
                token_labels.append(IGNORE)
                word_ids.append(-1)
                continue
            seen.add(word)
            token_labels.append(UNKNOWN_TAG if ex.tags is None else ex.tags[word])
            word_ids.append(word)
        if len(seen) < len(words):  # rare: find which words made no token at all
            last = max(seen, default=-1)
            missing = [w for w in range(len(words)) if w not in seen]
            blank = [w for w in missing if w < last or not tokenizer.tokenize(words[w])]
            empty += len(blank)
            cut += len(missing) - len(blank)
    notes = []
    total = sum(len(ex.words or ()) for ex in examples)
    if cut:
        notes.append(
            f"{task}: {cut} of {total} words lie beyond max_length {max_length} tokens and are "
            "neither trained on nor scored (raise the task's max_length to keep them)"
        )
    if empty:
        notes.append(
            f"{task}: {empty} of {total} words give no token at all (e.g. only control or "
            "zero-width characters) and are neither trained on nor scored"
        )
    for note in notes:
        log.warning(note)
    split = _flat_split(
        task, tokenizer, enc, np.full(len(examples), np.nan), np.arange(len(examples))
    )
    return dataclasses.replace(
        split,
        token_labels=np.asarray(token_labels, dtype=np.int64),
        word_ids=np.asarray(word_ids, dtype=np.int64),
        notes=tuple(notes),
    )


def word_positions(split: EncodedSplit, row: int) -> np.ndarray:
    """Token positions (into the flat arrays) of the first sub-word of each kept word of ``row``."""
    assert split.token_labels is not None
    start, end = int(split.offsets[row]), int(split.offsets[row + 1])
    return start + np.flatnonzero(np.asarray(split.token_labels[start:end]) != IGNORE)


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
    """Pad the chosen rows to their longest length (dynamic padding).

    Labels are ``[B]`` of ``label_dtype``, or for token labelling ``[B, L]`` class indices with
    ``IGNORE`` wherever no word starts (and on padding).
    """
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
    if split.token_labels is not None:
        token_labels = np.full((n, width), IGNORE, dtype=np.int64)
        for row, (start, end) in enumerate(zip(starts, ends, strict=True)):
            token_labels[row, : int(end - start)] = split.token_labels[start:end]
        labels = torch.from_numpy(token_labels)
    else:
        labels = torch.from_numpy(np.asarray(split.labels[list(indices)], dtype=np.float64))
        labels = labels.to(label_dtype)
    return Batch(
        task=split.task,
        indices=torch.as_tensor(list(indices), dtype=torch.long),
        input_ids=torch.from_numpy(input_ids),
        attention_mask=torch.from_numpy(mask),
        token_type_ids=torch.from_numpy(token_types),
        labels=labels,
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
