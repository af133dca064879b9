"""`train_sample`: a fixed random sample of a task's training rows, the same for every seed."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_RECIPE, write
from kdnlu.build import training_units
from kdnlu.callbacks import Callback
from kdnlu.cli import dry_build
from kdnlu.config import RecipeError
from kdnlu.data import EncodedSplit
from kdnlu.recipe import load_recipe
from kdnlu.trainer import train

SAMPLED = TINY_RECIPE.replace("rte: {train_rows: 32,", "rte: {train_rows: 300, train_sample: 20,")


class SeenRows(Callback):
    """Records the training rows of every batch, per task."""

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}

    def on_loss(self, state, batch, logits, loss):  # type: ignore[no-untyped-def]
        self.rows.setdefault(batch.task, []).extend(batch.indices.tolist())
        return loss


def _rows_seen(tmp_path: Path, *overrides: str) -> dict[str, list[int]]:
    recipe = load_recipe(
        write(tmp_path / "r.yaml", SAMPLED), [f"output_dir={tmp_path / 'runs'}", *overrides]
    )
    seen = SeenRows()
    train(recipe, progress=False, callbacks=[seen])
    return seen.rows


def test_training_sees_exactly_the_sample_each_epoch_and_the_same_for_every_seed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="kdnlu")
    first = _rows_seen(tmp_path, "train.epochs=2", "train.seed=1", "name=a")
    assert "training 8 steps (2 epochs) on rte 20 rows, mrpc 32 rows" in caplog.text
    other = _rows_seen(tmp_path, "train.epochs=2", "train.seed=2", "name=b")
    # rows keep their place in the split (a teachers' store lines up): indices up to 299
    sample = sorted(set(first["rte"]))
    assert len(sample) == 20 and max(sample) > 32
    assert sorted(first["rte"]) == sorted(sample * 2)  # each sampled row once per epoch
    assert sorted(other["rte"]) == sorted(first["rte"])  # the same rows whatever train.seed
    assert first["rte"] != other["rte"]  # in another order
    assert sorted(first["mrpc"]) == sorted(list(range(32)) * 2)  # other tasks are untouched
    moved = _rows_seen(tmp_path, "tasks.rte.sample_seed=5", "name=c")
    assert sorted(set(moved["rte"])) != sample and len(set(moved["rte"])) == 20


def split_of(rows: int) -> EncodedSplit:
    ids = np.arange(rows * 2, dtype=np.int64)
    offsets = np.arange(0, rows * 2 + 1, 2, dtype=np.int64)
    return EncodedSplit("t", ids, ids * 0, offsets, np.zeros(rows), pad_id=0)


@dataclass
class GroupLoss:
    target: str = "group"
    group_size: int = 2
    positive_label: int = 1


def test_a_ranking_task_draws_whole_candidate_groups(tmp_path: Path) -> None:
    recipe = load_recipe(
        write(tmp_path / "r.yaml", SAMPLED.replace("train_sample: 20", "train_sample: 3"))
    )
    split = split_of(10)
    split = EncodedSplit(
        "rte",
        split.ids,
        split.type_ids,
        split.offsets,
        np.array([1, 0] * 5, dtype=np.float64),
        0,
        np.repeat(np.arange(5), 2),
    )
    units = training_units(recipe, {"rte": split}, {"rte": GroupLoss()})
    assert units["rte"].shape == (3, 2)
    assert all(int(b) == int(a) + 1 and int(a) % 2 == 0 for a, b in units["rte"])


def test_a_sample_as_large_as_the_split_trains_on_every_row_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = load_recipe(write(tmp_path / "r.yaml", SAMPLED))
    loss = torch.nn.CrossEntropyLoss()
    assert training_units(recipe, {"rte": split_of(20), "mrpc": split_of(5)}, {}) == {}
    assert "train_sample 20 is not below its 20 training rows" in caplog.text
    units = training_units(recipe, {"rte": split_of(21)}, {"rte": loss})
    assert units["rte"].shape == (20, 1) and len(set(units["rte"][:, 0])) == 20


def test_dry_run_counts_the_sample_and_a_bad_size_names_the_key(tmp_path: Path) -> None:
    assert "rte: 20 of 300 train" in dry_build(load_recipe(write(tmp_path / "r.yaml", SAMPLED)))
    bad = write(tmp_path / "bad.yaml", SAMPLED.replace("train_sample: 20", "train_sample: 0"))
    with pytest.raises(
        RecipeError, match=r"tasks\.rte\.train_sample: must be a positive number of rows, got 0$"
    ):
        load_recipe(bad)
