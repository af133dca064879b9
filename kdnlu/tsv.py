"""Reading tab-separated task files exactly: split on tabs only, no quote handling."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kdnlu.errors import DataError
from kdnlu.task import BadRows, Example, parse_label, shorten

Column = int | str


def read_utf8(path: Path) -> str:
    """The text of a UTF-8 file, without a leading byte-order mark; errors name file:line. A
    file whose lines end in CR alone is refused (it would read as one line)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
        line = data[: exc.start + bom].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not valid UTF-8 ({exc.reason} at byte {exc.start + bom}); "
            "save the file as UTF-8"
        ) from None
    if "\r" in text.rstrip("\r") and "\n" not in text:
        raise DataError(
            f"{path}: its lines end in a carriage return alone (CR, old Mac style), so it reads "
            "as one line; save it with LF (or CRLF) line endings"
        )
    return text


def read_tsv_rows(
    path: Path,
    header: bool,
    bad_rows: BadRows | None = None,
    columns: tuple[str, ...] | None = None,
) -> tuple[list[str] | None, Iterator[tuple[int, list[str]]]]:
    """Return the header (or None) and an iterator of (1-based line number, fields).

    A UTF-8 byte-order mark is dropped and empty lines are not rows. Every row must have as many
    fields as the header, as ``columns`` (the names of a file without a header line), or else as
    the first row; other rows go to ``bad_rows`` (which raises by default). For a file without a
    header, ``columns`` are returned as its header. An empty file has the header ``[]``.
    """
    bad_rows = bad_rows if bad_rows is not None else BadRows(path)
    text = read_utf8(path)
    lines = text.split("\n")
    if header and not text.strip():
        return [], iter(())
    names = lines[0].rstrip("\r").split("\t") if header else None
    if columns is not None and not header:
        names = list(columns)

    def rows() -> Iterator[tuple[int, list[str]]]:
        width = len(names) if names is not None else None
        for number, line in enumerate(lines, start=1):
            if header and number == 1:
                continue
            line = line.rstrip("\r")
            if not line:
                continue
            fields = line.split("\t")
            if width is None:
                width = len(fields)
            if len(fields) != width:
                bad_rows.report(
                    number, f"expected {width} tab-separated columns, found {len(fields)}"
                )
                continue
            yield number, fields

    return names, rows()


@dataclass(frozen=True)
class TsvLayout:
    """Which columns of a TSV file hold an example's parts: header names or 0-based numbers.

    ``columns`` names the columns of files written without a header line (CoLA's train/dev), so
    they can still be chosen by name. Examples are numbered by their line when ``uid`` is None,
    or when ``uid_optional`` and the file lacks that column.
    """

    text_a: Column
    text_b: Column | None = None
    label: Column | None = None
    uid: Column | None = None
    header: bool = True
    columns: tuple[str, ...] | None = None
    uid_optional: bool = False


def _position(
    column: Column, names: list[str] | None, width: int, path: Path, line: int
) -> int | None:
    """Where ``column`` is in a row of ``width`` fields; None when it is not there."""
    if isinstance(column, int):
        return column if 0 <= column < width else None
    if names is None:
        raise DataError(
            f"{path}:{line}: column '{column}' is given by name but the file has no header "
            "line; give its 0-based number instead"
        )
    return names.index(column) if column in names else None


def _layout_positions(
    layout: TsvLayout, names: list[str] | None, width: int, path: Path, line: int, labelled: bool
) -> tuple[int, int | None, int | None, int | None]:
    """Positions of text_a, text_b, label and uid; a missing required column raises."""

    def find(role: str, required: bool) -> int | None:
        column = getattr(layout, role)
        if column is None:
            return None
        position = _position(column, names, width, path, line)
        if position is not None or not required:
            return position
        what = " (the label)" if role == "label" else ""
        if isinstance(column, int):
            raise DataError(
                f"{path}:{line}: column {column}{what} is out of range: rows have {width} "
                f"columns, numbered 0 to {width - 1}"
            )
        raise DataError(
            f"{path}:{line}: column '{column}'{what} not found in the header "
            f"({shorten(', '.join(names or []))})"
        )

    text_a = find("text_a", True)
    assert text_a is not None
    return (
        text_a,
        find("text_b", True),
        find("label", labelled),
        find("uid", not layout.uid_optional),
    )


def read_tsv_examples(
    path: Path,
    layout: TsvLayout,
    label_names: tuple[str, ...] | None,
    task: str,
    labelled: bool,
    bad_rows: BadRows | None = None,
    score_range: tuple[float, ...] | None = None,
) -> list[Example]:
    """Read every row of a TSV file as an ``Example``.

    ``labelled`` says the label column must be there (train and dev files); otherwise a file
    without it gives unlabelled examples (label None), as GLUE's test files do. Labels are
    class strings from ``label_names`` or, when that is None, numbers (regression, within
    ``score_range`` when given). Rows with the wrong number of columns or an unknown label are
    reported to ``bad_rows``.
    """
    bad_rows = bad_rows if bad_rows is not None else BadRows(path)
    names, rows = read_tsv_rows(path, layout.header, bad_rows, layout.columns)
    if names == []:
        return []
    positions = None
    if names is not None:
        positions = _layout_positions(layout, names, len(names), path, 1, labelled)
    examples = []
    for line, fields in rows:
        if positions is None:  # no header: the first row tells the width
            positions = _layout_positions(layout, None, len(fields), path, line, labelled)
        a, b, y, uid = positions
        label: int | float | None = None
        if y is not None:
            try:
                label = parse_label(fields[y], label_names, task, score_range)
            except ValueError as exc:
                bad_rows.report(line, str(exc))
                continue
        examples.append(
            Example(
                uid=fields[uid] if uid is not None else str(line),
                text_a=fields[a],
                text_b=fields[b] if b is not None else None,
                label=label,
            )
        )
    return examples
