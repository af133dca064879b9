"""Get GLUE task folders from the official URLs, a mirror, a local archive or a local copy,
verify them against the manifest and move each into place only when it is complete.

Every task is assembled in a staging folder beside its destination and renamed into place
after its files are verified, so an interrupted or failed fetch never leaves a half-written
task folder, and a previous copy stays as it was until a verified one replaces it.
"""

from __future__ import annotations

import http.client
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from kdnlu.errors import DataError
from kdnlu.glue_data.manifest import OFFICIAL_URLS, Source, TaskFiles
from kdnlu.glue_data.mrpc import build_mrpc
from kdnlu.glue_data.verify import check_task
from kdnlu.lock import lock_folder
from kdnlu.rundir import recover_swap, staged_dir

URL_SCHEMES = ("http://", "https://", "file://")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
TIMEOUT_S = 60


def download(url: str, dest: Path, progress: bool = True) -> bool:
    """Stream ``url`` to ``dest``; ``False`` when the server has no such file (404).

    A connection that ends before the announced length is an error, and ``dest`` is removed."""
    request = urllib.request.Request(url, headers={"User-Agent": "kdnlu"})
    written = 0
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress)
            with bar, open(dest, "wb") as out:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        dest.unlink(missing_ok=True)
        if exc.code == 404:
            return False
        raise DataError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        dest.unlink(missing_ok=True)
        if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, FileNotFoundError):
            return False  # file:// URL of a missing file
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"download of {url} stopped after {written} bytes ({reason}); nothing was "
            "installed from it: run the command again (or use --from with a local copy)"
        ) from None
    if total is not None and written != total:
        dest.unlink(missing_ok=True)
        raise DataError(
            f"download of {url} stopped after {written} of {total} bytes; nothing was "
            "installed from it: run the command again (or use --from with a local copy)"
        )
    return True


class Origin:
    """Where files come from: the official URLs (``None``), a mirror URL, a folder or an archive.

    ``get(name, into)`` returns a local path to the published file ``name`` (downloading it into
    ``into`` if needed), or ``None`` when this origin does not have it."""

    def __init__(self, spec: str | None, progress: bool = True) -> None:
        self.spec, self.progress = spec, progress
        self.path = None if spec is None or spec.startswith(URL_SCHEMES) else Path(spec)
        if self.path is not None and not self.path.exists():
            raise DataError(f"--from {spec}: no such file or folder (nor an http(s):// URL)")
        if self.path is not None and self.path.is_file() and not is_archive(self.path):
            raise DataError(
                f"--from {spec}: not a folder, a URL or an archive ({', '.join(ARCHIVE_SUFFIXES)})"
            )

    def describe(self) -> str:
        return "the official GLUE URLs" if self.spec is None else str(self.spec)

    def layout_folder(self, task: TaskFiles) -> Path | None:
        """A task folder of an existing copy in the GLUE layout (``--from`` a GLUE folder)."""
        if self.path is None or not self.path.is_dir():
            return None
        folder = self.path / task.folder
        return folder if all((folder / name).is_file() for name in task.files) else None

    def archive(self) -> Path | None:
        """The archive itself when ``--from`` names one file holding task folders."""
        return self.path if self.path is not None and self.path.is_file() else None

    def get(self, name: str, into: Path) -> Path | None:
        if self.path is not None:
            candidate = self.path / name
            return candidate if self.path.is_dir() and candidate.is_file() else None
        if self.spec is None:
            url = OFFICIAL_URLS.get(name)
            if url is None:
                return None
        else:
            url = self.spec.rstrip("/") + "/" + name
        into.mkdir(parents=True, exist_ok=True)
        dest = into / name
        return dest if download(url, dest, self.progress) else None


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def archive_members(names: list[str], task: TaskFiles, where: str) -> dict[str, str]:
    """Which member of an archive is each of the task's files: a member named like the file
    directly under a folder named like the task (any depth, any case) or at the top."""
    found: dict[str, str] = {}
    for member in names:
        path = PurePosixPath(member)
        if path.name in task.files and path.parent.name.lower() in (task.folder.lower(), ""):
            best = found.get(path.name)
            if best is None or len(member) < len(best):
                found[path.name] = member
    missing = [name for name in task.files if name not in found]
    if missing:
        raise DataError(
            f"{where} holds no {', '.join(f'{task.folder}/{m}' for m in missing)}: not an "
            f"archive of the GLUE task {task.folder}"
        )
    return found


