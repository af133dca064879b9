"""One evaluation's checkpoints: a kill between its two saves never loses the recorded best,
leftovers of a cut swap are cleared, and a run whose recorded best is missing is refused by
predict and export rather than served from ``last``."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY_RECIPE, run_python, write
from kdnlu.cli import train_main
from kdnlu.errors import KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.rundir import recover_swap
from kdnlu.trained import load_trained
from kdnlu.trainer import train

OVERRIDES = ["train.epochs=2", "train.checkpoint_every=3", "train.warmup=0.25"]

# kills the run right after the first checkpoint folder written at the evaluation of a step
KILL_AFTER_FIRST_SAVE = """
import os, signal, sys
import kdnlu.train_callbacks
import kdnlu.trainer
from kdnlu.recipe import load_recipe

recipe_path, step, overrides = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
real_save = kdnlu.train_callbacks.save_checkpoint


def save_then_kill(folder, model, state, training=None):
    real_save(folder, model, state, training)
    if state["step"] == step and state["dev"]:
        os.kill(os.getpid(), signal.SIGKILL)


kdnlu.train_callbacks.save_checkpoint = save_then_kill
kdnlu.trainer.train(load_recipe(recipe_path, overrides), progress=False)
"""


def weights(run_dir: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "checkpoints" / name / "model.safetensors")


def last_state(run_dir: Path) -> dict:
    return json.loads((run_dir / "checkpoints/last/trainer_state.json").read_text())


def test_a_kill_between_an_evaluations_two_saves_keeps_the_recorded_best(
    tmp_path: Path,
) -> None:
    recipe = write(tmp_path / "tiny.yaml", TINY_RECIPE)
    reference = train(load_recipe(recipe, [*OVERRIDES, "name=reference"]), progress=False)
    script = write(tmp_path / "kill.py", KILL_AFTER_FIRST_SAVE)
    proc = run_python([str(script), str(recipe), "4", *OVERRIDES, "name=killed"], cwd=tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_dir = tmp_path / "runs" / "killed"
    recorded = last_state(run_dir)["best_step"]
    if recorded is not None:  # whatever last records as best is there
        assert (run_dir / "checkpoints/best/model.safetensors").is_file()
    assert train_main(["--resume", str(run_dir), "--quiet"]) == 0
    for name in ("last", "best"):
        a, b = weights(run_dir, name), weights(reference.run_dir, name)
        assert all(torch.equal(a[k], b[k]) for k in b), name
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best", "last"]


def test_retired_leftovers_beside_a_complete_checkpoint_are_removed(tmp_path: Path) -> None:
    (tmp_path / "last").mkdir()
    (tmp_path / ".last.abcd.retired").mkdir()  # a kill during the swap's clean-up
    (tmp_path / ".last.abcd.retired" / "model.safetensors").write_bytes(b"old")
    assert not recover_swap(tmp_path / "last")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


@pytest.fixture
def one_step_run(tmp_path: Path) -> Path:
    """A finished run of one step: its only evaluation wrote best, the same weights as last."""
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), ["train.max_steps=1"])
    return train(recipe, progress=False).run_dir


def test_a_run_whose_recorded_best_is_missing_is_refused(one_step_run: Path) -> None:
    shutil.rmtree(one_step_run / "checkpoints" / "best")
    with pytest.raises(KdnluError) as err:
        load_trained(one_step_run)
    assert str(err.value) == (
        f"{one_step_run}: checkpoints/last records a best checkpoint at step 1, but "
        f"{one_step_run}/checkpoints/best/model.safetensors is missing; kdnlu-train --resume "
        f"{one_step_run} rewrites it where it can, or pass --checkpoint last to use the last "
        "weights instead"
    )
    assert load_trained(one_step_run, "last").checkpoint.name == "last"


def test_resume_rewrites_a_best_lost_after_last_was_saved(one_step_run: Path) -> None:
    expected = weights(one_step_run, "best")
    shutil.rmtree(one_step_run / "checkpoints" / "best")
    assert train_main(["--resume", str(one_step_run), "--quiet"]) == 2  # finished: no steps
    restored = weights(one_step_run, "best")
    assert all(torch.equal(restored[k], expected[k]) for k in expected)
    assert load_trained(one_step_run).checkpoint.name == "best"
