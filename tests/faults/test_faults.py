"""Faults that have no other home: a non-finite loss under the skip policy, an unwritable run
folder, and the check that docs/reliability.md names only tests that exist."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import REPO, TINY_RECIPE, write
from kdnlu.build import build_model
from kdnlu.callbacks import Callback
from kdnlu.errors import KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.run_control import set_seed
from kdnlu.trainer import train


class NanAt(Callback):
    """Turns the loss of the batches at these (0-based) step positions into NaN."""

    def __init__(self, steps: set[int]) -> None:
        self.steps = steps

    def on_loss(self, state, batch, logits, loss):
        return loss * float("nan") if state.step in self.steps else loss


def test_skip_policy_leaves_non_finite_batches_out_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = load_recipe(
        write(tmp_path / "r.yaml", TINY_RECIPE), ["train.on_nonfinite_loss=skip", "train.epochs=2"]
    )
    result = train(recipe, progress=False, callbacks=[NanAt({1, 5})])
    assert result.steps == 8  # the run goes on to its end
    records = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("skipped_batches") for r in records] == [1, 2]
    assert all(math.isfinite(r["train_loss"]) for r in records)  # NaNs are not averaged in
    assert "loss is nan (1 skipped)" in caplog.text and "loss is nan (2 skipped)" in caplog.text
    weights = load_file(result.run_dir / "checkpoints/last/model.safetensors")
    assert all(bool(t.isfinite().all()) for t in weights.values())


def test_a_step_whose_batches_all_fail_changes_nothing(tmp_path: Path) -> None:
    overrides = ["train.on_nonfinite_loss=skip", "train.max_steps=1"]
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), overrides)
    result = train(recipe, progress=False, callbacks=[NanAt({0})])
    set_seed(recipe.train.seed)  # as the trainer does before it builds the model
    initial = build_model(recipe, recipe.build_tasks()).state_dict()
    saved = load_file(result.run_dir / "checkpoints/last/model.safetensors")
    assert saved and all(saved[k].equal(initial[k]) for k in saved)


def test_an_output_dir_that_cannot_be_made_stops_before_training(tmp_path: Path) -> None:
    blocker = write(tmp_path / "taken", "a file where the folder should go\n")
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), [f"output_dir={blocker}/runs"])
    with pytest.raises(KdnluError) as err:
        train(recipe, progress=False)
    assert str(err.value) == f"cannot create output_dir {blocker}/runs: Not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_unwritable_output_dir_stops_before_training(tmp_path: Path) -> None:
    out = tmp_path / "readonly"
    out.mkdir()
    out.chmod(0o500)
    try:
        recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), [f"output_dir={out}"])
        with pytest.raises(KdnluError) as err:
            train(recipe, progress=False)
        assert (
            str(err.value) == f"output_dir {out} is not writable; --set output_dir=PATH elsewhere"
        )
    finally:
        out.chmod(0o700)


def test_reliability_table_names_real_tests() -> None:
    text = (REPO / "docs" / "reliability.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    assert len(named) >= 25
    for path, name in named:
        source = (REPO / path).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"{path}::{name}"
