"""Reading a finished logit store through memory maps, and what it says about its teachers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdnlu.store.format import (
    FORMAT_VERSION,
    HEADER,
    PROGRESS,
    StoreError,
    StoreSpec,
    check_shard,
    open_arrays,
    plain_arrays,
    read_json,
)


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
        header = read_json(header_path)
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
            arrays = open_arrays(folder, spec)
            for shard in range(spec.shards) if verify else ():
                problem = check_shard(arrays, spec, shard, shards[shard])
                if problem:
                    raise StoreError(f"shard {shard}: {problem}")
        except StoreError as exc:
            raise StoreError(f"{folder}: {exc}; the store is damaged") from None
        return cls(folder, spec, shards, plain_arrays(arrays))

    def __len__(self) -> int:
        return self.spec.rows

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "spec": self.spec, "shards": self.shards, "_arrays": {}}

    def _array(self, part: str) -> np.ndarray:
        if part not in self._arrays:  # after unpickling: map the files again
            self._arrays = plain_arrays(open_arrays(self.folder, self.spec))
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

    def states(self, indices: Sequence[int] | np.ndarray, layers: Sequence[int]) -> np.ndarray:
        """The teachers' mean hidden states of the rows at ``layers`` (numbers as
        ``spec.layers`` holds them), ``[B, len(layers), H]`` ([CLS]) or ``[B, len(layers),
        length, H]`` (all tokens), float32 (hidden stores); of an attention store, their mean
        [CLS] attention ``[B, len(layers), heads, length]``."""
        if self.spec.kind not in ("hidden", "attention"):
            self._need("hidden")
        assert self.spec.layers is not None
        missing = [n for n in layers if n not in self.spec.layers]
        if missing:
            raise StoreError(
                f"{self.folder} holds teacher layers {list(self.spec.layers)}, not {missing}; "
                f"write it with kdnlu-teach --{self.spec.kind}-layers covering them"
            )
        positions = [self.spec.layers.index(n) for n in layers]
        return self._gather(indices, "states")[:, positions].astype(np.float32)

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
    kind = "topk" if store.spec.kind == "topk" else "score" if store.spec.classes == 1 else "class"
    shards = [store.shard_arrays(shard) for shard in range(store.spec.shards)]
    golds = [np.asarray(arrays["labels"], dtype=np.float64) for arrays in shards]
    labelled = sum(int((~np.isnan(gold)).sum()) for gold in golds)
    stats: dict[str, Any] = {"rows": store.spec.rows, "labelled_rows": labelled}
    by_kind = {"topk": _topk_statistics, "score": _score_statistics, "class": _class_statistics}
    stats.update(by_kind[kind](store.spec, shards, golds, labelled))
    return stats


def _percent(count: float, labelled: int) -> float | None:
    return 100 * count / labelled if labelled else None


def _topk_statistics(
    spec: StoreSpec, shards: list[dict[str, np.ndarray]], golds: list[np.ndarray], labelled: int
) -> dict[str, Any]:
    correct = rest = 0.0
    for arrays, gold in zip(shards, golds, strict=True):
        known = ~np.isnan(gold)
        correct += int((np.asarray(arrays["topk_ids"])[known, 0] == gold[known]).sum())
        rest += float(np.asarray(arrays["rest"], dtype=np.float64).sum())
    return {
        "ensemble_top1_accuracy": _percent(correct, labelled),
        "mean_mass_outside_top_k": rest / spec.rows,
    }


def _score_statistics(
    spec: StoreSpec, shards: list[dict[str, np.ndarray]], golds: list[np.ndarray], labelled: int
) -> dict[str, Any]:
    from kdnlu.metrics import correlation as pearson

    teachers = len(spec.teachers)
    scores, known_golds, spread = [], [], 0.0
    for arrays, gold in zip(shards, golds, strict=True):
        known = ~np.isnan(gold)
        logits = np.asarray(arrays["logits"], dtype=np.float32)
        scores.append(logits[known, :, 0])
        known_golds.append(gold[known])
        spread += float(logits[:, :, 0].std(1).sum())
    all_scores = np.concatenate(scores) if scores else np.zeros((0, teachers))
    gold_all = np.concatenate(known_golds) if known_golds else np.zeros(0)
    usable = len(gold_all) > 1
    return {
        "teacher_pearson": [
            pearson(all_scores[:, t], gold_all) if usable else None for t in range(teachers)
        ],
        "ensemble_pearson": pearson(all_scores.mean(1), gold_all) if usable else None,
        "mean_teacher_spread": spread / spec.rows,
    }


def _class_statistics(
    spec: StoreSpec, shards: list[dict[str, np.ndarray]], golds: list[np.ndarray], labelled: int
) -> dict[str, Any]:
    teachers = len(spec.teachers)
    correct = np.zeros(teachers + 1)
    agree, entropy = 0, 0.0
    for arrays, gold in zip(shards, golds, strict=True):
        known = ~np.isnan(gold)
        logits = np.asarray(arrays["logits"], dtype=np.float32)
        z = logits - logits.max(-1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        ensemble = probs.mean(1)
        picks = logits.argmax(-1)  # [n, teachers]
        agree += int((picks == picks[:, :1]).all(1).sum())
        entropy += float(-(ensemble * np.log(np.clip(ensemble, 1e-12, None))).sum())
        for t in range(teachers):
            correct[t] += int((picks[known, t] == gold[known]).sum())
        correct[-1] += int((ensemble[known].argmax(-1) == gold[known]).sum())
    return {
        "teacher_accuracy": [_percent(c, labelled) for c in correct[:-1]],
        "ensemble_accuracy": _percent(correct[-1], labelled),
        "teacher_agreement": 100 * agree / spec.rows,
        "mean_ensemble_entropy": entropy / spec.rows,
    }
