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

from kdnlu.rundir import file_sha256
from kdnlu.store.format import (
    ATTENTION_SPLIT,
    DENSE_FILES,
    DTYPES,
    FORMAT_VERSION,
    HEADER,
    HIDDEN_SPLIT,
    PROGRESS,
    TOPK_FILES,
    StoreError,
    StoreKind,
    StoreSpec,
    array_file,
    fingerprint_examples,
    region_sha256,
)
from kdnlu.store.inspect import describe_store
from kdnlu.store.reader import LogitStore, store_statistics, topk_of
from kdnlu.store.writer import StoreWriter

__all__ = [
    "ATTENTION_SPLIT",
    "DENSE_FILES",
    "DTYPES",
    "FORMAT_VERSION",
    "HEADER",
    "HIDDEN_SPLIT",
    "PROGRESS",
    "TOPK_FILES",
    "LogitStore",
    "StoreError",
    "StoreKind",
    "StoreSpec",
    "StoreWriter",
    "array_file",
    "describe_store",
    "file_sha256",
    "fingerprint_examples",
    "region_sha256",
    "store_statistics",
    "topk_of",
]
