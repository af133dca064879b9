"""Bench reports from ``results.jsonl``: results.csv, report.md (mean ± std per point, paired
comparisons, failures) and PNG plots. ``kdnlu-bench report DIR`` rebuilds them at any time."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdnlu.bench.grid import Bench, Point, value_label
from kdnlu.bench.runner import read_results
from kdnlu.bench.stats import mean, paired_t_test, sample_std
from kdnlu.metrics import task_average, task_score
from kdnlu.rundir import atomic_write, atomic_write_text

Metrics = dict[str, dict[str, float]]
AVERAGE = "average"


@dataclass(frozen=True)
class PointResults:
    """A point's merged dev metrics per finished seed, and its seeds without a result."""

    point: Point
    by_seed: dict[int, Metrics]
    failed_seeds: tuple[int, ...]
    pending_seeds: tuple[int, ...]

    def scores(self, column: str) -> dict[int, float]:
        """Per seed: a task's score (``kdnlu.metrics.task_score``) or the task average."""
        out = {}
        for seed, metrics in self.by_seed.items():
            if column == AVERAGE:
                average = safe_average(metrics)
                if average is not None:
                    out[seed] = average
            elif column in metrics:
                out[seed] = task_score(metrics[column])[0]
        return out

    def lower_is_better(self, column: str) -> bool:
        """Whether a column's score is an error (its task has only lower-is-better metrics)."""
        return any(column in m and not task_score(m[column])[1] for m in self.by_seed.values())


def safe_average(metrics: Metrics) -> float | None:
    """The task average, or None where no task has a higher-is-better metric."""
    try:
        return task_average(metrics)
    except ValueError:
        return None


def collect(bench: Bench, results: dict[str, dict[str, Any]]) -> list[PointResults]:
    """Each point's results: a seed counts when every run of it (one per recipe) finished."""
    collected = []
    for point in bench.points:
        by_seed: dict[int, Metrics] = {}
        failed, pending = [], []
        for seed in bench.seeds:
            runs = [r for r in point.runs if r.seed == seed]
            records = [results.get(r.key) for r in runs]
            if any(rec is None for rec in records):
                pending.append(seed)
            elif any(rec["status"] != "ok" for rec in records if rec):
                failed.append(seed)
            else:
                merged: Metrics = {}
                for rec in records:
                    assert rec is not None
                    merged.update(rec[bench.evaluation])
                by_seed[seed] = merged
        collected.append(PointResults(point, by_seed, tuple(failed), tuple(pending)))
    return collected


def columns_of(collected: list[PointResults]) -> list[str]:
    seen: dict[str, None] = {}
    for pr in collected:
        for metrics in pr.by_seed.values():
            seen.update(dict.fromkeys(metrics))
    return list(seen)


