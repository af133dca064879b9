"""``kdnlu-bench BENCH.yaml`` runs a grid of recipes over seeds; ``kdnlu-bench report DIR``
rebuilds a bench folder's reports."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from kdnlu.cli import add_set_arg, run_guarded, setup_logging

EXIT_RUNS_FAILED = 1


def _run(args: argparse.Namespace) -> int:
    from kdnlu.bench.grid import load_bench
    from kdnlu.bench.report import build_reports
    from kdnlu.bench.runner import describe_runs, pending_runs, run_bench

    setup_logging(args.quiet)
    only = [name.strip() for text in args.points for name in text.split(",")] or None
    bench = load_bench(args.bench, args.output_dir, args.overrides, only)
    if args.dry_run:
        print(describe_runs(bench, pending_runs(bench, args.retry_failed)))
        return 0
    started = time.time()
    outcome = run_bench(bench, args.jobs, args.retry_failed, not args.quiet, args.threads)
    written = build_reports(bench)
    minutes, seconds = divmod(int(time.time() - started), 60)
    print(
        f"bench {bench.name}: {outcome.ran} run(s) in {minutes}m{seconds:02d}s, "
        f"{outcome.skipped} finished before, {len(outcome.failed)} failed"
    )
    print(_scores_section(bench.folder / "report.md"))
    print("wrote " + ", ".join(str(p.relative_to(bench.folder)) for p in written))
    print(f"bench folder: {bench.folder}")
    if outcome.failed:
        print(
            f"{len(outcome.failed)} run(s) failed (their errors are in report.md); "
            "fix the cause and run again with --retry-failed",
            file=sys.stderr,
        )
        return EXIT_RUNS_FAILED
    return 0


def _scores_section(report: object) -> str:
    from pathlib import Path

    text = Path(str(report)).read_text(encoding="utf-8")
    start = text.index("## Scores")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None].strip()


def _report(args: argparse.Namespace) -> int:
    from kdnlu.bench.report import build_reports
    from kdnlu.bench.runner import load_bench_folder

    bench = load_bench_folder(args.folder)
    written = build_reports(bench)
    print(_scores_section(bench.folder / "report.md"))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def bench_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdnlu-bench",
        description="Run every point of a bench file's grid for each of its seeds (each run in "
        "its own process and run dir), then write results.csv, report.md and plots/. Runs "
        "already finished are skipped, so an interrupted bench continues. "
        "`kdnlu-bench report DIR` rebuilds the reports of a bench folder.",
    )
    parser.add_argument("bench", help="a bench file (YAML), see docs/bench.md")
    add_set_arg(parser, "set a recipe value in every run, over the bench file's (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument(
        "--threads", type=int, help="torch threads of each run (default: cores / --jobs)"
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="run again the runs recorded as failed"
    )
    parser.add_argument(
        "--points",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="run only these points (repeatable); the reports still cover every point",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the runs still to do")
    parser.add_argument("--output-dir", help="folder of bench folders (overrides output_dir)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.set_defaults(func=_run)
    return parser


def report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdnlu-bench report", description="Rebuild the reports of a bench folder."
    )
    parser.add_argument("folder", help="a bench folder (it holds bench.json)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.set_defaults(func=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kdnlu-bench``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "report":
        return run_guarded(_report, report_parser().parse_args(args[1:]))
    return run_guarded(_run, bench_parser().parse_args(args))
