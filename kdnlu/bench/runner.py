"""Running a bench: every run in a process of its own, finished runs skipped, failures recorded.

The bench folder holds ``bench.json`` (the expanded bench), ``results.jsonl`` (one line per
finished or failed run, appended as each ends), ``runs/`` (the run directories) and ``logs/``
(each run's output). A run whose key already has a result line is not run again, so an
interrupted bench continues where it stopped; a run that failed is retried only on request.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from kdnlu.bench.grid import Bench, RunSpec
from kdnlu.errors import KdnluError
from kdnlu.lock import lock_folder
from kdnlu.rundir import append_jsonl, atomic_write_text

log = logging.getLogger("kdnlu.bench")

BENCH_JSON = "bench.json"
RESULTS = "results.jsonl"
POLL_SECONDS = 0.2


@dataclass
class BenchOutcome:
    """What one invocation did: runs found finished, run now, and failed now."""

    total: int
    skipped: int
    ran: int
    failed: list[dict[str, Any]]


def read_results(folder: Path) -> dict[str, dict[str, Any]]:
    """The newest result line of every run key in ``folder/results.jsonl``.

    A last line cut short (a crash while it was written) is ignored with a warning; any other
    unreadable line is an error naming it, since it would hide which runs are finished.
    """
    path = folder / RESULTS
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    results: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            results[record["key"]] = record
        except (json.JSONDecodeError, KeyError, TypeError):
            if number == len(lines):
                log.warning("%s:%d: ignoring a result line cut short", path, number)
                continue
            raise KdnluError(
                f"{path}:{number}: not a result line of kdnlu-bench; remove or fix that line"
            ) from None
    return results


def load_bench_folder(folder: str | Path) -> Bench:
    """The bench expanded into ``folder`` by an earlier ``kdnlu-bench`` run."""
    folder = Path(folder)
    path = folder / BENCH_JSON
    if not path.is_file():
        raise KdnluError(f"{folder} is not a bench folder: it has no {BENCH_JSON}")
    try:
        return Bench.from_json(folder.resolve(), json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise KdnluError(f"{path} is not a valid bench description ({exc})") from None


def selected_runs(bench: Bench) -> list[RunSpec]:
    """The runs of the points selected with ``--points`` (every run when none were)."""
    return [run for run in bench.runs if bench.selected is None or run.point in bench.selected]


def pending_runs(bench: Bench, retry_failed: bool = False) -> list[RunSpec]:
    """The selected runs without a result (and, with ``retry_failed``, those whose result is a
    failure)."""
    results = read_results(bench.folder)
    return [
        run
        for run in selected_runs(bench)
        if run.key not in results or (retry_failed and results[run.key]["status"] != "ok")
    ]


def run_bench(
    bench: Bench,
    jobs: int = 1,
    retry_failed: bool = False,
    progress: bool = True,
    threads: int | None = None,
) -> BenchOutcome:
    """Run every pending run of ``bench``'s selected points, ``jobs`` at a time, appending
    their results. Each run gets ``threads`` torch threads (default: cores / jobs)."""
    if jobs < 1:
        raise KdnluError(f"--jobs must be at least 1, got {jobs}")
    if threads is not None and threads < 1:
        raise KdnluError(f"--threads must be at least 1, got {threads}")
    with lock_folder(bench.folder, "bench folder"):
        return _run_pending(bench, jobs, retry_failed, progress, threads)


def _run_pending(
    bench: Bench, jobs: int, retry_failed: bool, progress: bool, threads: int | None
) -> BenchOutcome:
    atomic_write_text(bench.folder / BENCH_JSON, json.dumps(bench.to_json(), indent=1) + "\n")
    todo = pending_runs(bench, retry_failed)
    total = len(selected_runs(bench))
    log.info(
        "bench %s: %d runs, %d finished before, %d to run (%d at a time); folder %s",
        bench.name,
        total,
        total - len(todo),
        len(todo),
        jobs,
        bench.folder,
    )
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    failed: list[dict[str, Any]] = []
    bar = tqdm(total=len(todo), desc=bench.name, unit="run", disable=not progress)
    running: dict[subprocess.Popen[bytes], tuple[RunSpec, Path, float]] = {}
    queue = list(todo)
    try:
        while queue or running:
            while queue and len(running) < jobs:
                run = queue.pop(0)
                process, result_path = _start(bench, run, threads)
                running[process] = (run, result_path, time.time())
            done = [p for p in running if p.poll() is not None]
            if not done:
                time.sleep(POLL_SECONDS)
                continue
            for process in done:
                run, result_path, started = running.pop(process)
                record = _result(bench, run, process.returncode, result_path, started)
                append_jsonl(bench.folder / RESULTS, record)
                if record["status"] != "ok":
                    failed.append(record)
                    log.warning("run %s failed: %s", run.folder, record["error"])
                bar.update(1)
                bar.set_postfix(failed=len(failed), refresh=False)
    except BaseException:
        for process in running:  # their runs stay without a result: the next call reruns them
            process.terminate()
        for process in running:
            process.wait()
        raise
    finally:
        bar.close()
    return BenchOutcome(total, total - len(todo), len(todo), failed)


def run_log(bench: Bench, run: RunSpec) -> Path:
    """``logs/<point>__s<seed>.log``: the run's output; its request and result lie beside it."""
    return bench.folder / "logs" / f"{run.folder.replace('/', '__')}.log"


def _start(bench: Bench, run: RunSpec, threads: int) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = run_log(bench, run)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    request, result = log_path.with_suffix(".request.json"), log_path.with_suffix(".result.json")
    result.unlink(missing_ok=True)
    payload = {
        "run": run.to_json(),
        "output_dir": str(bench.folder / "runs"),
        "result": str(result),
        "threads": threads,
    }
    atomic_write_text(request, json.dumps(payload, indent=1) + "\n")
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kdnlu.bench.worker", str(request)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return process, result


def _result(
    bench: Bench, run: RunSpec, returncode: int, result_path: Path, started: float
) -> dict[str, Any]:
    base = {"key": run.key, "point": run.point, "seed": run.seed, "recipe": run.recipe}
    try:
        record = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        record = {
            "status": "failed",
            "error": f"the run's process ended with exit code {returncode} and no result; "
            f"see {run_log(bench, run)}",
        }
    record.setdefault("seconds", round(time.time() - started, 2))
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return {**base, **record}


def describe_runs(bench: Bench, runs: Sequence[RunSpec]) -> str:
    """One line per run, for ``kdnlu-bench --dry-run``."""
    lines = [f"bench {bench.name}: {len(runs)} of {len(bench.runs)} runs to do ({bench.folder})"]
    for run in runs:
        lines.append(f"  {run.point}  seed {run.seed}  {Path(run.recipe).name}  [{run.key}]")
    return "\n".join(lines)
