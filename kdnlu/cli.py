"""Command lines: ``kdnlu-train RECIPE``, ``kdnlu-teach`` and
``kdnlu list|check|predict|export|store|data``."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from kdnlu.errors import KdnluError, TrainingInterrupted
from kdnlu.glue_data.cli import add_data_parser
from kdnlu.options import add_options, build_options
from kdnlu.recipe import Recipe, load_recipe
from kdnlu.registry import REGISTRIES
from kdnlu.run_options import ExportOptions, PredictOptions

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
# a full disk, a quota, ulimit -f, a read-only file system: the user's to fix, not a bug
WRITE_FAILURES = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


class TqdmHandler(logging.Handler):
    """Log lines written through tqdm so they never break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def setup_logging(quiet: bool) -> None:
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("kdnlu")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False


def run_guarded(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; user errors become one paragraph on stderr (a traceback with --debug)."""
    try:
        return func(args)
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INTERRUPTED
    except KdnluError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        if exc.errno not in WRITE_FAILURES or getattr(args, "debug", False):
            raise
        print(
            f"error: cannot write {exc.filename or 'a file'} ({exc.strerror}); the files "
            "written before it are whole (each is written under a temporary name, then "
            "renamed). Free disk space (or fix permissions), then run the same command again",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR


def add_set_arg(parser: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY.PATH=VALUE`` (repeatable), collected in ``args.overrides``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE", help=help
    )


def add_recipe_args(parser: argparse.ArgumentParser, optional: bool = False) -> None:
    parser.add_argument("recipe", nargs="?" if optional else None, help="path to a YAML recipe")
    add_set_arg(parser, "override a recipe value, typed by its config (repeatable)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def dry_build(recipe: Recipe) -> str:
    """``kdnlu check``: see ``kdnlu.check.dry_build`` (imported on use: it needs torch)."""
    from kdnlu.check import dry_build as check_recipe

    return check_recipe(recipe)


def format_summary(result: object) -> str:
    from kdnlu.trainer import RunResult

    assert isinstance(result, RunResult)
    minutes, seconds = divmod(int(round(result.seconds)), 60)
    lines = [
        f"finished: {result.steps} steps, {result.epochs} epoch(s) in {minutes}m{seconds:02d}s",
    ]
    if result.metrics:
        lines.append(f"dev metrics (last evaluation, step {result.steps}):")
    for key, values in result.metrics.items():
        main = result.main_metrics[key]
        rest = "  ".join(f"{n} {v:.2f}" for n, v in values.items() if n != main)
        lines.append(f"  {key:<10} {main} {values[main]:6.2f}   {rest}".rstrip())
    checkpoints = "checkpoints/last"
    if result.best_score is not None:
        checkpoints = "checkpoints/best and last"
        where = (
            "the last evaluation"
            if result.best_step == result.steps
            else f"step {result.best_step}"
        )
        lines.append(
            f"best {result.best_metric} {result.best_score:.2f} at {where}: checkpoints/best, "
            "which predict and export use"
        )
    lines.append(
        f"run dir: {result.run_dir}  (recipe.yaml, env.json, metrics.jsonl, {checkpoints}, tb/)"
    )
    return "\n".join(lines)


def _train(args: argparse.Namespace) -> int:
    setup_logging(args.quiet)
    if args.resume is not None:
        if args.recipe is not None or args.overrides:
            raise KdnluError(
                "--resume goes on with the run's own recipe.yaml: give no recipe and no --set "
                f"with it (kdnlu-train --resume {args.resume})"
            )
        recipe_path = Path(args.resume) / "recipe.yaml"
        if not recipe_path.is_file():
            raise KdnluError(f"{args.resume} is not a run directory: it has no recipe.yaml")
        recipe = load_recipe(recipe_path)
    elif args.recipe is None:
        raise KdnluError("give a recipe to train (kdnlu-train RECIPE), or --resume RUN_DIR")
    else:
        recipe = load_recipe(args.recipe, args.overrides)
    if args.dry_run:
        print(dry_build(recipe))
        return 0
    from kdnlu.trainer import train

    result = train(recipe, progress=not args.quiet, resume_from=args.resume)
    print(format_summary(result))
    return 0


def train_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kdnlu-train``."""
    parser = argparse.ArgumentParser(
        prog="kdnlu-train", description="Train the multi-task model a recipe describes."
    )
    add_recipe_args(parser, optional=True)
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="go on with an interrupted run from its checkpoints/last, exactly as if it had "
        "never stopped (Ctrl-C saves one; train.checkpoint_every saves them as it goes)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the recipe, read the data and build the model; no training",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    return run_guarded(_train, parser.parse_args(argv))


def _list(args: argparse.Namespace) -> int:
    from kdnlu.listing import list_command

    print(list_command(args.kind, args.imports, args.recipe, args.markdown))
    return 0


def _check(args: argparse.Namespace) -> int:
    setup_logging(quiet=False)
    print(dry_build(load_recipe(args.recipe, args.overrides)))
    return 0


def _predict(args: argparse.Namespace) -> int:
    setup_logging(args.quiet)
    from kdnlu.predict import write_predictions
    from kdnlu.trained import load_trained

    options = build_options(PredictOptions, args)
    run = load_trained(args.run_dir, options.checkpoint)
    if options.out:
        out = Path(options.out)
    else:
        out = run.run_dir / ("submission" if options.split == "test" else "predictions")
    split = options.split
    written = write_predictions(run, split, out, options.batch_size, options.device, options.tasks)
    if not written:
        raise KdnluError(f"no task of {run.run_dir} has a '{split}' split to predict")
    print(f"predicted with {run.checkpoint}:")
    print("\n".join(f"  {path}" for path in written))
    return 0


def _export(args: argparse.Namespace) -> int:
    setup_logging(quiet=True)
    from kdnlu.export import export_run
    from kdnlu.trained import load_trained

    options = build_options(ExportOptions, args)
    run = load_trained(args.run_dir, options.checkpoint)
    out = export_run(run, Path(args.out))
    print(f"exported {run.checkpoint} to {out} (encoder + tokenizer, heads/, README.md)")
    return 0


def _teach(args: argparse.Namespace) -> int:
    setup_logging(args.quiet)
    from kdnlu.teach import TeachOptions, teach

    options = build_options(TeachOptions, args)
    stores = teach(args.teachers, args.out, args.tasks, options, progress=not args.quiet)
    print(f"{len(stores)} logit store(s) under {args.out}:")
    for store in stores:
        print(f"  {store.folder}  ({store.spec.rows} rows, {len(store.spec.teachers)} teachers)")
    return 0


def teach_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kdnlu-teach``."""
    return run_guarded(_teach, teach_parser().parse_args(argv))


def teach_parser() -> argparse.ArgumentParser:
    from kdnlu.teach import TeachOptions

    parser = argparse.ArgumentParser(
        prog="kdnlu-teach",
        description="Run teacher checkpoints over task data once and write logit stores "
        "(OUT/<task>/<split>/); an interrupted run continues where it stopped.",
    )
    parser.add_argument("teachers", nargs="+", help="run directories of trained teachers")
    parser.add_argument("--out", required=True, help="folder of the stores")
    parser.add_argument("--tasks", nargs="+", help="task keys (default: all the teachers share)")
    add_options(parser, TeachOptions)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return parser


def _store_inspect(args: argparse.Namespace) -> int:
    from kdnlu.store import HEADER, PROGRESS, LogitStore, describe_store

    root = Path(args.store)
    folders = (
        [root] if (root / HEADER).is_file() else sorted(p.parent for p in root.glob(f"**/{HEADER}"))
    )
    unfinished = sorted(p.parent for p in root.glob(f"**/{PROGRESS}") if p.parent not in folders)
    if not folders and not unfinished:
        LogitStore.open(root)  # raises the reason (not a store)
    stores = [LogitStore.open(f, verify=not args.no_verify) for f in folders]
    if stores:
        print("\n\n".join(describe_store(store) for store in stores))
    if unfinished:
        raise KdnluError(
            f"unfinished: {', '.join(str(f) for f in unfinished)} (a write was interrupted); "
            "rerun the kdnlu-teach command that wrote it (same teachers, tasks and --out) to "
            "finish it"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kdnlu``."""
    args = main_parser().parse_args(argv)
    return run_guarded(args.func, args)


def main_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kdnlu", description="kdnlu tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="registered components with their config fields")
    p_list.add_argument("kind", nargs="?", choices=list(REGISTRIES))
    shown = p_list.add_mutually_exclusive_group()
    shown.add_argument(
        "--imports",
        nargs="+",
        metavar="FILE_OR_MODULE",
        help="import these plugins (.py files or module names) and list only what they add",
    )
    shown.add_argument("--recipe", help="import a recipe's imports: and list only what they add")
    shown.add_argument(
        "--markdown",
        nargs="?",
        const="-",
        metavar="DOC",
        help="the reference tables of docs/recipes.md; with DOC, rewrite DOC's generated tables",
    )
    p_list.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    p_list.set_defaults(func=_list)
    p_check = sub.add_parser("check", help="validate a recipe and build it without training")
    add_recipe_args(p_check)
    p_check.set_defaults(func=_check)
    p_predict = sub.add_parser("predict", help="predict a split with a trained run")
    p_predict.add_argument("run_dir", help="a run directory made by kdnlu-train")
    add_options(p_predict, PredictOptions)
    p_predict.add_argument("--quiet", action="store_true")
    p_predict.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    p_predict.set_defaults(func=_predict)
    p_export = sub.add_parser("export", help="write the encoder in Hugging Face format + heads")
    p_export.add_argument("run_dir", help="a run directory made by kdnlu-train")
    p_export.add_argument("out", help="new folder to write")
    add_options(p_export, ExportOptions)
    p_export.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    p_export.set_defaults(func=_export)
    p_store = sub.add_parser("store", help="teacher logit stores")
    store_sub = p_store.add_subparsers(dest="store_command", required=True)
    p_inspect = store_sub.add_parser(
        "inspect", help="header and statistics of a store (or of every store under a folder)"
    )
    p_inspect.add_argument("store", help="a store folder, or a folder of stores")
    p_inspect.add_argument("--no-verify", action="store_true", help="skip the checksums")
    p_inspect.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    p_inspect.set_defaults(func=_store_inspect)
    add_data_parser(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
