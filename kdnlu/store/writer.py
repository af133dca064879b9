"""Writing a logit store shard by shard, resumable after an interruption."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from kdnlu import __version__
from kdnlu.lock import LOCK_FILE
from kdnlu.rundir import atomic_write_text
from kdnlu.store.format import (
    FORMAT_VERSION,
    HEADER,
    PROGRESS,
    StoreError,
    StoreSpec,
    array_file,
    check_shard,
    open_arrays,
    read_json,
    region_sha256,
    spec_difference,
)
from kdnlu.store.reader import LogitStore


def reserve(path: Path) -> None:
    """Give a new (sparse) array file its disk blocks now: a full disk is then an ``OSError``
    here, not a SIGBUS when a memory-mapped write finds no room."""
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it
                raise


class StoreWriter:
    """Writes a store shard by shard; an interrupted write of the same spec resumes.

    ``pending`` lists the shards still to write; ``write_shard`` stores one; ``finish`` checks
    every shard and writes ``header.json``, after which the store opens. A folder that holds a
    different store (finished or not) is refused, never overwritten.
    """

    def __init__(self, folder: str | Path, spec: StoreSpec) -> None:
        self.folder, self.spec = Path(folder), spec
        self.done: dict[int, dict[str, str]] = {}
        self.arrays: dict[str, np.ndarray] = {}
        header = self.folder / HEADER
        if header.is_file():
            found = self._same_store(header, "already holds a different finished store")
            self.done = {int(k): v for k, v in found["shards"].items()}
            return
        progress = self.folder / PROGRESS
        if progress.is_file():
            found = self._same_store(progress, "holds an unfinished write of a different store")
            try:
                self.arrays = open_arrays(self.folder, spec, mode="r+")
            except StoreError:  # an array file is gone or damaged: start again
                self.arrays = {}
            for key, sums in found["shards"].items() if self.arrays else ():
                if check_shard(self.arrays, spec, int(key), sums) is None:
                    self.done[int(key)] = sums
        elif self.folder.exists() and any(p.name != LOCK_FILE for p in self.folder.iterdir()):
            raise StoreError(f"{self.folder} exists and is not a logit store; choose a new folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.arrays:
            for part, (shape, dtype) in spec.array_shapes().items():
                path = array_file(self.folder, part)
                self.arrays[part] = np.lib.format.open_memmap(
                    path, mode="w+", dtype=dtype, shape=shape
                )
                reserve(path)
        self._save_progress()

    @property
    def pending(self) -> list[int]:
        return [s for s in range(self.spec.shards) if s not in self.done]

    @property
    def finished(self) -> bool:
        return (self.folder / HEADER).is_file()

    def write_shard(self, shard: int, arrays: dict[str, np.ndarray]) -> None:
        """Store one shard's rows: ``labels`` and ``logits``, or ``labels``, ``topk_ids``,
        ``topk_probs`` and ``rest``. The rows reach the disk before they are recorded."""
        if self.finished:
            raise StoreError(f"{self.folder} is finished; it takes no more shards")
        shapes = self.spec.shard_shapes(shard)
        if set(arrays) != set(shapes):
            raise StoreError(f"shard {shard} needs arrays {sorted(shapes)}, got {sorted(arrays)}")
        converted = {}
        for part, (shape, dtype) in shapes.items():
            array = np.asarray(arrays[part])
            if array.shape != shape:
                raise StoreError(
                    f"shard {shard}: {part} has shape {list(array.shape)}, expected {list(shape)}"
                )
            if part != "labels" and not np.isfinite(array).all():
                raise StoreError(f"shard {shard}: {part} holds NaN or infinite values")
            converted[part] = array.astype(dtype)
        rows = self.spec.shard_range(shard)
        sums = {}
        for part, array in converted.items():
            target = self.arrays[part]
            target[rows.start : rows.stop] = array
            target.flush()
            with open(array_file(self.folder, part), "rb") as fh:
                os.fsync(fh.fileno())
            sums[part] = region_sha256(array)
        self.done[shard] = sums
        self._save_progress()

    def finish(self) -> LogitStore:
        """Check every shard and write ``header.json``; returns the opened store."""
        if not self.finished:
            if self.pending:
                raise StoreError(
                    f"{self.folder}: shards {self.pending} are not written yet; the store is "
                    "unfinished"
                )
            on_disk = open_arrays(self.folder, self.spec)
            for shard, sums in self.done.items():
                problem = check_shard(on_disk, self.spec, shard, sums)
                if problem:
                    raise StoreError(f"{self.folder}: shard {shard}: {problem}")
            header = {
                "format": FORMAT_VERSION,
                "kdnlu": __version__,
                "spec": self.spec.to_json(),
                "shards": {str(k): v for k, v in sorted(self.done.items())},
            }
            self.arrays = {}
            atomic_write_text(self.folder / HEADER, json.dumps(header, indent=2) + "\n")
            (self.folder / PROGRESS).unlink(missing_ok=True)
        return LogitStore.open(self.folder)

    def _same_store(self, path: Path, problem: str) -> dict[str, Any]:
        """The JSON at ``path``, which must describe this writer's spec."""
        found = read_json(path)
        if found.get("spec") != self.spec.to_json():
            raise StoreError(
                f"{self.folder} {problem} ({spec_difference(found.get('spec'), self.spec)}); "
                "write to a new folder or remove it first"
            )
        return found

    def _save_progress(self) -> None:
        progress = {
            "spec": self.spec.to_json(),
            "shards": {str(k): v for k, v in sorted(self.done.items())},
        }
        atomic_write_text(self.folder / PROGRESS, json.dumps(progress, indent=2) + "\n")
