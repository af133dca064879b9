"""``kdnlu data glue`` and ``kdnlu data check``."""

from __future__ import annotations

import argparse
from pathlib import Path

from kdnlu.datadir import DataLocation, glue_dir
from kdnlu.errors import DataError
from kdnlu.glue_data import manifest
from kdnlu.glue_data.fetch import Origin, fetch_glue
from kdnlu.glue_data.verify import check_task


def destination(arg: str | None, given: str) -> DataLocation:
    """The folder a command was given (``given`` says how), else the data-location rule's."""
    if arg is not None:
        return DataLocation(Path(arg).expanduser().resolve(), given)
    return glue_dir()


def _glue(args: argparse.Namespace) -> int:
    tasks = manifest.select_tasks(args.tasks, manifest.GLUE)
    to = destination(args.to, "--to")
    origin = Origin(args.origin, progress=not args.quiet)
    print(f"GLUE into {to.path} (from {to.source}), files from {origin.describe()}:")
    failures = fetch_glue(tasks, to.path, origin, force=args.force)
    if failures:
        raise DataError(
            f"{len(failures)} of {len(tasks)} task(s) failed (above); the others are in place. "
            "Rerunning the same command fetches only what is not yet verified"
        )
    if to.source != "--to" or to.path == glue_dir().path:
        return 0
    print(
        f"recipes without data_root find this copy with KDNLU_DATA={to.path.parent}"
        if to.path.name == "glue"
        else f"recipes find this copy with --set data_root={to.path}"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    where = destination(args.dir, "the command line")
    tasks = manifest.select_tasks(args.tasks, manifest.GLUE)
    print(f"GLUE at {where.path} (from {where.source}):")
    reports = [check_task(where.path / task.folder, task) for task in tasks]
    for report in reports:
        print(f"  {report.task.folder:<6} {report.status:<9} {report.describe()}")
    bad = [r for r in reports if r.status == "damaged" or (args.tasks and r.status != "complete")]
    if bad:
        names = " ".join(r.task.key for r in bad)
        raise DataError(
            f"{len(bad)} task(s) not complete: {names}. `kdnlu data glue --tasks {names} --force` "
            "fetches them again"
        )
    return 0


def add_data_parser(sub: argparse._SubParsersAction) -> None:
    """The ``kdnlu data`` command and its two subcommands."""
    p_data = sub.add_parser("data", help="fetch and verify the GLUE benchmark's files")
    data_sub = p_data.add_subparsers(dest="data_command", required=True)
    p_glue = data_sub.add_parser(
        "glue",
        help="download GLUE into the official layout and verify every file (rows, SHA-256)",
        description="Fetch GLUE task folders, verify each file and move each folder into place "
        "only when complete. Tasks already verified are skipped.",
    )
    p_glue.add_argument(
        "--to",
        help="the GLUE folder to fill (default: $KDNLU_DATA/glue, else ~/.cache/kdnlu/data/glue)",
    )
    p_glue.add_argument(
        "--tasks", nargs="+", help="task keys or folders, e.g. rte sst2 (default: all)"
    )
    p_glue.add_argument(
        "--from",
        dest="origin",
        metavar="PATH_OR_URL",
        help="a mirror URL holding the published files (RTE.zip, ...), a folder of them, one "
        "archive holding task folders, or an existing GLUE folder to copy and verify",
    )
    p_glue.add_argument("--force", action="store_true", help="fetch again even when verified")
    p_glue.add_argument("--quiet", action="store_true", help="no progress bars")
    p_glue.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    p_glue.set_defaults(func=_glue)
    p_check = data_sub.add_parser(
        "check", help="which GLUE tasks and files are present, complete or damaged"
    )
    p_check.add_argument("dir", nargs="?", help="a GLUE folder (default: where recipes look)")
    p_check.add_argument("--tasks", nargs="+", help="only these tasks (each must be complete)")
    p_check.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    p_check.set_defaults(func=_check)
