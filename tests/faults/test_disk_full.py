"""A full disk (or ``ulimit -f``) while writing checkpoints, logit stores and run files: one
paragraph naming what could not be written, a non-zero exit, no traceback, and nothing
half-written left in place."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import SafetensorError

from conftest import REPO, TINY_RECIPE, write
from kdnlu.cli import train_main
from kdnlu.errors import KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.rundir import append_jsonl
from kdnlu.trainer import train

ENTRY = "import sys; from kdnlu.cli import {0}; sys.exit({0}())"


def run_limited(
    entry: str, args: list[str], cwd: Path, max_bytes: int
) -> subprocess.CompletedProcess:
    """A kdnlu command whose files may grow to ``max_bytes`` at most (as under ``ulimit -f``;
    Python ignores SIGXFSZ, so a larger write fails with EFBIG)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", ENTRY.format(entry), *args]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, preexec_fn=limit
    )


def test_ulimit_during_the_first_checkpoint_is_one_paragraph(tmp_path: Path) -> None:
    write(tmp_path / "r.yaml", TINY_RECIPE)
    proc = run_limited("train_main", ["r.yaml", "--quiet"], tmp_path, 1 << 20)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "error: cannot write checkpoint runs/tiny_test/checkpoints/best (Error while "
        "serializing: I/O error: File too large (os error 27)); there is no earlier one. Free "
        "disk space or fix the folder's permissions\n"
    )
    assert sorted(p.name for p in (tmp_path / "runs/tiny_test/checkpoints").iterdir()) == []


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("save_model", SafetensorError("Error while serializing: I/O error: No space left")),
        ("torch.save", RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")),
        ("torch.save", OSError(errno.ENOSPC, "No space left on device")),
    ],
)
def test_every_kind_of_failed_checkpoint_write_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, error: Exception
) -> None:
    import kdnlu.checkpoint

    calls = []
    real = kdnlu.checkpoint.save_model if target == "save_model" else kdnlu.checkpoint.torch.save

    def fail_on_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise error
        return real(*args, **kwargs)

    where = kdnlu.checkpoint if target == "save_model" else kdnlu.checkpoint.torch
    monkeypatch.setattr(where, target.split(".")[-1], fail_on_the_second)
    overrides = ["train.epochs=2", "train.checkpoint_every=1"]
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), overrides)
    with pytest.raises(KdnluError) as err:
        train(recipe, progress=False)
    message = str(err.value)
    assert message.startswith("cannot write checkpoint runs/tiny_test/checkpoints/last (")
    assert message.endswith(
        "); the previous one is kept. Free disk space or fix the folder's permissions"
    )
    assert sorted(p.name for p in (tmp_path / "runs/tiny_test/checkpoints").iterdir()) == ["last"]


def test_ulimit_during_kdnlu_teach_is_one_paragraph(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), ["train.max_steps=1"])
    teacher = train(recipe, progress=False).run_dir
    args = [str(teacher), "--out", "store", "--tasks", "rte", "--quiet", "--device", "cpu"]
    proc = run_limited("teach_main", args, tmp_path, 1000)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "error: cannot write logit store store/rte/train (File too large); the shards written "
        "so far are kept. Free disk space (or fix the folder's permissions), then run the same "
        "kdnlu-teach command again to finish it\n"
    )


def test_a_failed_write_of_a_run_file_is_one_paragraph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(OSError) as err:
        append_jsonl(Path("/dev/full"), {"step": 1})
    assert err.value.errno == errno.ENOSPC and err.value.filename == "/dev/full"
    import kdnlu.train_callbacks

    def disk_full(path: Path, record: dict) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(kdnlu.train_callbacks, "append_jsonl", disk_full)
    write(tmp_path / "r.yaml", TINY_RECIPE)
    assert train_main(["r.yaml", "--quiet", "--set", "train.max_steps=1"]) == 2
    assert capsys.readouterr().err == (
        "error: cannot write runs/tiny_test/metrics.jsonl (No space left on device); the files "
        "written before it are whole (each is written under a temporary name, then renamed). "
        "Free disk space (or fix permissions), then run the same command again\n"
    )