def metric_columns(collected: list[PointResults]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for pr in collected:
        for metrics in pr.by_seed.values():
            for name, values in metrics.items():
                seen.update(dict.fromkeys((name, m) for m in values))
    return list(seen)


def column_titles(collected: list[PointResults], columns: list[str]) -> list[str]:
    """Column names, with a mark on scores where lower is better."""
    return [
        f"{c} (lower is better)" if any(pr.lower_is_better(c) for pr in collected) else c
        for c in columns
    ]


def mean_std_cell(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{mean(values):.2f} ± {sample_std(values):.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown_report(bench: Bench, results: dict[str, dict[str, Any]]) -> str:
    collected = collect(bench, results)
    columns = columns_of(collected)
    seeds = len(bench.seeds)
    lines = [
        f"# Bench {bench.name}",
        "",
        f"From `{bench.source}`; {len(bench.points)} point(s) x {seeds} seed(s) "
        f"({', '.join(map(str, bench.seeds))}), {len(bench.runs)} run(s). Dev metrics of each "
        f"run's {bench.evaluation} evaluation, mean ± sample std over seeds; a task's score is "
        "the mean of its metrics and the average is over tasks, as in the GLUE score. Metrics "
        "where lower is better (errors) are left out of both, except for a task that has no "
        "other: its column is the mean error, marked, and the average leaves it out.",
        "",
        "## Scores",
        "",
    ]
    rows = []
    for pr in collected:
        row = [pr.point.name, f"{len(pr.by_seed)}/{seeds}"]
        row += [mean_std_cell(list(pr.scores(c).values())) for c in [*columns, AVERAGE]]
        rows.append(row)
    lines += _table(["point", "seeds", *column_titles(collected, columns), AVERAGE], rows)
    lines += _every_metric_section(collected)
    lines += _comparison_section(bench, collected, columns)
    lines += _missing_runs_section(bench, results)
    return "\n".join(lines).rstrip() + "\n"


def _every_metric_section(collected: list[PointResults]) -> list[str]:
    """Each metric on its own, where some task has more than one."""
    if not any(len(v) > 1 for pr in collected for m in pr.by_seed.values() for v in m.values()):
        return []
    metric_cols = metric_columns(collected)
    rows = []
    for pr in collected:
        cells = []
        for name, metric in metric_cols:
            values = [m[name][metric] for m in pr.by_seed.values() if metric in m.get(name, {})]
            cells.append(mean_std_cell(values))
        rows.append([pr.point.name, *cells])
    return [
        "",
        "## Every metric",
        "",
        *_table(["point", *[f"{n} {m}" for n, m in metric_cols]], rows),
    ]


def _comparison_section(
    bench: Bench, collected: list[PointResults], columns: list[str]
) -> list[str]:
    if not bench.compare:
        return []
    lines = ["", "## Paired comparisons", ""]
    lines += [
        "Differences a - b over the seeds both points finished; two-sided paired t-test "
        "(with few seeds a p-value is a weak guide: n = 3 needs a large, steady gap).",
        "",
    ]
    by_name = {pr.point.name: pr for pr in collected}
    titles = dict(zip(columns, column_titles(collected, columns), strict=True))
    for a, b in bench.compare:
        lines += [f"### {a} vs {b}", ""]
        rows = comparison_rows(by_name[a], by_name[b], [*columns, AVERAGE])
        rows = [[titles.get(row[0], row[0]), *row[1:]] for row in rows]
        lines += _table(["score", a, b, "a - b", "t", "p", "seeds"], rows)
        lines.append("")
    return lines


def _missing_runs_section(bench: Bench, results: dict[str, dict[str, Any]]) -> list[str]:
    failures = [
        rec for rec in results.values() if rec["status"] != "ok" and rec["key"] in _keys(bench)
    ]
    pending = sum(1 for run in bench.runs if run.key not in results)
    if not failures and not pending:
        return []
    lines = ["", "## Runs without a result", ""]
    if pending:
        lines.append(f"{pending} run(s) not run yet (or interrupted): run the bench again.")
    for rec in failures:
        error = " ".join(str(rec.get("error", "")).split())
        lines.append(f"- {rec['point']} seed {rec['seed']} failed: {error[:400]}")
    return lines


def comparison_rows(a: PointResults, b: PointResults, columns: list[str]) -> list[list[str]]:
    rows = []
    for column in columns:
        sa, sb = a.scores(column), b.scores(column)
        common = [s for s in sa if s in sb]
        if not common:
            continue
        va, vb = [sa[s] for s in common], [sb[s] for s in common]
        test = paired_t_test(va, vb)
        t = "-" if test.t is None else ("inf" if math.isinf(test.t) else f"{test.t:.2f}")
        p = "-" if test.p is None else f"{test.p:.3f}"
        rows.append(
            [
                column,
                mean_std_cell(va),
                mean_std_cell(vb),
                f"{test.mean_difference:+.2f} ± {test.std_difference:.2f}",
                t,
                p,
                str(test.n),
            ]
        )
    return rows


def _keys(bench: Bench) -> set[str]:
    return {run.key for run in bench.runs}


def results_csv(bench: Bench, results: dict[str, dict[str, Any]]) -> str:
    """One row per run of the bench with a result: its point, seed, grid values, every metric."""
    records = [(run, results[run.key]) for run in bench.runs if run.key in results]
    metric_names: dict[str, None] = {}
    for _, rec in records:
        for name, values in (rec.get(bench.evaluation) or {}).items():
            metric_names.update(dict.fromkeys(f"{name}.{m}" for m in values))
    header = ["point", "seed", "recipe", "status", "seconds", "steps", *bench.grid_keys]
    header += [*metric_names, AVERAGE, "run_dir", "error"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    values_of = {p.name: p.values for p in bench.points}
    for run, rec in records:
        metrics = rec.get(bench.evaluation) or {}
        flat = {f"{n}.{m}": v for n, vs in metrics.items() for m, v in vs.items()}
        row = [run.point, run.seed, Path(run.recipe).name, rec["status"]]
        row += [rec.get("seconds", ""), rec.get("steps", "")]
        row += [value_label(values_of[run.point][k]) for k in bench.grid_keys]
        row += [f"{flat[m]:.4f}" if m in flat else "" for m in metric_names]
        average = safe_average(metrics) if metrics else None
        row += [f"{average:.4f}" if average is not None else ""]
        row += [rec.get("run_dir", ""), " ".join(str(rec.get("error", "")).split())]
        writer.writerow(row)
    return out.getvalue()


def build_reports(bench: Bench) -> list[Path]:
    """Write results.csv, report.md and plots/*.png into the bench folder; their paths."""
    from kdnlu.bench.plots import plot_curves, plot_scores

    results = read_results(bench.folder)
    folder = bench.folder
    atomic_write_text(folder / "results.csv", results_csv(bench, results))
    atomic_write_text(folder / "report.md", markdown_report(bench, results))
    written = [folder / "results.csv", folder / "report.md"]
    collected = collect(bench, results)
    if any(pr.by_seed for pr in collected):
        columns = [*columns_of(collected), AVERAGE]
        target = folder / "plots" / "scores.png"
        atomic_write(target, lambda tmp: plot_scores(collected, columns, tmp))
        written.append(target)
        target = folder / "plots" / "curves.png"
        atomic_write(target, lambda tmp: plot_curves(bench, results, tmp))
        written.append(target)
    return written
