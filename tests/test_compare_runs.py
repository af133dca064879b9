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
        "| multi − single |",
        "| --- | --- | --- | --- | --- | --- |",
        "| rte accuracy | 60.00 / 62.00 | 58.00 / 58.00 | 61.00 ± 1.41 | 58.00 ± 0.00 | +3.00 |",
        "| mrpc f1 | 80.00 / 84.00 | 82.00 / 82.00 | 82.00 ± 2.83 | 82.00 ± 0.00 | +0.00 |",
        "| mrpc accuracy | 70.00 / 74.00 | 72.00 / 72.00 | 72.00 ± 2.83 | 72.00 ± 0.00 | +0.00 |",
        # average: (rte + mean(mrpc f1, acc)) / 2 per seed: 67.5, 70.5 and 67.5, 67.5
        "| average | 67.50 / 70.50 | 67.50 / 67.50 | 69.00 ± 2.12 | 67.50 ± 0.00 | +1.50 |",
    ]
