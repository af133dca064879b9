"""The teacher logit store: round trips, expectations, damage, interrupted writes, pickling."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from kdnlu.store import (
    LogitStore,
    StoreError,
    StoreSpec,
    StoreWriter,
    fingerprint_examples,
    topk_of,
)
from kdnlu.task import Example

TEACHERS = ("teacher-a", "teacher-b", "teacher-c")


def spec(**changes) -> StoreSpec:
    base = {
        "task": "rte",
        "split": "train",
        "rows": 10,
        "classes": 2,
        "teachers": TEACHERS,
        "fingerprint": "f" * 64,
        "shard_rows": 4,
    }
    return StoreSpec(**{**base, **changes})


def dense_logits(s: StoreSpec) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(s.rows, len(s.teachers), s.classes)).astype(np.float32) * 3


def write_dense(folder: Path, s: StoreSpec, logits: np.ndarray, shards=None) -> StoreWriter:
    writer = StoreWriter(folder, s)
    for shard in writer.pending if shards is None else shards:
        rows = s.shard_range(shard)
        labels = np.arange(rows.start, rows.stop, dtype=np.float32) % 2
        writer.write_shard(shard, {"logits": logits[rows.start : rows.stop], "labels": labels})
    return writer


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_dense_round_trip_by_row_index(tmp_path: Path, dtype: str) -> None:
    s = spec(dtype=dtype)
    logits = dense_logits(s)
    store = write_dense(tmp_path / "store", s, logits).finish()
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [
        "header.json",
        "labels.npy",
        "logits.npy",
    ]
    assert store.labels([9, 0, 3]).tolist() == [1.0, 0.0, 1.0]
    order = [9, 0, 4, 3, 3, 7]  # across shards, repeated, unsorted
    expected = logits[order].astype(dtype).astype(np.float32)
    np.testing.assert_array_equal(store.logits(order), expected)
    z = expected / 2.0
    probs = np.exp(z - z.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(
        store.ensemble_probs(order, temperature=2.0), probs.mean(1), rtol=1e-6
    )
    assert isinstance(store._array("logits").base, np.memmap)  # read through a memory map
    with pytest.raises(IndexError, match="^row 10 is outside the store's 10 rows$"):
        store.logits([1, 10])
    with pytest.raises(IndexError, match="^row -1 is outside the store's 10 rows$"):
        store.logits([1, -1])  # numpy would take the last row


def test_regression_store_gives_the_teachers_mean(tmp_path: Path) -> None:
    s = spec(classes=1, dtype="float32")
    scores = dense_logits(s)
    store = write_dense(tmp_path / "s", s, scores).finish()
    np.testing.assert_allclose(store.mean_scores([2, 5]), scores[[2, 5], :, 0].mean(1))
    with pytest.raises(StoreError, match="is a dense store, not topk"):
        store.topk([0])


def test_topk_round_trip_and_rest_mass(tmp_path: Path) -> None:
    s = spec(kind="topk", top_k=3, classes=50, teachers=("ensemble",), dtype="float32")
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(50), size=10)
    writer = StoreWriter(tmp_path / "k", s)
    for shard in writer.pending:
        rows = s.shard_range(shard)
        labels = np.full(len(rows), np.nan, dtype=np.float32)
        writer.write_shard(shard, {**topk_of(probs[rows.start : rows.stop], 3), "labels": labels})
    store = writer.finish()
    ids, top, rest = store.topk([7, 1])
    for row, i in enumerate([7, 1]):
        best = np.argsort(-probs[i])[:3]
        assert ids[row].tolist() == best.tolist()
        np.testing.assert_allclose(top[row], probs[i][best], rtol=1e-6)
        assert rest[row] == pytest.approx(1 - probs[i][best].sum(), abs=1e-6)
    with pytest.raises(StoreError, match="is a topk store, not dense"):
        store.logits([0])


def test_expectations_that_do_not_fit_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    write_dense(folder, spec(), dense_logits(spec())).finish()
    cases = {
        "fingerprint": ("e" * 64, "its examples"),
        "rows": (11, "its rows 10"),
        "classes": (3, "its classes 2"),
        "dtype": ("float32", "its dtype 'float16'"),
    }
    for key, (value, said) in cases.items():
        with pytest.raises(StoreError) as err:
            LogitStore.open(folder, **{key: value})
        message = str(err.value)
        assert message.startswith(f"{folder} does not fit this data: {said}"), message
        assert "(task rte, split train); run kdnlu-teach on this data again" in message
    assert len(LogitStore.open(folder, rows=10, classes=2, dtype="float16")) == 10


def test_damage_is_found_on_open(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    write_dense(folder, spec(), dense_logits(spec())).finish()
    logits = folder / "logits.npy"
    data = bytearray(logits.read_bytes())
    data[-1] ^= 0xFF  # flipped bits in the last value: same shape, other content
    logits.write_bytes(bytes(data))
    with pytest.raises(StoreError) as err:
        LogitStore.open(folder)
    assert str(err.value) == (
        f"{folder}: shard 2: rows 8-9 of logits.npy do not match their recorded SHA-256 (the "
        "file was changed); the store is damaged"
    )
    LogitStore.open(folder, verify=False)  # shapes still fit: opens without the checksums
    logits.write_bytes(bytes(data[:-8]))  # truncated
    with pytest.raises(StoreError, match=r"^\S+: logits.npy is not a readable array"):
        LogitStore.open(folder, verify=False)
    logits.unlink()
    with pytest.raises(StoreError, match=r"^\S+: logits.npy is missing; the store is damaged$"):
        LogitStore.open(folder)
    (folder / "header.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"header.json is not readable JSON"):
        LogitStore.open(folder)


def test_interrupted_write_never_opens_and_resumes(tmp_path: Path) -> None:
    folder, s = tmp_path / "store", spec()
    logits = dense_logits(s)
    write_dense(folder, s, logits, shards=[0, 2])  # stopped before shard 1 and the header
    with pytest.raises(StoreError) as err:
        LogitStore.open(folder)
    assert str(err.value) == (
        f"{folder} is an unfinished logit store (its write was interrupted); run the same "
        "kdnlu-teach command again to finish it"
    )
    on_disk = np.load(folder / "logits.npy", mmap_mode="r+")
    on_disk[9] = 7.0  # shard 2's rows changed while stopped
    on_disk.flush()
    del on_disk
    again = StoreWriter(folder, s)
    assert again.pending == [1, 2]  # the damaged shard is written again
    with pytest.raises(StoreError, match=r"shards \[1, 2\] are not written yet"):
        again.finish()
    store = write_dense(folder, s, logits, shards=again.pending)
    np.testing.assert_array_equal(store.finish().logits(range(10)), logits.astype(np.float16))
    assert not (folder / "progress.json").exists()
    assert StoreWriter(folder, s).pending == []  # finished: nothing left to do


def test_a_different_store_is_never_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    write_dense(folder, spec(), dense_logits(spec()), shards=[0])
    with pytest.raises(StoreError) as err:
        StoreWriter(folder, spec(teachers=("other",)))
    assert str(err.value) == (
        f"{folder} holds an unfinished write of a different store (teachers ['teacher-a', "
        "'teacher-b', 'teacher-c'] vs ['other']); write to a new folder or remove it first"
    )
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    with pytest.raises(StoreError, match="exists and is not a logit store"):
        StoreWriter(other, spec())
    assert (other / "mine.txt").read_text() == "keep"


def test_bad_shards_are_refused(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "s", spec())
    labels = np.zeros(4, np.float32)
    with pytest.raises(StoreError, match=r"shard 0: logits has shape \[4, 3, 3\], expected"):
        writer.write_shard(0, {"logits": np.zeros((4, 3, 3)), "labels": labels})
    bad = np.zeros((4, 3, 2))
    bad[1, 1, 1] = np.nan
    with pytest.raises(StoreError, match="shard 0: logits holds NaN or infinite values"):
        writer.write_shard(0, {"logits": bad, "labels": labels})
    with pytest.raises(
        StoreError, match=r"needs arrays \['labels', 'logits'\], got \['topk_ids'\]"
    ):
        writer.write_shard(0, {"topk_ids": bad})


def test_pickled_store_reopens_its_maps(tmp_path: Path) -> None:
    s = spec()
    logits = dense_logits(s)
    store = write_dense(tmp_path / "s", s, logits).finish()
    store.logits([0, 5])
    copy = pickle.loads(pickle.dumps(store))
    assert copy._arrays == {}
    np.testing.assert_array_equal(copy.logits([5, 0]), store.logits([5, 0]))


def test_header_describes_the_store(tmp_path: Path) -> None:
    write_dense(tmp_path / "s", spec(), dense_logits(spec())).finish()
    header = json.loads((tmp_path / "s" / "header.json").read_text())
    assert header["format"] == 1
    assert header["spec"] == {
        "task": "rte",
        "split": "train",
        "rows": 10,
        "classes": 2,
        "teachers": list(TEACHERS),
        "fingerprint": "f" * 64,
        "kind": "dense",
        "dtype": "float16",
        "top_k": None,
        "shard_rows": 4,
    }
    assert sorted(header["shards"]) == ["0", "1", "2"]


def test_fingerprint_follows_the_examples_and_their_order() -> None:
    a = Example("1", "a premise", "a hypothesis", 0)
    b = Example("2", "another", None, 1)
    assert fingerprint_examples([a, b]) == fingerprint_examples([a, b])
    assert fingerprint_examples([a, b]) != fingerprint_examples([b, a])
    assert fingerprint_examples([a]) != fingerprint_examples(
        [Example("1", "a premise", "a hypothesis", 1)]
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dtype": "float64"}, "store dtype must be one of float16, float32, got 'float64'"),
        ({"kind": "topk"}, "a top-k store needs 1 <= top_k <= classes, got None"),
        ({"top_k": 2}, "top_k is only for top-k stores"),
        ({"teachers": ()}, "a store needs at least one teacher"),
    ],
)
def test_spec_is_checked(changes: dict, message: str) -> None:
    with pytest.raises(StoreError) as err:
        spec(**changes)
    assert str(err.value) == message
