"""A token cache on disk: tokenised splits as numpy arrays, opened as memory maps.

An entry is keyed by the tokenizer (its full serialised vocabulary and settings), the data file's
content hash, the maximum length and the reading options, so changing any of them builds a new
entry; nothing is trusted by file name or modification time. Each array's SHA-256 is checked on
open: an entry changed on disk is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kdnlu.data import EncodedSplit
from kdnlu.rundir import file_sha256, staged_dir

log = logging.getLogger("kdnlu.data")

FORMAT_VERSION = 3  # 3: meta.json holds each array's SHA-256
ARRAYS = ("ids", "type_ids", "offsets", "labels", "groups", "token_labels")
CACHE_ENV = "KDNLU_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$KDNLU_CACHE_DIR``, else ``~/.cache/kdnlu``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "kdnlu"


def tokenizer_digest(tokenizer: Any) -> str:
    """Hash of everything that decides the token ids a tokenizer produces."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        # truncation and padding are call settings the tokenizer remembers, not its vocabulary
        state.pop("truncation", None)
        state.pop("padding", None)
        digest.update(json.dumps(state, sort_keys=True).encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    special = {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())}
    digest.update(json.dumps(special, sort_keys=True).encode())
    return digest.hexdigest()


class TokenCache:
    """Tokenised splits under ``root/tokens/<key>/``, written atomically, read as memmaps."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "tokens"
        self._tokenizer_digests: dict[int, str] = {}

    def key(self, tokenizer: Any, data_file: Path, max_length: int, options: dict[str, Any]) -> str:
        tok = self._tokenizer_digests.get(id(tokenizer))
        if tok is None:
            tok = self._tokenizer_digests[id(tokenizer)] = tokenizer_digest(tokenizer)
        parts = {
            "format": FORMAT_VERSION,
            "tokenizer": tok,
            "file": file_sha256(data_file),
            "max_length": max_length,
            "options": options,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]

    def get_or_build(
        self,
        task: str,
        tokenizer: Any,
        data_file: Path,
        max_length: int,
        options: dict[str, Any],
        build: Callable[[], EncodedSplit],
    ) -> EncodedSplit:
        """The cached split for these inputs, building and storing it on a miss."""
        folder = self.root / self.key(tokenizer, data_file, max_length, options)
        if (folder / "meta.json").is_file():
            try:
                return self._open(folder, task)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("token cache entry %s is unreadable (%s); rebuilding it", folder, exc)
                shutil.rmtree(folder, ignore_errors=True)
        split = build()
        meta = {"task": task, "file": str(data_file), "max_length": max_length, "options": options}
        try:
            self._store(folder, split, meta)
        except OSError as exc:  # the cache only saves time: a full or read-only disk is no reason
            log.warning("cannot write the token cache at %s (%s); going on without it", folder, exc)
        return split

    def _store(self, folder: Path, split: EncodedSplit, meta: dict[str, Any]) -> None:
        try:
            with staged_dir(folder) as staging:
                arrays = {n: getattr(split, n) for n in ("ids", "type_ids", "offsets", "labels")}
                arrays["groups"] = split.group_ids()
                arrays["token_labels"] = (
                    split.token_labels if split.token_level else np.zeros(0, np.int64)
                )
                for name, array in arrays.items():
                    np.save(staging / f"{name}.npy", array)
                meta = {
                    **meta,
                    "sha256": {name: file_sha256(staging / f"{name}.npy") for name in arrays},
                    "rows": len(split),
                    "pad_id": split.pad_id,
                    "token_level": split.token_level,
                    "notes": list(split.notes),
                }
                (staging / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        except OSError:
            if not (folder / "meta.json").is_file():
                raise
            # another process stored the same entry first: theirs is as good as ours

    def _open(self, folder: Path, task: str) -> EncodedSplit:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        rows = meta["rows"]
        per_row = {len(arrays["labels"]), len(arrays["groups"])}
        if len(arrays["offsets"]) != rows + 1 or per_row != {rows}:
            raise ValueError("row counts disagree with meta.json")
        if int(arrays["offsets"][-1]) != len(arrays["ids"]):
            raise ValueError("token arrays are truncated")
        if meta["token_level"]:
            if len(arrays["token_labels"]) != len(arrays["ids"]):
                raise ValueError("token labels are truncated")
        else:
            arrays["token_labels"] = None
        for name, expected in meta["sha256"].items():  # arrays replaced in place, same size
            if file_sha256(folder / f"{name}.npy") != expected:
                raise ValueError(f"{name}.npy does not match its checksum in meta.json")
        notes = tuple(meta.get("notes", ()))
        for note in notes:  # what the build warned about still holds for this entry
            log.warning(note)
        return EncodedSplit(task=task, pad_id=int(meta["pad_id"]), notes=notes, **arrays)
