"""Command-line pieces the benchmark scripts share (imported by them; not a script itself)."""

from __future__ import annotations

import argparse

from kdnlu.datadir import glue_dir


def script_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose ``--help`` prints the script's whole docstring as written: its first line
    says what the script measures, the rest how to run it."""
    return argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_glue_root(parser: argparse.ArgumentParser) -> None:
    """``--data-root``: GLUE's folder, by default the one the data-location rule finds."""
    parser.add_argument(
        "--data-root",
        default=str(glue_dir().path),
        help="GLUE folder (default: $KDNLU_DATA/glue, else ~/.cache/kdnlu/data/glue)",
    )
