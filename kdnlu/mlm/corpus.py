"""Masked corpora: unlabeled sentences, tokenised once, with a fixed masking plan.

A corpus folder holds the masked inputs every later stage reads, so the teacher's distributions
(in a top-k logit store, one row per masked position) and the student's inputs line up::

    corpus.json      tokenizer, masking settings, sizes, sources and the fingerprint
    input_ids.npy    [sentences, max_length] int32, the masked token ids, padded
    lengths.npy      [sentences] int32, tokens per sentence (special tokens included)
    offsets.npy      [sentences + 1] int64, sentence s owns store rows offsets[s]:offsets[s+1]
    positions.npy    [rows] int32, the masked position of each store row in its sentence
    targets.npy      [rows] int32, the original token id there (the gold MLM label)

The masking plan follows BERT: ``rate`` of each sentence's ordinary tokens (at least one) are
chosen; of those, ``mask_share`` become ``[MASK]``, ``random_share`` a random ordinary token and
the rest stay as they were. Sentence ``s`` draws from its own generator seeded by
``(seed, s)``, so the plan does not depend on batch sizes or on other sentences.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdnlu.errors import DataError, KdnluError
from kdnlu.options import OptionError, option
from kdnlu.rundir import atomic_write_text, staged_dir

CORPUS_JSON = "corpus.json"
ARRAYS = ("input_ids", "lengths", "offsets", "positions", "targets")


@dataclass(frozen=True)
class Masking:
    """How sentences are cut and masked (the options of ``kdnlu-mlm corpus``)."""

    max_length: int = option(64, "tokens per sentence, at most")
    rate: float = option(0.15, "share of tokens masked")
    mask_share: float = option(0.8, "share of the masked tokens replaced by [MASK]")
    random_share: float = option(0.1, "share of the masked tokens replaced by a random token")
    seed: int = option(0, "seed of the masks")

    def __post_init__(self) -> None:
        if self.max_length < 3:
            raise OptionError(
                "max_length", f"max_length must be at least 3 tokens, got {self.max_length}"
            )
        if not 0.0 < self.rate <= 1.0:
            raise OptionError("rate", f"the masking rate must be in (0, 1], got {self.rate}")
        shares = (self.mask_share, self.random_share)
        if min(shares) < 0 or sum(shares) > 1.0:
            raise OptionError(
                "mask_share",
                "mask_share and random_share must be >= 0 and add up to at most 1, got "
                f"{self.mask_share} and {self.random_share}",
            )


def task_sentences(
    tasks: Sequence[str], data_root: str | Path, split: str = "train", limit: int | None = None
) -> tuple[list[str], dict[str, int]]:
    """The distinct non-empty texts (``text_a`` and ``text_b``) of ``split`` of each task, in
    file order, with the first ``limit`` rows of each task when given; also the number of new
    sentences each task added."""
    from kdnlu.registry import TASKS

    seen: set[str] = set()
    sentences: list[str] = []
    added: dict[str, int] = {}
    for name in tasks:
        task = TASKS.get(name).build(data_root=Path(data_root))
        before = len(sentences)
        for ex in task.read(split, limit=limit):
            for text in (ex.text_a, ex.text_b):
                text = (text or "").strip()
                if text and text not in seen:
                    seen.add(text)
                    sentences.append(text)
        added[name] = len(sentences) - before
    if not sentences:
        raise DataError(f"the {split} files of {', '.join(tasks)} hold no text")
    return sentences, added


@dataclass
class MaskedCorpus:
    """The arrays of a corpus folder (see the module) and what made them."""

    input_ids: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    positions: np.ndarray
    targets: np.ndarray
    masking: Masking
    tokenizer: str
    pad_id: int
    sources: dict[str, int]

    @property
    def sentences(self) -> int:
        return len(self.lengths)

    @property
    def rows(self) -> int:
        """Masked positions in all (one store row each)."""
        return len(self.positions)

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the masked inputs and the plan: a store made from another corpus (or
        another masking) does not match."""
        digest = hashlib.sha256()
        for name in ARRAYS:
            array = np.ascontiguousarray(getattr(self, name))
            digest.update(f"{name}{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def rows_of(self, sentences: np.ndarray) -> np.ndarray:
        """Store rows of the given sentences, in order."""
        starts, stops = self.offsets[sentences], self.offsets[sentences + 1]
        if len(sentences) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])

    def batch(self, sentences: np.ndarray) -> dict[str, Any]:
        """Model inputs of some sentences, cut to their longest, and where their masks are:
        ``input_ids``/``attention_mask`` [B, L] int64, ``mask_batch``/``mask_pos`` (the row in
        the batch and the position of every masked token), ``rows`` (their store rows) and
        ``targets`` (their original token ids)."""
        import torch

        sentences = np.asarray(sentences, dtype=np.int64)
        lengths = self.lengths[sentences]
        width = int(lengths.max())
        ids = self.input_ids[sentences, :width].astype(np.int64)
        attention = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
        counts = self.offsets[sentences + 1] - self.offsets[sentences]
        rows = self.rows_of(sentences)
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(attention),
            "mask_batch": torch.from_numpy(np.repeat(np.arange(len(sentences)), counts)),
            "mask_pos": torch.from_numpy(self.positions[rows].astype(np.int64)),
            "rows": rows,
            "targets": torch.from_numpy(self.targets[rows].astype(np.int64)),
        }

    def save(self, folder: str | Path) -> Path:
        """Write the corpus folder atomically; an existing folder is never overwritten."""
        folder = Path(folder)
        if folder.exists():
            raise KdnluError(f"corpus folder {folder} already exists; choose a new one")
        meta = {
            "format": 1,
            "tokenizer": self.tokenizer,
            "pad_id": self.pad_id,
            "masking": asdict(self.masking),
            "sentences": self.sentences,
            "rows": self.rows,
            "sources": self.sources,
            "fingerprint": self.fingerprint,
        }
        with staged_dir(folder) as staging:
            for name in ARRAYS:
                np.save(staging / f"{name}.npy", getattr(self, name))
            atomic_write_text(staging / CORPUS_JSON, json.dumps(meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> MaskedCorpus:
        """Open a corpus folder, checking that its arrays fit each other and its fingerprint."""
        folder = Path(folder)
        meta_path = folder / CORPUS_JSON
        if not meta_path.is_file():
            raise KdnluError(
                f"{folder} is not a masked corpus (no {CORPUS_JSON}); make one with "
                "`kdnlu-mlm corpus`"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            arrays = {name: np.load(folder / f"{name}.npy") for name in ARRAYS}
            corpus = cls(
                **arrays,
                masking=Masking(**meta["masking"]),
                tokenizer=meta["tokenizer"],
                pad_id=int(meta["pad_id"]),
                sources=dict(meta["sources"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KdnluError(f"{folder}: the corpus cannot be read ({exc})") from exc
        problem = corpus.problem()
        if problem is None and corpus.fingerprint != meta.get("fingerprint"):
            problem = "its arrays do not match the fingerprint in corpus.json (changed on disk?)"
        if problem:
            raise KdnluError(f"{folder}: {problem}; make the corpus again")
        return corpus

    def problem(self) -> str | None:
        """What is inconsistent between the arrays, or None."""
        n, rows = len(self.lengths), len(self.positions)
        if self.input_ids.ndim != 2 or len(self.input_ids) != n:
            return f"input_ids has shape {list(self.input_ids.shape)} for {n} sentences"
        if self.offsets.shape != (n + 1,) or self.offsets[0] != 0 or self.offsets[-1] != rows:
            return "offsets do not cover the masked rows"
        if np.any(np.diff(self.offsets) < 1):
            return "a sentence has no masked position"
        if self.targets.shape != (rows,):
            return "targets and positions differ in length"
        owner = np.repeat(np.arange(n), np.diff(self.offsets))
        if rows and (
            np.any(self.positions < 1) or np.any(self.positions >= self.lengths[owner] - 1)
        ):
            return "a masked position lies outside its sentence"
        return None


def mask_corpus(
    sentences: Sequence[str],
    tokenizer: Any,
    masking: Masking = Masking(),
    tokenizer_name: str = "",
    sources: dict[str, int] | None = None,
) -> MaskedCorpus:
    """Tokenise ``sentences`` (cut to ``max_length``) and mask them by the plan."""
    encoded = tokenizer(
        list(sentences), truncation=True, max_length=masking.max_length, add_special_tokens=True
    )["input_ids"]
    return _mask_tokens(encoded, tokenizer, masking, tokenizer_name, sources)


def remasked(corpus: MaskedCorpus, tokenizer: Any, seed: int) -> MaskedCorpus:
    """The same sentences, masked afresh by the corpus's plan with another ``seed`` (dynamic
    masking: a model trained over several epochs never sees one fixed set of masks)."""
    encoded = []
    for s in range(corpus.sentences):
        row = corpus.input_ids[s, : corpus.lengths[s]].astype(np.int64)
        rows = slice(corpus.offsets[s], corpus.offsets[s + 1])
        row[corpus.positions[rows]] = corpus.targets[rows]
        encoded.append(row.tolist())
    plan = Masking(**{**asdict(corpus.masking), "seed": seed})
    fresh = _mask_tokens(encoded, tokenizer, plan, corpus.tokenizer, corpus.sources)
    if fresh.sentences != corpus.sentences:
        raise KdnluError("re-masking lost sentences; the corpus does not match the tokenizer")
    return fresh


def _mask_tokens(
    encoded: Sequence[Sequence[int]],
    tokenizer: Any,
    masking: Masking,
    tokenizer_name: str,
    sources: dict[str, int] | None,
) -> MaskedCorpus:
    special = set(tokenizer.all_special_ids)
    mask_id = tokenizer.mask_token_id
    if mask_id is None:
        raise KdnluError("the tokenizer has no mask token; it cannot serve masked-LM training")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ordinary = np.array([i for i in range(len(tokenizer)) if i not in special], dtype=np.int64)
    ids = np.full((len(encoded), masking.max_length), pad_id, dtype=np.int32)
    lengths, counts, positions, targets = [], [], [], []
    kept = 0
    for index, tokens in enumerate(encoded):
        candidates = [i for i, t in enumerate(tokens) if t not in special]
        if not candidates or tokens[0] not in special or tokens[-1] not in special:
            continue  # nothing to mask (or no [CLS] ... [SEP] frame)
        rng = np.random.default_rng([masking.seed, index])
        n = max(1, round(masking.rate * len(candidates)))
        chosen = np.sort(rng.choice(candidates, size=n, replace=False))
        row = np.array(tokens, dtype=np.int64)
        originals = row[chosen].copy()
        draw = rng.random(n)
        swap = draw < masking.mask_share + masking.random_share
        row[chosen[draw < masking.mask_share]] = mask_id
        randomise = swap & (draw >= masking.mask_share)
        row[chosen[randomise]] = ordinary[rng.integers(0, len(ordinary), int(randomise.sum()))]
        ids[kept, : len(row)] = row
        lengths.append(len(row))
        counts.append(n)
        positions.append(chosen)
        targets.append(originals)
        kept += 1
    if not kept:
        raise DataError("no sentence has a token to mask")
    return MaskedCorpus(
        input_ids=ids[:kept],
        lengths=np.array(lengths, dtype=np.int32),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        positions=np.concatenate(positions).astype(np.int32),
        targets=np.concatenate(targets).astype(np.int32),
        masking=masking,
        tokenizer=tokenizer_name,
        pad_id=int(pad_id),
        sources=dict(sources or {}),
    )
