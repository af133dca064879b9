"""The token cache: hits, misses on every key change, atomic entries, corrupted entries."""

import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import GLUE_SAMPLE, write
from kdnlu.data import encode_examples
from kdnlu.registry import ENCODERS, TASKS
from kdnlu.token_cache import TokenCache


@pytest.fixture(scope="module")
def tokenizer():
    return ENCODERS.get("tiny").build().tokenizer


def build_counter(task, tokenizer, max_length: int, calls: list[int]):
    def build():
        calls.append(1)
        return encode_examples("rte", tokenizer, task.read("train"), max_length)

    return build


def test_second_open_is_a_memmap_hit_with_identical_rows(tmp_path: Path, tokenizer) -> None:
    task = TASKS.get("rte").build(data_root=str(GLUE_SAMPLE))
    cache, calls = TokenCache(tmp_path), []
    path = task.path("train")
    first = cache.get_or_build(
        "rte", tokenizer, path, 64, {}, build_counter(task, tokenizer, 64, calls)
    )
    second = TokenCache(tmp_path).get_or_build(
        "rte", tokenizer, path, 64, {}, build_counter(task, tokenizer, 64, calls)
    )
    assert calls == [1]
    assert isinstance(second.ids, np.memmap)
    for name in ("ids", "type_ids", "offsets", "labels", "groups"):
        assert np.array_equal(getattr(first, name), getattr(second, name))
    assert second.groups is not None and second.groups.max() < 300  # candidate groups kept
    assert len(second) == 300 and second.lengths.max() <= 64


def test_key_changes_with_file_length_options_and_tokenizer(tmp_path: Path, tokenizer) -> None:
    data = write(tmp_path / "RTE" / "train.tsv", (GLUE_SAMPLE / "RTE" / "train.tsv").read_text())
    cache = TokenCache(tmp_path / "cache")
    base = cache.key(tokenizer, data, 64, {"a": 1})
    assert cache.key(tokenizer, data, 64, {"a": 1}) == base
    assert cache.key(tokenizer, data, 65, {"a": 1}) != base
    assert cache.key(tokenizer, data, 64, {"a": 2}) != base
    other = ENCODERS.get("tiny").build().tokenizer
    other.add_tokens(["kdnlunewtoken"])
    assert TokenCache(tmp_path / "cache").key(other, data, 64, {"a": 1}) != base
    data.write_text(data.read_text().replace("entailment\n", "not_entailment\n", 1))
    assert TokenCache(tmp_path / "cache").key(tokenizer, data, 64, {"a": 1}) != base


def test_truncated_entry_is_rebuilt_with_a_warning(
    tmp_path: Path, tokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    task = TASKS.get("rte").build(data_root=str(GLUE_SAMPLE))
    cache, calls, path = TokenCache(tmp_path), [], task.path("train")
    cache.get_or_build("rte", tokenizer, path, 64, {}, build_counter(task, tokenizer, 64, calls))
    (entry,) = (tmp_path / "tokens").iterdir()
    ids = np.load(entry / "ids.npy")
    np.save(entry / "ids.npy", ids[:-5])
    with caplog.at_level(logging.WARNING, logger="kdnlu.data"):
        again = cache.get_or_build(
            "rte", tokenizer, path, 64, {}, build_counter(task, tokenizer, 64, calls)
        )
    assert calls == [1, 1] and len(again.ids) == len(ids)
    assert "is unreadable (token arrays are truncated); rebuilding it" in caplog.text
    assert [p.name for p in (tmp_path / "tokens").iterdir()] == [entry.name]


def test_unwritable_cache_warns_and_goes_on(
    tmp_path: Path, tokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    task = TASKS.get("rte").build(data_root=str(GLUE_SAMPLE))
    blocker = write(tmp_path / "not_a_folder", "")
    calls: list[int] = []
    with caplog.at_level(logging.WARNING, logger="kdnlu.data"):
        split = TokenCache(blocker).get_or_build(
            "rte", tokenizer, task.path("train"), 64, {}, build_counter(task, tokenizer, 64, calls)
        )
    assert len(split) == 300 and calls == [1]
    assert "cannot write the token cache at" in caplog.text and "going on without it" in caplog.text
