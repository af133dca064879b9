"""Reading tab-separated task files exactly: split on tabs only, no quote handling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from kdnlu.errors import DataError


def read_tsv_rows(
    path: Path, header: bool
) -> tuple[list[str] | None, Iterator[tuple[int, list[str]]]]:
    """Return the header (or None) and an iterator of (1-based line number, fields).

    A UTF-8 byte-order mark is dropped, blank lines are skipped, and every row must have as many
    fields as the header (or as the first row when there is no header).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    lines = text.split("\n")
    names = lines[0].rstrip("\r").split("\t") if header and lines else None

    def rows() -> Iterator[tuple[int, list[str]]]:
        width = len(names) if names is not None else None
        for number, line in enumerate(lines, start=1):
            if names is not None and number == 1:
                continue
            line = line.rstrip("\r")
            if not line.strip():
                continue
            fields = line.split("\t")
            if width is None:
                width = len(fields)
            if len(fields) != width:
                raise DataError(
                    f"{path}:{number}: expected {width} tab-separated columns, found "
                    f"{len(fields)}. Fix or remove this row."
                )
            yield number, fields

    return names, rows()


def column_index(names: list[str], column: str, path: Path) -> int:
    """Position of ``column`` in a header, with a clear error when absent."""
    if column not in names:
        raise DataError(f"{path}:1: column '{column}' not found in the header ({', '.join(names)})")
    return names.index(column)
