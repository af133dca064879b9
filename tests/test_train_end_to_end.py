"""kdnlu-train end to end on a tiny random BERT and real GLUE sample rows."""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from conftest import TINY_RECIPE, run_python, write
from kdnlu.recipe import load_recipe
from kdnlu.trainer import train


def test_console_script_writes_the_run_dir(tmp_path: Path) -> None:
    recipe = write(tmp_path / "r.yaml", TINY_RECIPE)
    out_dir = tmp_path / "out"
    proc = run_python(
        [
            "-c",
            "import sys; from kdnlu.cli import train_main; sys.exit(train_main())",
            str(recipe),
            "--set",
            f"output_dir={out_dir}",
            "--set",
            "train.epochs=2",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = out_dir / "tiny_test"
    assert {p.name for p in run_dir.iterdir()} == {
        "recipe.yaml",
        "env.json",
        "metrics.jsonl",
        "checkpoints",
        "tb",
    }
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert set(lines[-1]["dev"]) == {"rte", "mrpc"}
    assert set(lines[-1]["dev"]["mrpc"]) == {"f1", "accuracy"}
    weights = load_file(run_dir / "checkpoints" / "last" / "model.safetensors")
    assert "heads.rte.out.weight" in weights and weights["heads.mrpc.out.weight"].shape == (2, 32)
    state = json.loads((run_dir / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert state["epoch"] == 2 and state["step"] == lines[-1]["step"] == 8
    env = json.loads((run_dir / "env.json").read_text())
    assert env["packages"]["torch"] == "2.13.0+cpu" or env["packages"]["torch"].startswith("2.13.0")
    assert "--set" in env["command"]
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tb").iterdir())
    # the summary names the metrics and the run dir
    assert "dev metrics (last evaluation, step 8):" in proc.stdout
    assert f"run dir: {run_dir}" in proc.stdout
    best = json.loads((run_dir / "checkpoints" / "best" / "trainer_state.json").read_text())
    where = "the last evaluation" if best["step"] == 8 else f"step {best['step']}"
    assert (
        f"best average {best['best_score']:.2f} at {where}: checkpoints/best, which predict and "
        "export use"
    ) in proc.stdout
    assert "epoch 2: train loss" in proc.stderr
    # the resolved recipe reloads to the same run config
    resolved = load_recipe(run_dir / "recipe.yaml")
    original = load_recipe(recipe, [f"output_dir={out_dir}", "train.epochs=2"])
    assert resolved == original


def test_second_run_never_overwrites_the_first(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), ["train.max_steps=1"])
    first = train(recipe, progress=False).run_dir
    second = train(recipe, progress=False).run_dir
    assert first.name == "tiny_test" and second.name == "tiny_test-2"


def test_training_loss_falls_on_a_learnable_slice(tmp_path: Path) -> None:
    recipe = load_recipe(
        write(tmp_path / "r.yaml", TINY_RECIPE),
        [
            "tasks.rte.train_rows=32",
            "tasks.mrpc.train_rows=32",
            "train.epochs=15",
            "train.lr=3e-3",
            "train.warmup=0.0",
            "encoder.dropout=0.0",
            "tasks.rte.head.dropout=0.0",
            "tasks.mrpc.head.dropout=0.0",
        ],
    )
    result = train(recipe, progress=False)
    assert len(result.train_loss) == 15
    assert result.train_loss[-1] < 0.5 * result.train_loss[0], result.train_loss


def test_max_steps_stops_mid_epoch(tmp_path: Path) -> None:
    recipe = load_recipe(
        write(tmp_path / "r.yaml", TINY_RECIPE), ["train.max_steps=3", "train.epochs=5"]
    )
    result = train(recipe, progress=False)
    assert (result.steps, result.epochs) == (3, 1)


def test_checkpoint_reloads_and_reproduces_dev_metrics(tmp_path: Path) -> None:
    from kdnlu.build import build_model, encode_eval_splits
    from kdnlu.checkpoint import load_weights
    from kdnlu.evaluation import evaluate

    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), ["train.max_steps=3"])
    run_dir = train(recipe, progress=False).run_dir
    recorded = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["dev"]
    # the snippet of docs/runs.md
    again = load_recipe(run_dir / "recipe.yaml")
    tasks = again.build_tasks()
    model = build_model(again, tasks)
    load_weights(run_dir / "checkpoints" / "last", model)
    dev = encode_eval_splits(again, tasks, model.encoder.tokenizer)
    assert evaluate(model, tasks, dev, 64, torch.device("cpu")) == recorded


def test_run_files_get_the_usual_permissions(tmp_path: Path) -> None:
    import os
    import stat

    from kdnlu.rundir import atomic_write_text, current_umask

    target = tmp_path / "x" / "file.txt"
    atomic_write_text(target, "hello\n")
    assert target.read_text() == "hello\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~current_umask()
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]  # no temporary left


def test_failed_write_leaves_the_previous_file(tmp_path: Path) -> None:
    import pytest

    from kdnlu.rundir import atomic_write, atomic_write_text

    target = tmp_path / "metrics.json"
    atomic_write_text(target, "old\n")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_save_cut_between_its_renames_is_finished_on_load(tmp_path: Path) -> None:
    import shutil

    from kdnlu.trained import load_trained

    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), ["train.max_steps=1"])
    checkpoints = train(recipe, progress=False).run_dir / "checkpoints"
    last = checkpoints / "last"
    # the window of staged_dir's swap: old folder renamed aside, new one not yet in place
    shutil.copytree(last, checkpoints / ".last.x1.staging")
    last.rename(checkpoints / ".last.x1.retired")
    (checkpoints / ".last.x1.staging" / "marker").write_text("new")
    run = load_trained(checkpoints.parent, "last")
    assert run.checkpoint == last and (last / "marker").read_text() == "new"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best", "last"]
    # with the new folder gone as well, the old one comes back
    last.rename(checkpoints / ".last.x2.retired")
    load_trained(checkpoints.parent, "last")
    assert (last / "marker").is_file() and sorted(p.name for p in checkpoints.iterdir()) == [
        "best",
        "last",
    ]


def test_recovery_prefers_the_new_folder_over_stale_leftovers(tmp_path: Path) -> None:
    import os

    from kdnlu.rundir import recover_swap

    def folder(name: str, version: str, age: int) -> None:
        path = tmp_path / name
        path.mkdir()
        (path / "version").write_text(version)
        os.utime(path, (1_000_000 + age, 1_000_000 + age))

    folder(".last.aaaa.retired", "v0", 0)  # left by an earlier crash during the clean-up
    folder(".last.zzzz.retired", "v2", 1)
    folder(".last.zzzz.staging", "v3", 2)
    assert recover_swap(tmp_path / "last")
    assert (tmp_path / "last" / "version").read_text() == "v3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert not recover_swap(tmp_path / "last")  # nothing to do once it is there
