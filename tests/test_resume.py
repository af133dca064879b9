"""Exact resume: a run killed (SIGKILL) or interrupted (SIGINT) at a step and resumed with
``kdnlu-train --resume`` ends with the weights and metrics of the run that never stopped; a
failed checkpoint write keeps the previous one; tampered training states are refused."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, TINY_RECIPE, run_python, write
from kdnlu.cli import train_main
from kdnlu.errors import KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.trainer import train

# 32 rows per task, batches of 16: 4 steps per epoch, 8 in all; dropout makes RNG state matter
OVERRIDES = ["train.epochs=2", "train.checkpoint_every=3", "train.warmup=0.25"]

KILL_AT_STEP = """
import os, signal, sys
from kdnlu.callbacks import Callback
from kdnlu.recipe import load_recipe
from kdnlu.trainer import train

recipe_path, step, overrides = sys.argv[1], int(sys.argv[2]), sys.argv[3:]


class Kill(Callback):
    def on_step_end(self, state, task, loss):
        if state.step == step:
            os.kill(os.getpid(), signal.SIGKILL)


train(load_recipe(recipe_path, overrides), progress=False, callbacks=[Kill()])
"""


def weights(run_dir: Path, name: str = "last") -> dict[str, torch.Tensor]:
    return load_file(run_dir / "checkpoints" / name / "model.safetensors")


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]


def assert_same_run(resumed: Path, reference: Path) -> None:
    for name in ("last", "best"):
        a, b = weights(resumed, name), weights(reference, name)
        assert a.keys() == b.keys()
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, different
    assert records(resumed) == records(reference)


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    return write(tmp_path / "tiny.yaml", TINY_RECIPE)


@pytest.fixture
def reference(recipe: Path) -> Path:
    """The same run, never stopped."""
    return train(load_recipe(recipe, [*OVERRIDES, "name=reference"]), progress=False).run_dir


@pytest.mark.parametrize(
    ("kill_at", "checkpoint_step"),
    [(4, 3), (5, 4), (7, 6)],  # mid-epoch, at an epoch's evaluation, mid-epoch after it
)
def test_sigkill_then_resume_is_exact(
    tmp_path: Path, recipe: Path, reference: Path, kill_at: int, checkpoint_step: int
) -> None:
    script = write(tmp_path / "kill.py", KILL_AT_STEP)
    proc = run_python(
        [str(script), str(recipe), str(kill_at), *OVERRIDES, "name=killed"], cwd=tmp_path
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_dir = tmp_path / "runs" / "killed"
    state = json.loads((run_dir / "checkpoints/last/trainer_state.json").read_text())
    assert state["step"] == checkpoint_step
    assert train_main(["--resume", str(run_dir), "--quiet"]) == 0
    assert_same_run(run_dir, reference)


def test_sigint_saves_then_resume_is_exact(tmp_path: Path, recipe: Path) -> None:
    overrides = ["train.epochs=40", "train.lr=1e-4", "name=run"]
    code = "import sys; from kdnlu.cli import train_main; sys.exit(train_main())"
    args = [sys.executable, "-c", code, str(recipe), "--quiet"]
    args += [f"--set={o}" for o in overrides]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "runs" / "run"
    deadline = time.time() + 120
    while not (run_dir / "metrics.jsonl").is_file() and time.time() < deadline:
        time.sleep(0.05)  # the first evaluation: the loop is running
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    step = json.loads((run_dir / "checkpoints/last/trainer_state.json").read_text())["step"]
    assert 4 <= step < 160
    assert err.endswith(
        f"interrupted after step {step}; runs/run/checkpoints/last holds everything to go on: "
        "kdnlu-train --resume runs/run\n"
    )

    assert train_main(["--resume", str(run_dir), "--quiet"]) == 0
    reference = train(load_recipe(recipe, [*overrides[:2], "name=reference"]), progress=False)
    assert_same_run(run_dir, reference.run_dir)


def test_resume_refusals(
    tmp_path: Path, recipe: Path, reference: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_main(["--resume", str(reference)]) == 2
    assert capsys.readouterr().err == (
        f"error: {reference} finished at step 8; there is nothing to resume\n"
    )
    assert train_main([str(recipe), "--resume", str(reference)]) == 2
    assert "--resume goes on with the run's own recipe.yaml" in capsys.readouterr().err
    assert train_main(["--resume", str(tmp_path)]) == 2
    assert f"{tmp_path} is not a run directory" in capsys.readouterr().err
    (reference / "checkpoints/last/training.pt").unlink()
    assert train_main(["--resume", str(reference)]) == 2
    assert "has no training.pt" in capsys.readouterr().err


class _Payload:
    def __reduce__(self):  # what a tampered file would run on an unsafe load
        return (os.system, (f"touch {Path.cwd() / 'PWNED'}",))


def test_a_malicious_pickle_in_a_checkpoint_is_refused(tmp_path: Path, reference: Path) -> None:
    (reference / "checkpoints/last/training.pt").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(KdnluError) as err:
        train(load_recipe(reference / "recipe.yaml"), progress=False, resume_from=reference)
    assert "holds objects other than tensors and plain values and is refused" in str(err.value)
    assert not (tmp_path / "PWNED").exists()


def test_a_failed_checkpoint_write_keeps_the_previous_one(
    tmp_path: Path, recipe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kdnlu.checkpoint

    real_save, calls = kdnlu.checkpoint.save_model, []

    def save_or_fail(model, path):
        calls.append(path)
        if len(calls) == 3:  # last and best at step 4 went through; last at step 6 fails
            real_save(model, path)
            raise OSError(28, "No space left on device")
        real_save(model, path)

    monkeypatch.setattr(kdnlu.checkpoint, "save_model", save_or_fail)
    with pytest.raises(KdnluError) as err:
        train(load_recipe(recipe, [*OVERRIDES, "train.checkpoint_every=6"]), progress=False)
    last = tmp_path / "runs" / "tiny_test" / "checkpoints" / "last"
    assert str(err.value) == (
        "cannot write checkpoint runs/tiny_test/checkpoints/last (No space left on device); "
        "the previous one is kept. "
        "Free disk space or fix the folder's permissions"
    )
    assert json.loads((last / "trainer_state.json").read_text())["step"] == 4
    assert sorted(p.name for p in last.parent.iterdir()) == ["best", "last"]  # no leftovers
    monkeypatch.undo()
    resumed = train(
        load_recipe(last.parents[1] / "recipe.yaml"), progress=False, resume_from=last.parents[1]
    )
    assert resumed.steps == 8
