"""Faults that have no other home: a non-finite loss under the skip policy, an unwritable run
folder, and the check that docs/reliability.md names only tests that exist."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, TINY_RECIPE, write
from kdnlu.build import build_model
from kdnlu.callbacks import Callback
from kdnlu.errors import KdnluError, TrainingError
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
        write(tmp_path / "r.yaml", TINY_RECIPE),
        ["train.on_nonfinite_loss=skip", "train.epochs=2", "train.max_skipped_fraction=0.25"],
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
    overrides = [
        "train.on_nonfinite_loss=skip",
        "train.max_steps=1",
        "train.max_skipped_fraction=1",
    ]
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), overrides)
    result = train(recipe, progress=False, callbacks=[NanAt({0})])
    set_seed(recipe.train.seed)  # as the trainer does before it builds the model
    initial = build_model(recipe, recipe.build_tasks()).state_dict()
    saved = load_file(result.run_dir / "checkpoints/last/model.safetensors")
    assert saved and all(saved[k].equal(initial[k]) for k in saved)


def test_skip_policy_gives_up_past_its_fraction_of_batches(tmp_path: Path) -> None:
    overrides = [
        "train.on_nonfinite_loss=skip",
        "train.epochs=2",
        "train.max_skipped_fraction=0.25",
    ]
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), overrides)
    with pytest.raises(TrainingError) as err:
        train(recipe, progress=False, callbacks=[NanAt({1, 2, 3})])
    assert str(err.value) == (
        "3 of the run's 8 batches had a non-finite loss, more than train.max_skipped_fraction "
        "(0.25) allows: the run is diverging; lower train.lr, set train.grad_clip, or check the "
        "data"
    )


class InfiniteGradient(torch.autograd.Function):
    """The loss as it is, but an infinite gradient: a finite loss that breaks the weights."""

    @staticmethod
    def forward(ctx, loss):
        return loss.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


class BreakWeightsAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_loss(self, state, batch, logits, loss):
        return InfiniteGradient.apply(loss) if state.step == self.step else loss


@pytest.mark.parametrize("policy", ["skip", "error"])
def test_non_finite_weights_stop_the_run_and_are_never_saved(tmp_path: Path, policy: str) -> None:
    overrides = [f"train.on_nonfinite_loss={policy}", "train.epochs=2"]
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), overrides)
    with pytest.raises(TrainingError) as err:
        train(recipe, progress=False, callbacks=[BreakWeightsAt(5)])
    message = str(err.value)
    assert message.startswith("step 6 (epoch 2, a ")
    assert message.endswith(
        "the run stops without saving them. Lower train.lr or set train.grad_clip"
    )
    checkpoints = tmp_path / "runs" / "tiny_test" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best", "last"]
    for name in ("best", "last"):
        saved = load_file(checkpoints / name / "model.safetensors")
        assert all(bool(t.isfinite().all()) for t in saved.values()), name


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
