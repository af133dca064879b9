"""The on-disk format of a logit store: its spec, arrays, checksums and header helpers."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kdnlu.errors import KdnluError
from kdnlu.task import Example

FORMAT_VERSION = 1
HEADER = "header.json"
PROGRESS = "progress.json"
DTYPES = ("float16", "float32")
DENSE_FILES = ("logits",)
TOPK_FILES = ("topk_ids", "topk_probs", "rest")
HIDDEN_FILES = ("states",)
HIDDEN_SPLIT = "train-hidden"  # a task's hidden store: <store>/<task>/train-hidden
ATTENTION_SPLIT = "train-attention"  # its attention store: <store>/<task>/train-attention
StoreKind = Literal["dense", "topk", "hidden", "attention"]
LAYER_KINDS = ("hidden", "attention")
HiddenTokens = Literal["cls", "all"]


class StoreError(KdnluError):
    """A logit store cannot be written or opened, or does not fit the data it should serve."""


def fingerprint_examples(examples: Iterable[Example]) -> str:
    """SHA-256 over the examples in order: ids, texts, labels (and words and tags; and group
    and candidate where a reader gives them)."""
    digest = hashlib.sha256()
    for ex in examples:
        row = [ex.uid, ex.text_a, ex.text_b, ex.label, ex.words, ex.tags]
        if ex.group is not None or ex.candidate is not None:
            row += [ex.group, ex.candidate]
        digest.update(json.dumps(row, ensure_ascii=False).encode())
        digest.update(b"\n")
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
    # hidden stores: the teachers' mean hidden states at these layers (Hugging Face numbering,
    # 0 = embeddings), at the [CLS] position or every position of ``length`` tokens; ``classes``
    # is the hidden width there. Attention stores: the teachers' mean attention distributions of
    # the [CLS] query over ``length`` key positions at these layers (1 = the first), ``classes``
    # heads
    layers: tuple[int, ...] | None = None
    tokens: HiddenTokens | None = None
    length: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise StoreError(f"store dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.kind not in ("dense", "topk", *LAYER_KINDS):
            raise StoreError(
                f"store kind must be dense, topk, hidden or attention, got {self.kind!r}"
            )
        layered = (self.layers, self.tokens)
        if (self.kind in LAYER_KINDS) != all(v is not None for v in layered):
            raise StoreError("layers and tokens are given for (and only for) layer stores")
        if self.kind == "hidden" and (self.tokens == "all") != (self.length is not None):
            raise StoreError("length is given for (and only for) hidden stores of all tokens")
        if self.kind == "attention" and (self.tokens != "cls" or self.length is None):
            raise StoreError("an attention store holds the [CLS] query over length positions")
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
        if self.kind == "hidden":
            assert self.layers is not None
            positions = () if self.length is None else (self.length,)
            shape = (n, len(self.layers), *positions, self.classes)
            return {"states": (shape, self.dtype), **labels}
        if self.kind == "attention":
            assert self.layers is not None and self.length is not None
            shape = (n, len(self.layers), self.classes, self.length)
            return {"states": (shape, self.dtype), **labels}
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
        for key in ("layers", "tokens", "length"):  # hidden stores' keys only
            if data[key] is None:
                del data[key]
        if self.layers is not None:
            data["layers"] = list(self.layers)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoreSpec:
        data = dict(data)
        data["teachers"] = tuple(data["teachers"])
        if data.get("layers") is not None:
            data["layers"] = tuple(data["layers"])
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


def open_arrays(folder: Path, spec: StoreSpec, mode: str = "r") -> dict[str, np.ndarray]:
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


def plain_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Plain ndarray views of memory maps: the same pages, without np.memmap's per-index cost."""
    return {part: array.view(np.ndarray) for part, array in arrays.items()}


def check_shard(
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


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path} does not hold a JSON object")
    return data


def spec_difference(found: Any, wanted: StoreSpec) -> str:
    if not isinstance(found, dict):
        return "no readable description"
    diffs = [
        f"{key} {found.get(key)!r} vs {value!r}"
        for key, value in wanted.to_json().items()
        if found.get(key) != value
    ]
    return "; ".join(diffs) or "same description"
