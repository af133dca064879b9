"""Markdown tables of the last dev evaluation of runs: one row per run, or arms over seeds.

    python benchmarks/compare_runs.py runs/mtdnn_small runs/single_rte runs/single_mrpc ...

prints one row per run: the evaluations found across the runs (each task's metrics averaged,
as in the GLUE score) and the average over that run's tasks.

    python benchmarks/compare_runs.py \\
        --arm MT-DNN runs/mtdnn_small runs/mtdnn_small_s14 \\
        --arm single-task runs/single_rte,runs/single_mrpc runs/single_rte_s14,runs/single_mrpc_s14

compares arms: each argument after an arm's name is one seed, given as one run or several runs
joined by commas (single-task baselines: one run per task, merged into one set of metrics).
It prints every metric and the task average as mean ± std over the seeds (sample std), the
per-seed values, the difference of the first two arms' means and, when both have the same
number of seeds (paired in the order given), the two-sided p-value of a paired t-test.

    python benchmarks/compare_runs.py --records docs/results/cpu_scale_runs.jsonl \\
        --arm MT-DNN mtdnn_small_s13 mtdnn_small_s14 runs/issue4/mtdnn_small_s15 ...

A run that is not a directory is looked up by name in the ``--records`` file (one JSON line per
run: ``{"run": NAME, "evaluations": [...metrics.jsonl records...]}``), so runs whose folders are
gone still count. ``--save-records FILE RUN_DIR...`` adds (or replaces) runs in such a file,
under their folder names, or with ``--prefix P`` under P + folder name (a rebuilt chain's runs
beside the recorded runs of the same names).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from bench_cli import script_parser

from kdnlu.bench.stats import paired_t_test
from kdnlu.metrics import task_average, task_score
from kdnlu.rundir import atomic_write_text

Results = dict[str, dict[str, float]]
RECORDS: dict[str, list[dict]] = {}  # run name -> its evaluations, from --records


def evaluations(run_dir: Path) -> list[dict]:
    if not run_dir.is_dir() and run_dir.name in RECORDS:
        return RECORDS[run_dir.name]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def last_evaluation(run_dir: Path) -> Results:
    return evaluations(run_dir)[-1]["dev"]


def load_records(path: Path) -> dict[str, list[dict]]:
    if not path.is_file():
        return {}
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {record["run"]: record["evaluations"] for record in lines}


def save_records(path: Path, runs: list[Path], prefix: str = "") -> None:
    """Add each run's evaluations to ``path`` under ``prefix`` + the run's folder name
    (replacing one of that name), keeping the file's order; written to a temporary file, then
    renamed."""
    records = load_records(path)
    for run in runs:
        records[prefix + run.name] = evaluations(run)
    text = "".join(json.dumps({"run": n, "evaluations": e}) + "\n" for n, e in records.items())
    atomic_write_text(path, text)


def merged_evaluation(runs: str) -> Results:
    """The last evaluations of comma-separated runs, merged (an evaluation in two is an error)."""
    merged: Results = {}
    for run in runs.split(","):
        for name, metrics in last_evaluation(Path(run)).items():
            if name in merged:
                raise SystemExit(f"evaluation '{name}' appears in two runs of one seed: {runs}")
            merged[name] = metrics
    return merged


def run_table(runs: list[Path]) -> str:
    results = {run.name: last_evaluation(run) for run in runs}
    columns = sorted({name for dev in results.values() for name in dev})
    lines = ["| run | " + " | ".join(columns) + " | average |", "|" + " --- |" * (len(columns) + 2)]
    for run, dev in results.items():
        cells = [f"{task_score(dev[c])[0]:.2f}" if c in dev else "" for c in columns]
        lines.append(f"| {run} | " + " | ".join(cells) + f" | {task_average(dev):.2f} |")
    return "\n".join(lines)


def mean_std(values: list[float]) -> str:
    """``mean ± sample std``; one value alone has no spread to show, so it is printed bare."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def arm_table(arms: list[tuple[str, list[Results]]]) -> str:
    """Rows: every task metric, then the average; columns: each arm's mean ± std and seeds."""
    rows: list[tuple[str, list[list[float]]]] = []
    tasks = [name for name in arms[0][1][0]]
    for task in tasks:
        for metric in arms[0][1][0][task]:
            rows.append(
                (f"{task} {metric}", [[seed[task][metric] for seed in seeds] for _, seeds in arms])
            )
    rows.append(("average", [[task_average(seed) for seed in seeds] for _, seeds in arms]))
    header = "| dev metric | " + " | ".join(f"{name} (seeds)" for name, _ in arms)
    header += " | " + " | ".join(f"{name} mean ± std" for name, _ in arms)
    diff = len(arms) >= 2
    paired = diff and len(arms[0][1]) == len(arms[1][1]) >= 2
    header += f" | {arms[0][0]} − {arms[1][0]} |" if diff else " |"
    header += " paired p |" if paired else ""
    lines = [header, "|" + " --- |" * (1 + 2 * len(arms) + diff + paired)]
    for label, per_arm in rows:
        seeds = [" / ".join(f"{v:.2f}" for v in values) for values in per_arm]
        means = [mean_std(values) for values in per_arm]
        cells = [label, *seeds, *means]
        if diff:
            cells.append(f"{np.mean(per_arm[0]) - np.mean(per_arm[1]):+.2f}")
        if paired:
            p = paired_t_test(per_arm[0], per_arm[1]).p
            cells.append(f"{p:.3f}" if p is not None and not np.isnan(p) else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument(
        "runs", nargs="*", type=Path, help="run folders, or run names in the --records file"
    )
    parser.add_argument(
        "--arm",
        nargs="+",
        action="append",
        metavar=("NAME", "SEED_RUNS"),
        default=[],
        help="an arm: its name, then one argument per seed (RUN, or RUN,RUN,... merged)",
    )
    parser.add_argument("--records", type=Path, help="JSON lines of runs whose folders are gone")
    parser.add_argument(
        "--save-records", type=Path, metavar="FILE", help="add the given run dirs to FILE"
    )
    parser.add_argument(
        "--prefix", default="", help="with --save-records: record each run as PREFIX + its name"
    )
    args = parser.parse_args()
    if args.records:
        RECORDS.update(load_records(args.records))
    if args.save_records:
        save_records(args.save_records, args.runs, args.prefix)
        print(f"{len(args.runs)} run(s) recorded in {args.save_records}")
        return
    if args.arm:
        arms = [(name, [merged_evaluation(seed) for seed in seeds]) for name, *seeds in args.arm]
        for name, seeds in arms:
            if not seeds:
                parser.error(f"arm '{name}' has no runs")
            if any(set(seed) != set(arms[0][1][0]) for seed in seeds):
                parser.error(f"arm '{name}': every seed must have the same evaluations")
        print(arm_table(arms))
    if args.runs:
        print(run_table(args.runs))
    if not args.arm and not args.runs:
        parser.error("give run directories, or --arm NAME SEED_RUNS...")


if __name__ == "__main__":
    main()
