"""Markdown table of the last dev evaluation of several runs, one row per run.

    python benchmarks/compare_runs.py runs/mtdnn_small runs/single_rte runs/single_mrpc ...

Columns are the evaluations found across the runs (each task's metrics averaged, as in the
GLUE score) and, per run, the average over that run's tasks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kdnlu.metrics import task_average


def last_evaluation(run_dir: Path) -> dict[str, dict[str, float]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["dev"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    results = {run.name: last_evaluation(run) for run in args.runs}
    columns = sorted({name for dev in results.values() for name in dev})
    print("| run | " + " | ".join(columns) + " | average |")
    print("|" + " --- |" * (len(columns) + 2))
    for run, dev in results.items():
        cells = [f"{task_average({c: dev[c]}):.2f}" if c in dev else "" for c in columns]
        print(f"| {run} | " + " | ".join(cells) + f" | {task_average(dev):.2f} |")


if __name__ == "__main__":
    main()
