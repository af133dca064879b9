"""Resume goes on only with what the run started with: an edited recipe.yaml, changed or shrunk
data and a run without a checkpoint are refused, naming what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from conftest import GLUE_SAMPLE, TINY_RECIPE, CrashAt, write
from kdnlu.cli import train_main
from kdnlu.errors import KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.resume import check_queues
from kdnlu.trainer import train


@pytest.fixture
def stopped_run(tmp_path: Path) -> Path:
    """A run stopped at step 4 of 8 on its own copy of the data, resumable from step 3."""
    for task in ("RTE", "MRPC"):
        shutil.copytree(GLUE_SAMPLE / task, tmp_path / "glue" / task)
    overrides = ["train.epochs=2", "train.checkpoint_every=3", f"data_root={tmp_path / 'glue'}"]
    recipe = load_recipe(write(tmp_path / "tiny.yaml", TINY_RECIPE), overrides)
    with pytest.raises(RuntimeError):
        train(recipe, progress=False, callbacks=[CrashAt(4)])
    return tmp_path / "runs" / "tiny_test"


def resume_error(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert train_main(["--resume", str(run_dir), "--quiet"]) == 2
    return capsys.readouterr().err


def test_resume_refuses_an_edited_recipe(
    stopped_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = stopped_run / "recipe.yaml"
    text = path.read_text()
    path.write_text(
        text.replace("lr: 0.001", "lr: 0.002").replace("batch_size: 16", "batch_size: 8")
    )
    assert resume_error(stopped_run, capsys) == (
        f"error: {stopped_run} cannot be resumed: since it started, {stopped_run}/recipe.yaml "
        "changed (train.lr 0.001 -> 0.002; train.batch_size 16 -> 8). Put back what it started "
        "with to resume it, or start a new run with the new values (kdnlu-train "
        f"{stopped_run}/recipe.yaml)\n"
    )
    path.write_text(text)
    assert train_main(["--resume", str(stopped_run), "--quiet"]) == 0


def flip_labels(path: Path) -> None:
    lines = path.read_text().splitlines()
    swap = {"entailment": "not_entailment", "not_entailment": "entailment"}
    rows = [line.rsplit("\t", 1) for line in lines[1:]]
    path.write_text("\n".join([lines[0], *(f"{a}\t{swap[b]}" for a, b in rows)]) + "\n")


def test_resume_refuses_changed_training_data(
    stopped_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flip_labels(tmp_path / "glue" / "RTE" / "train.tsv")
    assert resume_error(stopped_run, capsys) == (
        f"error: {stopped_run} cannot be resumed: since it started, the data of rte (train) "
        "changed. Put back what it started with to resume it, or start a new run with the new "
        f"values (kdnlu-train {stopped_run}/recipe.yaml)\n"
    )


def test_resume_after_the_data_shrank_names_it(
    stopped_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_file = tmp_path / "glue" / "MRPC" / "train.tsv"
    train_file.write_text("".join(train_file.read_text().splitlines(True)[:11]))
    assert "the data of mrpc (train) changed" in resume_error(stopped_run, capsys)
    # a checkpoint that recorded no fingerprints still gets a clear error, not an IndexError
    saved = torch.load(stopped_run / "checkpoints/last/training.pt", weights_only=True)
    with pytest.raises(KdnluError) as err:
        check_queues(saved, {"rte": 2, "mrpc": 2}, stopped_run)
    assert str(err.value).startswith(f"{stopped_run} cannot be resumed: its checkpoint goes on ")
    assert "training data, which now has 2 rows; the data changed" in str(err.value)


def test_resume_of_a_run_without_a_checkpoint(
    stopped_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(stopped_run / "checkpoints")
    assert resume_error(stopped_run, capsys) == (
        f"error: {stopped_run} has no checkpoint to resume from ({stopped_run}/checkpoints/last "
        "does not exist): it stopped before its first one was saved (train.checkpoint_every "
        f"saves them as it goes); start it again with kdnlu-train {stopped_run}/recipe.yaml\n"
    )
