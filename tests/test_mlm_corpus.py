"""Vocabulary-level distillation, its data: masked corpora and top-k fidelity terms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import GLUE_SAMPLE
from kdnlu.errors import KdnluError
from kdnlu.hf import load_tokenizer
from kdnlu.mlm.corpus import MaskedCorpus, Masking, mask_corpus, remasked, task_sentences
from kdnlu.mlm.teach import fidelity_terms, top_of

SENTENCES = [
    "the cat sat on the mat and looked at the birds outside",
    "a quick brown fox jumps over the lazy dog",
    "researchers distil large ensembles into one small student model",
    "it rained all day , so the match was called off",
]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


def test_masking_follows_the_plan(tokenizer) -> None:
    masking = Masking(max_length=32, seed=3)
    corpus = mask_corpus(SENTENCES * 50, tokenizer, masking)
    assert corpus.problem() is None
    special = set(tokenizer.all_special_ids)
    counts = np.diff(corpus.offsets)
    for s in range(corpus.sentences):
        ordinary = [t for t in corpus.input_ids[s, : corpus.lengths[s]] if t not in special]
        original = tokenizer(SENTENCES[s % 4], truncation=True, max_length=32)["input_ids"]
        assert corpus.lengths[s] == len(original)
        assert counts[s] == max(1, round(0.15 * (len(original) - 2)))
        assert (
            len(ordinary) + (corpus.input_ids[s] == tokenizer.mask_token_id).sum()
            >= len(original) - 2
        )
    rows = np.arange(corpus.rows)
    owner = np.repeat(np.arange(corpus.sentences), counts)
    masked_now = corpus.input_ids[owner, corpus.positions[rows]]
    originals = np.array(
        [
            tokenizer(SENTENCES[o % 4], truncation=True, max_length=32)["input_ids"][p]
            for o, p in zip(owner, corpus.positions, strict=True)
        ]
    )
    np.testing.assert_array_equal(corpus.targets, originals)
    share_mask = np.mean(masked_now == tokenizer.mask_token_id)
    share_kept = np.mean(masked_now == corpus.targets)
    assert 0.72 < share_mask < 0.88  # 80% of ~600 draws
    assert 0.05 < share_kept < 0.16  # 10% kept (plus random draws of the same word)


def test_masking_is_per_sentence_and_seeded(tokenizer) -> None:
    one = mask_corpus(SENTENCES[:2], tokenizer, Masking(seed=1))
    more = mask_corpus(SENTENCES, tokenizer, Masking(seed=1))
    other = mask_corpus(SENTENCES[:2], tokenizer, Masking(seed=2))
    np.testing.assert_array_equal(more.positions[: one.rows], one.positions)
    np.testing.assert_array_equal(more.input_ids[:2, :], one.input_ids)
    assert one.fingerprint == mask_corpus(SENTENCES[:2], tokenizer, Masking(seed=1)).fingerprint
    assert other.fingerprint != one.fingerprint


def test_remasking_restores_the_sentences_and_masks_them_afresh(tokenizer) -> None:
    plan = Masking(seed=0, mask_share=1.0, random_share=0.0)
    corpus = mask_corpus(SENTENCES * 3, tokenizer, plan)
    fresh = remasked(corpus, tokenizer, seed=5)
    assert fresh.masking == Masking(seed=5, mask_share=1.0, random_share=0.0)
    plan5 = fresh.masking
    np.testing.assert_array_equal(fresh.lengths, corpus.lengths)
    originals = tokenizer(SENTENCES * 3, max_length=64, truncation=True)["input_ids"]
    for s, tokens in enumerate(originals):
        rows = slice(fresh.offsets[s], fresh.offsets[s + 1])
        np.testing.assert_array_equal(fresh.targets[rows], np.array(tokens)[fresh.positions[rows]])
        assert (fresh.input_ids[s, fresh.positions[rows]] == tokenizer.mask_token_id).all()
        unmasked = np.setdiff1d(np.arange(len(tokens)), fresh.positions[rows])
        np.testing.assert_array_equal(fresh.input_ids[s, unmasked], np.array(tokens)[unmasked])
    assert not np.array_equal(fresh.positions, corpus.positions)
    expected = mask_corpus(SENTENCES * 3, tokenizer, plan5)
    assert fresh.fingerprint == expected.fingerprint


def test_bad_masking_settings_are_refused() -> None:
    with pytest.raises(KdnluError, match="masking rate must be in"):
        Masking(rate=0.0)
    with pytest.raises(KdnluError, match="add up to at most 1"):
        Masking(mask_share=0.8, random_share=0.3)


def test_corpus_round_trip_and_tamper_check(tokenizer, tmp_path: Path) -> None:
    corpus = mask_corpus(SENTENCES, tokenizer, Masking(seed=0), "minilm", {"x": 4})
    corpus.save(tmp_path / "c")
    back = MaskedCorpus.load(tmp_path / "c")
    assert back.fingerprint == corpus.fingerprint and back.sources == {"x": 4}
    with pytest.raises(KdnluError, match="already exists"):
        corpus.save(tmp_path / "c")
    targets = np.load(tmp_path / "c" / "targets.npy")
    targets[0] += 1
    np.save(tmp_path / "c" / "targets.npy", targets)
    with pytest.raises(KdnluError, match="do not match the fingerprint"):
        MaskedCorpus.load(tmp_path / "c")
    with pytest.raises(KdnluError, match="is not a masked corpus"):
        MaskedCorpus.load(tmp_path)


def test_batch_points_at_the_masks(tokenizer) -> None:
    corpus = mask_corpus(SENTENCES, tokenizer, Masking(seed=0))
    batch = corpus.batch(np.array([2, 0]))
    assert batch["input_ids"].shape[1] == max(corpus.lengths[[2, 0]])
    np.testing.assert_array_equal(
        batch["rows"],
        np.r_[np.arange(corpus.offsets[2], corpus.offsets[3]), np.arange(corpus.offsets[1])],
    )
    picked = batch["input_ids"][batch["mask_batch"], batch["mask_pos"]].numpy()
    np.testing.assert_array_equal(
        picked, corpus.input_ids[[2, 0]][batch["mask_batch"].numpy(), batch["mask_pos"].numpy()]
    )


def test_task_sentences_reads_real_files() -> None:
    sentences, added = task_sentences(["rte", "wnli"], GLUE_SAMPLE, limit=5)
    assert len(sentences) == len(set(sentences)) == added["rte"] + added["wnli"]
    assert 0 < added["rte"] <= 10 and 0 < added["wnli"] <= 10


def brute_fidelity(p: np.ndarray, k: int) -> dict[str, np.ndarray]:
    out = {name: [] for name in ("mass_outside", "kl_full_to_topk_spread", "kl_topk_to_full")}
    out["entropy_gap"] = []
    for row in p.astype(np.float64):
        top = np.argsort(-row)[:k]
        mass = row[top].sum()
        spread = np.full_like(row, (1 - mass) / (len(row) - k) if k < len(row) else 0.0)
        spread[top] = row[top]
        renorm = np.zeros_like(row)
        renorm[top] = row[top] / mass
        out["mass_outside"].append(1 - mass)
        out["kl_full_to_topk_spread"].append(np.sum(row * np.log(row / spread)))
        out["kl_topk_to_full"].append(np.sum(renorm[top] * np.log(renorm[top] / row[top])))
        out["entropy_gap"].append(
            -np.sum(renorm[top] * np.log(renorm[top])) + np.sum(row * np.log(row))
        )
    return {name: np.array(values) for name, values in out.items()}


@pytest.mark.parametrize("k", [1, 3, 8, 50])
def test_fidelity_against_brute_force(k: int) -> None:
    torch.manual_seed(k)
    logits = torch.randn(6, 50) * 3
    top, ids, plogp = top_of(logits, 50)
    np.testing.assert_allclose(top, torch.softmax(logits.double(), -1).sort(-1, True)[0])
    np.testing.assert_array_equal(ids[:, 0], logits.argmax(-1).numpy())
    got = fidelity_terms(top, plogp, 50, k)
    want = brute_fidelity(torch.softmax(logits.double(), -1).numpy(), k)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-9, err_msg=name)
    if k == 50:
        assert np.allclose(got["kl_full_to_topk_spread"], 0) and np.allclose(got["mass_outside"], 0)
    with pytest.raises(KdnluError, match="top-k must be between 1 and"):
        fidelity_terms(top[:, :3], plogp, 50, 4)
