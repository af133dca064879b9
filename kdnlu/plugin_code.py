"""Turning an exception raised inside plugin code into one paragraph that names the plugin file
and line, for errors that are the plugin's, not the user's recipe."""

from __future__ import annotations

import difflib
import re
import sysconfig
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kdnlu
from kdnlu.errors import KdnluError, PluginError

FRAMEWORK_DIRS = tuple(
    str(Path(p).resolve())
    for p in (
        Path(kdnlu.__file__).parent,
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    )
)


def _in_framework(filename: str) -> bool:
    if filename.startswith("<"):
        return True
    return str(Path(filename).resolve()).startswith(FRAMEWORK_DIRS)


def code_line(exc: BaseException, prefer: str | Path | None = None) -> str | None:
    """``file:line`` in plugin code where ``exc`` was raised: the innermost traceback frame in
    the ``prefer`` file, else the innermost one outside kdnlu, the standard library and
    installed packages (None when the whole traceback is framework code)."""
    if isinstance(exc, SyntaxError) and exc.filename:  # raised before the file's code runs
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    if prefer is not None:
        wanted = str(Path(prefer).resolve())
        inside = [f for f in frames if str(Path(f.filename).resolve()) == wanted]
        if inside:
            return f"{inside[-1].filename}:{inside[-1].lineno}"
    for frame in reversed(frames):
        if not _in_framework(frame.filename):
            return f"{frame.filename}:{frame.lineno}"
    return None


def describe_exception(exc: BaseException, fields: tuple[str, ...] = ()) -> str:
    """``Type: message``, with the closest of ``fields`` for an unexpected keyword argument."""
    text = f"{type(exc).__name__}: {str(exc).rstrip('.')}"
    match = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    if match and fields:
        close = difflib.get_close_matches(match.group(1), fields, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"it takes: {', '.join(fields)}"
        text += f" ({hint})"
    return text


def failure(
    what: str, exc: BaseException, prefer: str | Path | None = None, fields: tuple[str, ...] = ()
) -> str:
    """One paragraph: what failed, where in the plugin, and why."""
    line = code_line(exc, prefer)
    where = f" at {line}" if line else ""
    advice = "" if isinstance(exc, KdnluError) else " Fix the plugin"  # those say what to do
    return (
        f"{what} failed in plugin code{where}: {describe_exception(exc, fields)}.{advice} "
        "(--debug shows the traceback)."
    )


@contextmanager
def about_task(key: str, recipe: str = "") -> Iterator[None]:
    """Plugin errors raised inside name the recipe (file) and its task key they happened for."""
    try:
        yield
    except PluginError as exc:
        prefix = f"{recipe}: tasks.{key}: " if recipe else f"tasks.{key}: "
        if str(exc).startswith(prefix):
            raise
        raise PluginError(prefix + str(exc)) from exc
