"""One writer at a time: a run directory, a bench folder and a logit store being written are
locked; a second writer is refused naming the holder's pid, and a killed holder leaves no
stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY_RECIPE, write
from kdnlu.bench.grid import load_bench
from kdnlu.bench.runner import run_bench
from kdnlu.cli import train_main
from kdnlu.errors import KdnluError
from kdnlu.lock import LOCK_FILE, lock_folder
from kdnlu.recipe import load_recipe
from kdnlu.teach import teach
from kdnlu.trainer import train

HOLD = """
import sys, time
from pathlib import Path
from kdnlu.lock import lock_folder

lock = lock_folder(Path(sys.argv[1]), "run directory")
print("locked", flush=True)
time.sleep(600)
"""


def refusal(folder: Path, pid: int, what: str) -> str:
    return (
        f"{folder} is being written by another process (pid {pid}); a {what} has one writer at "
        "a time. Wait for that process to end (or stop it), then run this again"
    )


def test_a_second_writer_is_refused_and_a_killed_one_leaves_no_stale_lock(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", HOLD, str(folder)]
    holder = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(KdnluError) as err:
            lock_folder(folder, "run directory")
        assert str(err.value) == refusal(folder, holder.pid, "run directory")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with lock_folder(folder, "run directory"):  # the lock died with its process
        assert (folder / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert not (folder / LOCK_FILE).exists()  # a writer that ends normally removes the file


def test_resume_of_a_run_being_written_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), ["train.max_steps=1"])
    run_dir = train(recipe, progress=False).run_dir
    assert not (run_dir / LOCK_FILE).exists()
    with lock_folder(run_dir, "run directory"):
        assert train_main(["--resume", str(run_dir), "--quiet"]) == 2
    assert capsys.readouterr().err == f"error: {refusal(run_dir, os.getpid(), 'run directory')}\n"


def test_a_bench_folder_being_written_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "tiny.yaml", TINY_RECIPE)
    path = write(tmp_path / "b.yaml", "recipe: tiny.yaml\noutput_dir: out\nseeds: [1]\n")
    bench = load_bench(path)
    with lock_folder(bench.folder, "bench folder"):
        with pytest.raises(KdnluError) as err:
            run_bench(bench, progress=False)
    assert str(err.value) == refusal(bench.folder, os.getpid(), "bench folder")
    assert not (bench.folder / "results.jsonl").exists()


def test_a_logit_store_being_written_is_refused(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), ["train.max_steps=1"])
    teacher = train(recipe, progress=False).run_dir
    folder = tmp_path / "store" / "rte" / "train"
    with lock_folder(folder, "logit store"):
        with pytest.raises(KdnluError) as err:
            teach([teacher], tmp_path / "store", ["rte"], progress=False)
    assert str(err.value) == refusal(folder, os.getpid(), "logit store")
    (store,) = teach([teacher], tmp_path / "store", ["rte"], progress=False)[:1]
    assert store.folder == folder and not (folder / LOCK_FILE).exists()


def test_a_folder_of_mlm_stores_being_written_is_refused(tmp_path: Path) -> None:
    from kdnlu.mlm.teach import teach_mlm

    out = tmp_path / "stores"
    with lock_folder(out, "folder of MLM logit stores"):
        with pytest.raises(KdnluError) as err:
            teach_mlm(None, None, out)  # type: ignore[arg-type]  # refused before they are used
    assert str(err.value) == refusal(out, os.getpid(), "folder of MLM logit stores")