def extract_task(archive: Path, task: TaskFiles, staging: Path) -> None:
    """Copy the task's files out of a zip or tar archive into ``staging``."""
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                members = archive_members(zf.namelist(), task, archive.name)
                for name, member in members.items():
                    with zf.open(member) as src, open(staging / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        else:
            with tarfile.open(archive) as tf:
                members = archive_members(tf.getnames(), task, archive.name)
                for name, member in members.items():
                    src = tf.extractfile(member)
                    if src is None:
                        raise DataError(f"{archive.name}: {member} is not a regular file")
                    with src, open(staging / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # a disk problem, not a damaged archive
        raise DataError(
            f"archive {archive.name} is damaged ({exc}); nothing was installed from it: "
            "download it again"
        ) from None


def unpack(source: Source, files: list[Path], task: TaskFiles, staging: Path) -> None:
    if source.kind == "zip":
        extract_task(files[0], task, staging)
    elif source.kind == "tsv":
        (name,) = task.files
        shutil.copyfile(files[0], staging / name)
    else:
        build_mrpc(*files, staging)


def obtain(task: TaskFiles, origin: Origin, staging: Path) -> str:
    """Put the task's files into ``staging``; returns where they came from, in words."""
    folder = origin.layout_folder(task)
    if folder is not None:
        for name in task.files:
            shutil.copyfile(folder / name, staging / name)
        return f"copied from {folder}"
    archive = origin.archive()
    if archive is not None:
        extract_task(archive, task, staging)
        return f"from {archive}"
    downloads = staging / ".downloads"
    tried: list[str] = []
    for source in task.sources:
        tried.append(" + ".join(source.names))
        files = [origin.get(name, downloads) for name in source.names]
        if all(f is not None for f in files):
            unpack(source, [f for f in files if f is not None], task, staging)
            shutil.rmtree(downloads, ignore_errors=True)
            return f"from {origin.describe()} ({' + '.join(source.names)})"
    raise DataError(
        f"{task.folder}: {origin.describe()} has none of its files (looked for "
        f"{' or '.join(tried)}, or a folder {task.folder}/ in the GLUE layout)"
    )


def fetch_task(task: TaskFiles, to: Path, origin: Origin, force: bool = False) -> tuple[str, str]:
    """Install one task folder under ``to``; returns (outcome, detail): ``skipped`` when a
    verified copy is already there, ``installed`` after a verified fetch. A fetch whose files
    do not verify raises ``DataError`` and leaves ``to/<folder>`` as it was."""
    target = to / task.folder
    recover_swap(target)
    for leftover in to.glob(f".{task.folder}.*.staging"):
        shutil.rmtree(leftover, ignore_errors=True)  # from a fetch that was killed
    if not force and check_task(target, task).status == "complete":
        return "skipped", "already complete and verified"
    with staged_dir(target, replace=True) as staging:
        where = obtain(task, origin, staging)
        report = check_task(staging, task)
        if report.status != "complete":
            problems = "; ".join(f"{name}: {p}" for name, p in report.problems.items())
            kept = f"{target} is untouched" if target.exists() else f"nothing was written to {to}"
            raise DataError(
                f"{task.folder} {where} does not match the GLUE files kdnlu knows ({problems}); "
                f"{kept}. Use an unmodified copy of the official files"
            )
    return "installed", where


def fetch_glue(
    tasks: list[TaskFiles],
    to: Path,
    origin: Origin,
    force: bool = False,
    report: Callable[[str], None] = print,
) -> list[str]:
    """Fetch every task (one failing does not stop the others); returns the failures' messages.
    The folder has one writer at a time: a second ``kdnlu data glue`` on it is refused."""
    failures = []
    with lock_folder(to, "GLUE folder"):
        for task in tasks:
            try:
                outcome, detail = fetch_task(task, to, origin, force)
            except DataError as exc:
                failures.append(str(exc))
                report(f"  {task.folder:<6} failed: {exc}")
                continue
            report(f"  {task.folder:<6} {outcome}: {detail}")
    return failures
