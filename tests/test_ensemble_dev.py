"""benchmarks/ensemble_dev.py: teachers' and ensemble's dev metrics from the dev stores."""

import subprocess
from pathlib import Path

import numpy as np

from conftest import REPO, TINY_RECIPE, run_python, write
from kdnlu.store import StoreSpec, StoreWriter


def dev_store(root: Path, key: str, logits: np.ndarray, labels: np.ndarray) -> None:
    spec = StoreSpec(
        task=key,
        split="dev",
        rows=len(logits),
        classes=logits.shape[-1],
        teachers=tuple(f"teacher_{i}/best@{i:016d}" for i in range(logits.shape[1])),
        fingerprint="0" * 64,
        dtype="float32",
    )
    writer = StoreWriter(root / key / "dev", spec)
    writer.write_shard(0, {"logits": logits, "labels": labels})
    writer.finish()


def ensemble_dev(folder: Path) -> subprocess.CompletedProcess:
    """Run the script on FOLDER/store, with a teacher run of the tiny recipe for metric names."""
    write(folder / "teacher" / "recipe.yaml", TINY_RECIPE)
    script = REPO / "benchmarks" / "ensemble_dev.py"
    return run_python([str(script), "store", "teacher"], cwd=folder)


def test_each_teacher_and_the_ensemble(tmp_path: Path) -> None:
    # 4 rows, gold 0 1 1 0. Teacher 0 is right on rows 0-2, teacher 1 on rows 1-3; the mean of
    # their probabilities follows the surer one: teacher 1 on row 0 (wrong) and row 3 (right)
    t0 = [[2, 0], [0, 1], [0, 1], [0, 1]]
    t1 = [[0, 9], [0, 1], [0, 1], [2, 0]]
    logits = np.array([t0, t1], dtype=np.float32).transpose(1, 0, 2)
    dev_store(tmp_path / "store", "rte", logits, np.array([0, 1, 1, 0], np.float32))
    proc = ensemble_dev(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "| model | rte accuracy | average |",
        "| --- | --- | --- |",
        "| teacher_0/best | 75.00 | 75.00 |",
        "| teacher_1/best | 75.00 | 75.00 |",
        "| ensemble | 75.00 | 75.00 |",
    ]


def test_teachers_that_differ_by_task(tmp_path: Path) -> None:
    """kdnlu-teach --keep-best keeps each task's own best teachers: a teacher left out of a task
    reads "-" there and in its average, and the ensemble row has every task."""
    right, wrong = [[0, 3], [3, 0]], [[3, 0], [0, 3]]  # gold is 1 then 0
    gold = np.array([1, 0], np.float32)
    rte = np.array([right, right], dtype=np.float32).transpose(1, 0, 2)  # teachers 0 and 1
    dev_store(tmp_path / "store", "rte", rte, gold)
    mrpc = np.array([right, wrong, right], dtype=np.float32).transpose(1, 0, 2)  # 0, 1 and 2
    dev_store(tmp_path / "store", "mrpc", mrpc, gold)
    proc = ensemble_dev(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "| model | rte accuracy | mrpc f1 | mrpc accuracy | average |",
        "| --- | --- | --- | --- | --- |",
        "| teacher_0/best | 100.00 | 100.00 | 100.00 | 100.00 |",
        "| teacher_1/best | 100.00 | 0.00 | 0.00 | 50.00 |",
        "| teacher_2/best | - | 100.00 | 100.00 | - |",
        "| ensemble | 100.00 | 100.00 | 100.00 | 100.00 |",
    ]


def test_a_store_without_the_teachers_tasks(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    proc = ensemble_dev(tmp_path)
    assert proc.returncode == 2
    assert "store holds no dev store of the tasks of teacher" in proc.stderr
