"""benchmarks/compare_runs.py: the table docs/results.md is made with."""

import json
from pathlib import Path

from conftest import REPO, run_python


def fake_run(root: Path, name: str, dev: dict) -> str:
    run = root / name
    run.mkdir(parents=True)
    first = {"step": 1, "dev": {k: {m: 0.0 for m in v} for k, v in dev.items()}}
    lines = [json.dumps(first), json.dumps({"step": 2, "dev": dev})]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return str(run)


def test_arms_over_seeds(tmp_path: Path) -> None:
    multi = [
        fake_run(
            tmp_path, "m1", {"rte": {"accuracy": 60.0}, "mrpc": {"f1": 80.0, "accuracy": 70.0}}
        ),
        fake_run(
            tmp_path, "m2", {"rte": {"accuracy": 62.0}, "mrpc": {"f1": 84.0, "accuracy": 74.0}}
        ),
    ]
    single = [
        fake_run(tmp_path, "r1", {"rte": {"accuracy": 58.0}})
        + ","
        + fake_run(tmp_path, "p1", {"mrpc": {"f1": 82.0, "accuracy": 72.0}}),
        fake_run(tmp_path, "r2", {"rte": {"accuracy": 58.0}})
        + ","
        + fake_run(tmp_path, "p2", {"mrpc": {"f1": 82.0, "accuracy": 72.0}}),
    ]
    proc = run_python(
        [
            str(REPO / "benchmarks" / "compare_runs.py"),
            "--arm",
            "multi",
            *multi,
            "--arm",
            "single",
            *single,
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "| dev metric | multi (seeds) | single (seeds) | multi mean ± std | single mean ± std "
        "| multi − single | paired p |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        # rte: differences 2 and 4, t = 3 / (sqrt(2) / sqrt(2)) = 3 on 1 df: p = 0.205
        "| rte accuracy | 60.00 / 62.00 | 58.00 / 58.00 | 61.00 ± 1.41 | 58.00 ± 0.00 | +3.00 "
        "| 0.205 |",
        "| mrpc f1 | 80.00 / 84.00 | 82.00 / 82.00 | 82.00 ± 2.83 | 82.00 ± 0.00 | +0.00 | 1.000 |",
        "| mrpc accuracy | 70.00 / 74.00 | 72.00 / 72.00 | 72.00 ± 2.83 | 72.00 ± 0.00 | +0.00 "
        "| 1.000 |",
        # average: (rte + mean(mrpc f1, acc)) / 2 per seed: 67.5, 70.5 and 67.5, 67.5 (p 0.5)
        "| average | 67.50 / 70.50 | 67.50 / 67.50 | 69.00 ± 2.12 | 67.50 ± 0.00 | +1.50 | 0.500 |",
    ]


def test_runs_whose_folders_are_gone_come_from_a_records_file(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    first = fake_run(tmp_path, "a1", {"rte": {"accuracy": 60.0}})
    second = fake_run(tmp_path, "b1", {"rte": {"accuracy": 50.0}})
    script = str(REPO / "benchmarks" / "compare_runs.py")
    saved = run_python([script, "--save-records", str(records), first, second], tmp_path)
    assert saved.returncode == 0, saved.stderr
    names = [json.loads(line)["run"] for line in records.read_text().splitlines()]
    assert names == ["a1", "b1"]
    (Path(first) / "metrics.jsonl").unlink()
    (Path(first)).rmdir()
    table = run_python([script, "--records", str(records), "a1", second], tmp_path)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[2:] == [
        "| a1 | 60.00 | 60.00 |",
        "| b1 | 50.00 | 50.00 |",
    ]
    again = run_python(
        [script, "--save-records", str(records), "--prefix", "rebuilt_", second], tmp_path
    )
    assert again.returncode == 0, again.stderr
    names = [json.loads(line)["run"] for line in records.read_text().splitlines()]
    assert names == ["a1", "b1", "rebuilt_b1"]


def test_mean_std_of_one_seed_shows_no_spread() -> None:
    from compare_runs import mean_std

    assert mean_std([44.19]) == "44.19"
    assert mean_std([58.0, 58.0]) == "58.00 ± 0.00"
    assert mean_std([60.0, 62.0]) == "61.00 ± 1.41"
