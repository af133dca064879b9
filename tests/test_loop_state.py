"""The loop's state is one dataclass: checkpoints/last saves exactly its fields and a resume
rebuilds it from them; the batcher and the task schedule save and restore their own state."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_RECIPE, write
from kdnlu.batches import TaskBatches, TaskSchedule
from kdnlu.callbacks import Callback, TrainState
from kdnlu.cli import train_main
from kdnlu.data import EncodedSplit
from kdnlu.loop_state import LoopState
from kdnlu.recipe import load_recipe
from kdnlu.registry import SAMPLERS
from kdnlu.trainer import train


class Record(Callback):
    """The loop state after each step (as the checkpointer, which runs after this callback,
    saves it), and at step 4 the training state the step-3 checkpoint saved."""

    def __init__(self) -> None:
        self.states: dict[int, dict] = {}
        self.saved: dict = {}

    def on_step_end(self, state: TrainState, task: str, loss: float) -> None:
        self.states[state.step] = dataclasses.asdict(state.loop)
        if state.step == 4:
            path = state.run_dir / "checkpoints/last/training.pt"
            self.saved = torch.load(path, weights_only=True)


def test_checkpoints_save_the_loop_state_field_by_field(tmp_path: Path) -> None:
    recipe = write(tmp_path / "r.yaml", TINY_RECIPE)
    record = Record()
    overrides = ["train.epochs=2", "train.checkpoint_every=3"]  # 4 steps an epoch
    train(load_recipe(recipe, overrides), progress=False, callbacks=[record])
    assert record.saved["step"] == 3
    assert list(record.saved["loop"]) == [f.name for f in dataclasses.fields(LoopState)]
    restored = dataclasses.asdict(LoopState(**record.saved["loop"]))
    assert restored == {**record.states[3], "seconds": restored["seconds"]}
    assert restored["order"] is not None and restored["position"] == 3  # inside epoch 1
    assert restored["epoch"] == 1 and restored["evaluated_at"] == -1 and restored["seconds"] > 0


def _splits() -> dict[str, EncodedSplit]:
    lengths = {"a": [5, 9, 3, 7, 4, 8, 6], "b": [4, 4, 10, 2, 6]}
    splits = {}
    for key, rows in lengths.items():
        offsets = np.cumsum([0, *rows])
        splits[key] = EncodedSplit(
            task=key,
            ids=np.ones(offsets[-1], dtype=np.int32),
            type_ids=None,
            offsets=offsets,
            labels=np.zeros(len(rows), dtype=np.int64),
            pad_id=0,
        )
    return splits


def test_the_batcher_and_the_schedule_go_on_from_their_state_dict() -> None:
    splits = _splits()
    sampler = SAMPLERS.get("mtdnn").build()
    first = TaskBatches(splits, 2, True, random.Random(7))
    schedule = TaskSchedule(sampler, random.Random(3))
    order = schedule.epoch(first.counts())
    drawn = [first.next(key) for key in order[:3]]
    saved_batches, saved_schedule = first.state_dict(), schedule.state_dict()
    # a fresh pair with other seeds, loaded with the saved states, continues the same way
    second = TaskBatches(splits, 2, True, random.Random(99))
    second.load_state_dict(saved_batches)
    resumed = TaskSchedule(sampler, random.Random(99))
    resumed.load_state_dict(saved_schedule)
    keys = ["a"] * 6 + ["b"] * 4
    assert [second.next(k) for k in keys] == [first.next(k) for k in keys]
    assert resumed.epoch(first.counts()) == schedule.epoch(first.counts())
    assert drawn and all(isinstance(row, int) for batch in drawn for row in batch)


def test_a_checkpoint_of_the_earlier_format_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(tmp_path / "r.yaml", TINY_RECIPE)
    overrides = ["train.epochs=2", "train.max_steps=3"]
    run = train(load_recipe(recipe, overrides), progress=False).run_dir
    path = run / "checkpoints/last/training.pt"
    saved = torch.load(path, weights_only=True)
    torch.save({**saved, "format": 1}, path)
    capsys.readouterr()  # the training run's own log lines, when logging shows them
    assert train_main(["--resume", str(run)]) == 2
    assert capsys.readouterr().err == (
        f"error: {path} was written by an earlier kdnlu (training state format 1, this one "
        "reads 2); finish that run with the kdnlu that started it, or start it again with "
        f"kdnlu-train {run}/recipe.yaml\n"
    )
