"""The teacher logit store: teacher outputs over a task split, on disk, read through memory maps.

One store is a folder for one (teacher ensemble, task, split)::

    header.json        format, kind, task, split, rows, classes, dtype, teachers, fingerprint of
                       the examples, and the SHA-256 of every shard (a block of rows)
    logits.npy         dense: per-teacher outputs [rows, teachers, classes]
    topk_ids.npy       top-k: the k most likely classes of the ensemble [rows, k] int32
    topk_probs.npy     ... their ensemble probabilities [rows, k]
    rest.npy           ... the probability mass outside the top k [rows] float32
    labels.npy         the gold labels [rows] float32 (NaN where hidden), for statistics

Dense stores keep every teacher's raw outputs (logits, or scores for regression), so the
temperature is chosen when the student trains; top-k stores keep only the ensemble distribution's
k largest entries, for vocabulary-sized outputs.

The arrays are allocated at full size when the write starts and filled shard by shard; each
finished shard is flushed and its checksums recorded in ``progress.json``. ``header.json`` is
written last (atomically), so a folder without it is an unfinished store that never opens, and
writing the same store again resumes after the shards already recorded (a shard whose bytes no
longer match is written again). Opening checks the header, every array's shape and dtype, each
shard's SHA-256, and (when given) the fingerprint, row count, class count and dtype the caller
expects; rows are then read through memory maps, only the ones asked for.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kdnlu import __version__
from kdnlu.errors import KdnluError
from kdnlu.rundir import atomic_write_text
from kdnlu.task import Example

FORMAT_VERSION = 1
HEADER = "header.json"
PROGRESS = "progress.json"
DTYPES = ("float16", "float32")
DENSE_FILES = ("logits",)
TOPK_FILES = ("topk_ids", "topk_probs", "rest")
StoreKind = Literal["dense", "topk"]


class StoreError(KdnluError):
    """A logit store cannot be written or opened, or does not fit the data it should serve."""


def fingerprint_examples(examples: Iterable[Example]) -> str:
    """SHA-256 over the examples in order: ids, texts, labels (and words and tags)."""
    digest = hashlib.sha256()
    for ex in examples:
        row = [ex.uid, ex.text_a, ex.text_b, ex.label, ex.words, ex.tags]
        digest.update(json.dumps(row, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoreSpec:
    """What a store holds; two writes of the same spec are the same store (and may resume)."""

    task: str
    split: str
    rows: int
    classes: int
    teachers: tuple[str, ...]
    fingerprint: str
    kind: StoreKind = "dense"
    dtype: str = "float16"
    top_k: int | None = None
    shard_rows: int = 65536

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise StoreError(f"store dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.kind not in ("dense", "topk"):
            raise StoreError(f"store kind must be dense or topk, got {self.kind!r}")
        if self.rows < 1 or self.classes < 1 or self.shard_rows < 1:
            raise StoreError(
                f"a store needs rows, classes and shard_rows >= 1; got {self.rows}, "
                f"{self.classes}, {self.shard_rows}"
            )
        if not self.teachers:
            raise StoreError("a store needs at least one teacher")
        if self.kind == "topk" and not (self.top_k and 1 <= self.top_k <= self.classes):
            raise StoreError(f"a top-k store needs 1 <= top_k <= classes, got {self.top_k}")
        if self.kind == "dense" and self.top_k is not None:
            raise StoreError("top_k is only for top-k stores")

    @property
    def shards(self) -> int:
        return math.ceil(self.rows / self.shard_rows)

    def shard_range(self, shard: int) -> range:
        return range(shard * self.shard_rows, min(self.rows, (shard + 1) * self.shard_rows))

    def array_shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Array name -> (shape, dtype) of the whole store."""
        return self.shard_shapes(None)

    def shard_shapes(self, shard: int | None) -> dict[str, tuple[tuple[int, ...], str]]:
        """Array name -> (shape, dtype) of one shard's rows (of all rows for None)."""
        n = self.rows if shard is None else len(self.shard_range(shard))
        labels = {"labels": ((n,), "float32")}
        if self.kind == "dense":
            return {"logits": ((n, len(self.teachers), self.classes), self.dtype), **labels}
        k = int(self.top_k or 0)
        return {
            "topk_ids": ((n, k), "int32"),
            "topk_probs": ((n, k), self.dtype),
            "rest": ((n,), "float32"),
            **labels,
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["teachers"] = list(self.teachers)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoreSpec:
        data = dict(data)
        data["teachers"] = tuple(data["teachers"])
        return cls(**data)


def array_file(folder: Path, part: str) -> Path:
    return folder / f"{part}.npy"


def region_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's bytes, read in blocks of rows (so a memory map is streamed)."""
    digest = hashlib.sha256()
    step = max(1, (1 << 22) // max(1, array[:1].nbytes))
    for start in range(0, len(array), step):
        digest.update(np.ascontiguousarray(array[start : start + step]).tobytes())
    return digest.hexdigest()


def _open_arrays(folder: Path, spec: StoreSpec, mode: str = "r") -> dict[str, np.ndarray]:
    """Every array of the store as a memory map; ``StoreError`` names one that does not fit."""
    arrays = {}
    for part, (shape, dtype) in spec.array_shapes().items():
        path = array_file(folder, part)
        if not path.is_file():
            raise StoreError(f"{path.name} is missing")
        try:
            array = np.load(path, mmap_mode=mode)  # type: ignore[call-overload]
        except (ValueError, OSError) as exc:
            raise StoreError(f"{path.name} is not a readable array ({exc})") from None
        if array.shape != shape or array.dtype != np.dtype(dtype):
            raise StoreError(
                f"{path.name} holds {array.dtype}{list(array.shape)}, expected "
                f"{np.dtype(dtype)}{list(shape)}"
            )
        arrays[part] = array
    return arrays


def _plain(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Plain ndarray views of memory maps: the same pages, without np.memmap's per-index cost."""
    return {part: array.view(np.ndarray) for part, array in arrays.items()}


def _check_shard(
    arrays: dict[str, np.ndarray], spec: StoreSpec, shard: int, sums: dict[str, str]
) -> str | None:
    """Why shard ``shard``'s rows do not match their recorded checksums (None when they do)."""
    rows = spec.shard_range(shard)
    for part in spec.array_shapes():
        if part not in sums:
            return f"{part}.npy has no recorded checksum for rows {rows.start}-{rows.stop - 1}"
        if region_sha256(arrays[part][rows.start : rows.stop]) != sums[part]:
            return (
                f"rows {rows.start}-{rows.stop - 1} of {part}.npy do not match their recorded "
                "SHA-256 (the file was changed)"
            )
    return None


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
            found = _read_json(header)
            if found.get("spec") != spec.to_json():
                raise StoreError(
                    f"{self.folder} already holds a different finished store "
                    f"({_spec_difference(found.get('spec'), spec)}); write to a new folder or "
                    "remove it first"
                )
            self.done = {int(k): v for k, v in found["shards"].items()}
            return
        progress = self.folder / PROGRESS
        if progress.is_file():
            found = _read_json(progress)
            if found.get("spec") != spec.to_json():
                raise StoreError(
                    f"{self.folder} holds an unfinished write of a different store "
                    f"({_spec_difference(found.get('spec'), spec)}); write to a new folder or "
                    "remove it first"
                )
            try:
                self.arrays = _open_arrays(self.folder, spec, mode="r+")
            except StoreError:  # an array file is gone or damaged: start again
                self.arrays = {}
            for key, sums in found["shards"].items() if self.arrays else ():
                if _check_shard(self.arrays, spec, int(key), sums) is None:
                    self.done[int(key)] = sums
        elif self.folder.exists() and any(self.folder.iterdir()):
            raise StoreError(f"{self.folder} exists and is not a logit store; choose a new folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.arrays:
            self.arrays = {
                part: np.lib.format.open_memmap(
                    array_file(self.folder, part), mode="w+", dtype=dtype, shape=shape
                )
                for part, (shape, dtype) in spec.array_shapes().items()
            }
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
            on_disk = _open_arrays(self.folder, self.spec)
            for shard, sums in self.done.items():
                problem = _check_shard(on_disk, self.spec, shard, sums)
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

    def _save_progress(self) -> None:
        progress = {
            "spec": self.spec.to_json(),
            "shards": {str(k): v for k, v in sorted(self.done.items())},
        }
        atomic_write_text(self.folder / PROGRESS, json.dumps(progress, indent=2) + "\n")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path} does not hold a JSON object")
    return data


def _spec_difference(found: Any, wanted: StoreSpec) -> str:
    if not isinstance(found, dict):
        return "no readable description"
    diffs = [
        f"{key} {found.get(key)!r} vs {value!r}"
        for key, value in wanted.to_json().items()
        if found.get(key) != value
    ]
    return "; ".join(diffs) or "same description"


@dataclass
class LogitStore:
    """A finished store opened for reading; rows are read through memory maps on demand.

    Safe to pickle into DataLoader workers or other processes: the maps are reopened there.
    """

    folder: Path
    spec: StoreSpec
    shards: dict[int, dict[str, str]]
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls,
        folder: str | Path,
        *,
        fingerprint: str | None = None,
        rows: int | None = None,
        classes: int | None = None,
        dtype: str | None = None,
        verify: bool = True,
    ) -> LogitStore:
        """Open a finished store, refusing one that does not fit the given expectations.

        ``verify`` checks every shard's SHA-256 (one streaming read of the files); shapes and
        dtypes are always checked.
        """
        folder = Path(folder)
        header_path = folder / HEADER
        if not header_path.is_file():
            if (folder / PROGRESS).is_file():
                raise StoreError(
                    f"{folder} is an unfinished logit store (its write was interrupted); run "
                    "the same kdnlu-teach command again to finish it"
                )
            raise StoreError(f"{folder} is not a logit store: it has no {HEADER}")
        header = _read_json(header_path)
        if header.get("format") != FORMAT_VERSION:
            raise StoreError(
                f"{header_path}: store format {header.get('format')!r}, this kdnlu reads "
                f"format {FORMAT_VERSION}"
            )
        try:
            spec = StoreSpec.from_json(header["spec"])
            shards = {int(k): dict(v) for k, v in header["shards"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{header_path} is not a valid store header ({exc})") from None
        if sorted(shards) != list(range(spec.shards)):
            raise StoreError(f"{header_path} lists shards {sorted(shards)}, expected {spec.shards}")
        expected = {"fingerprint": fingerprint, "rows": rows, "classes": classes, "dtype": dtype}
        for key, value in expected.items():
            if value is not None and getattr(spec, key) != value:
                what = "examples" if key == "fingerprint" else key
                raise StoreError(
                    f"{folder} does not fit this data: its {what} {getattr(spec, key)!r} differ "
                    f"from the expected {value!r} (task {spec.task}, split {spec.split}); run "
                    "kdnlu-teach on this data again"
                )
        try:
            arrays = _open_arrays(folder, spec)
            for shard in range(spec.shards) if verify else ():
                problem = _check_shard(arrays, spec, shard, shards[shard])
                if problem:
                    raise StoreError(f"shard {shard}: {problem}")
        except StoreError as exc:
            raise StoreError(f"{folder}: {exc}; the store is damaged") from None
        return cls(folder, spec, shards, _plain(arrays))

    def __len__(self) -> int:
        return self.spec.rows

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "spec": self.spec, "shards": self.shards, "_arrays": {}}

    def _array(self, part: str) -> np.ndarray:
        if part not in self._arrays:  # after unpickling: map the files again
            self._arrays = _plain(_open_arrays(self.folder, self.spec))
        return self._arrays[part]

    def _gather(self, indices: Sequence[int] | np.ndarray, part: str) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        array = self._arrays.get(part)
        if array is None:
            array = self._array(part)
        # numpy refuses rows past the end itself; only negative ones (which it would take from
        # the end) need a look: one reduction on this hot path, not two
        if idx.size and idx.min() < 0:
            return self._outside(idx)
        try:
            return array[idx]
        except IndexError:
            return self._outside(idx)

    def _outside(self, idx: np.ndarray) -> np.ndarray:
        bad = int(idx[(idx < 0) | (idx >= self.spec.rows)][0])
        raise IndexError(f"row {bad} is outside the store's {self.spec.rows} rows")

    def logits(
        self, indices: Sequence[int] | np.ndarray, teachers: Sequence[int] | None = None
    ) -> np.ndarray:
        """Per-teacher outputs of the rows, ``[B, teachers, classes]`` float32 (dense stores);
        ``teachers`` (0-based positions in ``spec.teachers``) keeps only those teachers."""
        self._need("dense")
        logits = self._gather(indices, "logits")
        if teachers is not None:
            logits = logits[:, list(teachers)]
        return logits.astype(np.float32)

    def ensemble_probs(
        self, indices: Sequence[int] | np.ndarray, temperature: float = 1.0
    ) -> np.ndarray:
        """Mean over teachers of softmax(logits / T), ``[B, classes]`` float32 (dense stores)."""
        z = self.logits(indices)
        if temperature != 1.0:
            z /= temperature
        z -= z.max(-1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(-1, keepdims=True)
        return z.mean(1)

    def mean_scores(
        self, indices: Sequence[int] | np.ndarray, teachers: Sequence[int] | None = None
    ) -> np.ndarray:
        """Mean over teachers (or over ``teachers`` only) of a one-output (regression) store,
        ``[B]`` float32."""
        if self.spec.classes != 1:
            raise StoreError(f"{self.folder} has {self.spec.classes} classes, not one score")
        return self.logits(indices, teachers)[:, :, 0].mean(1)

    def topk(
        self, indices: Sequence[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k class ids ``[B, k]`` int32, their probabilities ``[B, k]`` float32 and the mass
        outside them ``[B]`` (top-k stores)."""
        self._need("topk")
        ids = self._gather(indices, "topk_ids")
        probs = self._gather(indices, "topk_probs").astype(np.float32)
        return ids, probs, self._gather(indices, "rest")

    def labels(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Gold labels of the rows, ``[B]`` float32 (NaN where the data had none)."""
        return self._gather(indices, "labels")

    def shard_arrays(self, shard: int) -> dict[str, np.ndarray]:
        """One shard's rows of every array, as memory-map views (for streaming over a store)."""
        rows = self.spec.shard_range(shard)
        return {
            part: self._array(part)[rows.start : rows.stop] for part in self.spec.array_shapes()
        }

    def _need(self, kind: str) -> None:
        if self.spec.kind != kind:
            raise StoreError(f"{self.folder} is a {self.spec.kind} store, not {kind}")


def topk_of(probs: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The arrays of a top-k shard from full ensemble probabilities ``[rows, classes]``."""
    ids = np.argpartition(-probs, k - 1, axis=-1)[:, :k]
    top = np.take_along_axis(probs, ids, -1)
    order = np.argsort(-top, axis=-1, kind="stable")
    ids, top = np.take_along_axis(ids, order, -1), np.take_along_axis(top, order, -1)
    rest = np.clip(1.0 - top.sum(-1), 0.0, 1.0).astype(np.float32)
    return {"topk_ids": ids.astype(np.int32), "topk_probs": top, "rest": rest}


def store_statistics(store: LogitStore) -> dict[str, Any]:
    """How good and how diverse the teachers are, from one streaming pass over the shards.

    Classification (dense): accuracy of each teacher and of the ensemble (argmax of the mean
    probabilities) on the rows with a gold label, the share of rows where all teachers pick the
    same class, and the mean entropy (nats) of the ensemble distribution. Regression (one
    output): Pearson correlation of each teacher and of the mean with the gold scores, and the
    mean spread (std) across teachers. Top-k: top-1 accuracy, mean top-k mass outside the top k.
    """
    from kdnlu.metrics import pearson

    spec = store.spec
    teachers = len(spec.teachers)
    stats: dict[str, Any] = {"rows": spec.rows}
    labelled = agree = 0
    correct = np.zeros(teachers + 1)
    entropy = rest = spread = 0.0
    scores: list[np.ndarray] = []
    golds: list[np.ndarray] = []
    for shard in range(spec.shards):
        arrays = store.shard_arrays(shard)
        gold = np.asarray(arrays["labels"], dtype=np.float64)
        known = ~np.isnan(gold)
        labelled += int(known.sum())
        if spec.kind == "topk":
            ids = np.asarray(arrays["topk_ids"])
            correct[-1] += int((ids[known, 0] == gold[known]).sum())
            rest += float(np.asarray(arrays["rest"], dtype=np.float64).sum())
            continue
        logits = np.asarray(arrays["logits"], dtype=np.float32)
        if spec.classes == 1:
            scores.append(logits[known, :, 0])
            golds.append(gold[known])
            spread += float(logits[:, :, 0].std(1).sum())
            continue
        z = logits - logits.max(-1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        ensemble = probs.mean(1)
        picks = logits.argmax(-1)  # [n, teachers]
        agree += int((picks == picks[:, :1]).all(1).sum())
        entropy += float(-(ensemble * np.log(np.clip(ensemble, 1e-12, None))).sum())
        for t in range(teachers):
            correct[t] += int((picks[known, t] == gold[known]).sum())
        correct[-1] += int((ensemble[known].argmax(-1) == gold[known]).sum())
    stats["labelled_rows"] = labelled
    if spec.kind == "topk":
        stats["ensemble_top1_accuracy"] = 100 * correct[-1] / labelled if labelled else None
        stats["mean_mass_outside_top_k"] = rest / spec.rows
    elif spec.classes == 1:
        all_scores = np.concatenate(scores) if scores else np.zeros((0, teachers))
        gold_all = np.concatenate(golds) if golds else np.zeros(0)
        usable = len(gold_all) > 1
        stats["teacher_pearson"] = [
            pearson(all_scores[:, t], gold_all) if usable else None for t in range(teachers)
        ]
        stats["ensemble_pearson"] = pearson(all_scores.mean(1), gold_all) if usable else None
        stats["mean_teacher_spread"] = spread / spec.rows
    else:
        per_teacher = [100 * c / labelled if labelled else None for c in correct[:-1]]
        stats["teacher_accuracy"] = per_teacher
        stats["ensemble_accuracy"] = 100 * correct[-1] / labelled if labelled else None
        stats["teacher_agreement"] = 100 * agree / spec.rows
        stats["mean_ensemble_entropy"] = entropy / spec.rows
    return stats
