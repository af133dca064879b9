"""One writer per folder: an OS file lock (``flock``) that dies with the process holding it.

A run directory, a bench folder and a logit store are each written by one process at a time.
The writer holds an exclusive lock on ``<folder>/.lock`` (which records its pid); a second
writer is refused at once, naming that pid. The system drops the lock when the holder's process
ends in any way, kill -9 included, so a lock is never stale; the file left by a killed writer is
reused by the next one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import IO

from kdnlu.errors import KdnluError

LOCK_FILE = ".lock"


class FolderLock:
    """A held lock on a folder; ``release`` (or leaving the ``with`` block) lets it go."""

    def __init__(self, folder: Path, handle: IO[str]) -> None:
        self.folder, self._handle = folder, handle

    def release(self) -> None:
        if self._handle.closed:
            return
        # removed while still held, so that no other writer can be holding this very file
        (self.folder / LOCK_FILE).unlink(missing_ok=True)
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def lock_folder(folder: Path, what: str) -> FolderLock:
    """Take ``folder``'s writer lock (making the folder if needed) or raise, naming the pid
    of the process that holds it; ``what`` names the folder's kind in that message."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    while True:
        try:
            handle = open(path, "a+", encoding="utf-8")
        except OSError as exc:
            raise KdnluError(f"cannot lock {folder} ({path}: {exc.strerror or exc})") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise KdnluError(
                f"{folder} is being written by another process (pid {holder}); a {what} has "
                "one writer at a time. Wait for that process to end (or stop it), then run "
                "this again"
            ) from None
        except OSError as exc:
            handle.close()
            raise KdnluError(f"cannot lock {folder} ({path}: {exc.strerror or exc})") from None
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()  # the holder released and removed it meanwhile: lock the new file
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return FolderLock(folder, handle)
