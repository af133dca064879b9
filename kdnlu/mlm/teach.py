"""The teacher's masked-LM distributions as top-k logit stores, and how faithful top-k is.

One pass of the teacher over a masked corpus writes, for every k asked for, a top-k store
(``kdnlu.store``, kind ``topk``; one row per masked position, in corpus order, the gold token
id as its label) to ``OUT/k<K>/``, and measures on the same rows how much of the full
distribution over the vocabulary each k keeps (``OUT/fidelity.json`` and ``fidelity.md``).

Fidelity, per k, averaged over masked positions, with ``p`` the teacher's full distribution,
``m`` the probability mass of its k most likely words and ``V`` the vocabulary size:

- ``mass_outside``: ``1 - m``.
- ``kl_full_to_topk_spread``: KL(p || p~), where p~ keeps the top k and spreads the remaining
  mass evenly over the other ``V - k`` words. KL(p || top-k renormalised) itself is infinite
  wherever ``m < 1`` (the renormalised distribution gives the other words probability 0), so
  this is its finite form; 0 means nothing is lost.
- ``kl_topk_to_full``: KL(top-k renormalised || p) = ``-log m``, how far the target a student
  trains on (``distil`` renormalises the top k) lies from the full teacher.
- ``entropy_gap``: entropy of the renormalised top k minus the full entropy (nats).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from kdnlu.errors import KdnluError
from kdnlu.lock import lock_folder
from kdnlu.mlm.corpus import MaskedCorpus
from kdnlu.mlm.models import MlmModel, sentence_batches
from kdnlu.options import option
from kdnlu.rundir import atomic_write_text
from kdnlu.store import LogitStore, StoreSpec, StoreWriter, file_sha256

FIDELITY = ("mass_outside", "kl_full_to_topk_spread", "kl_topk_to_full", "entropy_gap")


def store_folder(out: Path, k: int) -> Path:
    return out / f"k{k}"


def batch_device(mlm: MlmModel) -> torch.device:
    return next(mlm.model.parameters()).device


def teacher_identity(mlm: MlmModel) -> str:
    weights = Path(mlm.source) / "model.safetensors"
    tag = file_sha256(weights)[:16] if weights.is_file() else "unsaved"
    return f"{mlm.source}@{tag}"


def fidelity_terms(
    top: np.ndarray, plogp_sum: np.ndarray, vocab: int, k: int
) -> dict[str, np.ndarray]:
    """Per-row fidelity of top-k (see the module) from the rows' largest probabilities in
    descending order ``top [rows, >= k]`` and ``sum(p log p)`` over the whole vocabulary."""
    if not 1 <= k <= min(vocab, top.shape[1]):
        raise KdnluError(f"top-k must be between 1 and {min(vocab, top.shape[1])}, got {k}")
    p = top[:, :k].astype(np.float64)
    mass = np.clip(p.sum(1), 1e-300, 1.0)
    rest = np.clip(1.0 - mass, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        top_plogp = np.where(p > 0, p * np.log(p), 0.0).sum(1)
        outside_plogp = plogp_sum.astype(np.float64) - top_plogp
        if k < vocab:
            spread = np.where(rest > 0, rest * np.log(rest / (vocab - k)), 0.0)
            kl_spread = np.maximum(outside_plogp - spread, 0.0)
        else:
            kl_spread = np.zeros(len(p))
        renorm_entropy = -(top_plogp / mass - np.log(mass))
    return {
        "mass_outside": rest,
        "kl_full_to_topk_spread": kl_spread,
        "kl_topk_to_full": -np.log(mass),
        "entropy_gap": renorm_entropy + plogp_sum,
    }


def top_of(logits: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Softmax of ``logits [rows, V]``: its ``k`` largest probabilities in descending order,
    their ids, and ``sum(p log p)`` of every row (float64 where it matters)."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    plogp = (logp.exp() * logp).sum(-1)
    values, ids = logp.topk(k, dim=-1, sorted=True)
    return values.exp().cpu().numpy(), ids.int().cpu().numpy(), plogp.cpu().numpy()


@dataclass(frozen=True)
class TeachMlmOptions:
    """How the teacher's top-k stores are written (the options of ``kdnlu-mlm teach``)."""

    top_k: tuple[int, ...] = option(
        (1, 8, 32, 128), "the k of each store, e.g. 1,8,32,128", sep=","
    )
    batch_size: int = option(64, "sentences per forward pass")
    dtype: Literal["float16", "float32"] = option("float16", "number type of the probabilities")
    shard_rows: int = option(65536, "rows per shard file of a store")


def teach_mlm(
    teacher: MlmModel,
    corpus: MaskedCorpus,
    out: str | Path,
    ks: Sequence[int] = TeachMlmOptions.top_k,
    batch_size: int = TeachMlmOptions.batch_size,
    dtype: str = TeachMlmOptions.dtype,
    shard_rows: int = TeachMlmOptions.shard_rows,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the top-k stores of every k and the fidelity report; returns the report.

    Writing again resumes: finished shards are kept (stores resume shard by shard), and the
    teacher only runs over sentences whose rows are still missing from some store. ``out`` is
    locked while it is written: a second writer is refused.
    """
    with lock_folder(Path(out), "folder of MLM logit stores"):
        return _teach_mlm(teacher, corpus, Path(out), ks, batch_size, dtype, shard_rows, progress)


@dataclass
class FidelityTally:
    """The fidelity sums of the rows taught so far, per k."""

    sums: dict[int, dict[str, float]]
    counted: int = 0
    top1_hits: int = 0


def _teach_mlm(
    teacher: MlmModel,
    corpus: MaskedCorpus,
    out: Path,
    ks: Sequence[int],
    batch_size: int,
    dtype: str,
    shard_rows: int,
    progress: bool,
) -> dict[str, Any]:
    ks = sorted(set(int(k) for k in ks))
    vocab = int(teacher.model.config.vocab_size)
    if not ks or ks[0] < 1 or ks[-1] > vocab:
        raise KdnluError(f"top-k values must lie in 1..{vocab}, got {ks}")
    identity = teacher_identity(teacher)
    writers = {k: topk_writer(out, k, corpus, vocab, identity, dtype, shard_rows) for k in ks}
    spec = writers[ks[0]].spec
    pending = sorted(set().union(*(w.pending for w in writers.values())))
    tally = FidelityTally({k: dict.fromkeys(FIDELITY, 0.0) for k in ks})
    report_path = out / "fidelity.json"
    old = json.loads(report_path.read_text()) if report_path.is_file() else None
    teacher.model.eval()
    bar = tqdm(total=len(pending), desc="teach MLM", unit="shard", disable=not progress)
    for shard in pending:
        buffers, labels = teach_shard(
            teacher, corpus, spec.shard_range(shard), ks, batch_size, tally
        )
        for k, writer in writers.items():
            if shard in writer.pending:
                arrays = {n: np.concatenate([b[n] for b in buffers[k]]) for n in buffers[k][0]}
                writer.write_shard(shard, {**arrays, "labels": labels})
        bar.update()
    bar.close()
    stores = {k: writer.finish() for k, writer in writers.items()}
    if tally.counted == 0 and old is not None:
        return old  # every store was already finished: keep the report of the full pass
    partial = bool(tally.counted and tally.counted < corpus.rows)
    report = fidelity_report(
        stores, tally.sums, tally.counted, tally.top1_hits, corpus, identity, partial=partial
    )
    atomic_write_text(report_path, json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "fidelity.md", fidelity_markdown(report))
    return report


def topk_writer(
    out: Path, k: int, corpus: MaskedCorpus, vocab: int, identity: str, dtype: str, rows: int
) -> StoreWriter:
    """The writer of the top-``k`` store of the corpus (resuming one that was started)."""
    spec = StoreSpec(
        task="mlm",
        split="corpus",
        rows=corpus.rows,
        classes=vocab,
        teachers=(identity,),
        fingerprint=corpus.fingerprint,
        kind="topk",
        dtype=dtype,
        top_k=k,
        shard_rows=rows,
    )
    return StoreWriter(store_folder(out, k), spec)


def teach_shard(
    teacher: MlmModel,
    corpus: MaskedCorpus,
    rows: range,
    ks: Sequence[int],
    batch_size: int,
    tally: FidelityTally,
) -> tuple[dict[int, list[dict[str, np.ndarray]]], np.ndarray]:
    """The teacher's top-k arrays of one shard's rows (per k, one part per batch) and their
    gold tokens; adds the rows' fidelity terms to ``tally``."""
    first = int(np.searchsorted(corpus.offsets, rows.start, side="right") - 1)
    last = int(np.searchsorted(corpus.offsets, rows.stop, side="left"))
    buffers: dict[int, list[dict[str, np.ndarray]]] = {k: [] for k in ks}
    vocab = int(teacher.model.config.vocab_size)
    parts = []
    for batch in sentence_batches(np.arange(first, last), batch_size, corpus):
        keep = torch.from_numpy((batch["rows"] >= rows.start) & (batch["rows"] < rows.stop))
        with torch.no_grad():
            logits = teacher.masked_logits(batch)[keep.to(batch_device(teacher))]
        top, ids, plogp = top_of(logits, ks[-1])
        targets = batch["targets"][keep].numpy()
        parts.append(targets)
        tally.top1_hits += int((ids[:, 0] == targets).sum())
        tally.counted += len(top)
        for k in ks:
            rest = np.clip(1.0 - top[:, :k].astype(np.float64).sum(1), 0.0, 1.0)
            buffers[k].append({"topk_ids": ids[:, :k], "topk_probs": top[:, :k], "rest": rest})
            for name, values in fidelity_terms(top, plogp, vocab, k).items():
                tally.sums[k][name] += float(values.sum())
    return buffers, np.concatenate(parts).astype(np.float32)


def store_bytes(store: LogitStore) -> int:
    return sum(f.stat().st_size for f in Path(store.folder).iterdir() if f.is_file())


def fidelity_report(
    stores: dict[int, LogitStore],
    sums: dict[int, dict[str, float]],
    counted: int,
    top1_hits: int,
    corpus: MaskedCorpus,
    identity: str,
    partial: bool,
) -> dict[str, Any]:
    rows = max(counted, 1)
    vocab = next(iter(stores.values())).spec.classes
    dense = corpus.rows * vocab * 2  # the same rows kept whole in float16
    return {
        "teacher": identity,
        "rows": corpus.rows,
        "rows_measured": counted,
        "partial": partial,
        "sentences": corpus.sentences,
        "vocab": vocab,
        "teacher_top1_accuracy": 100.0 * top1_hits / rows,
        "dense_float16_bytes": dense,
        "k": {
            str(k): {
                **{name: total / rows for name, total in sums[k].items()},
                "store_bytes": store_bytes(store),
                "bytes_per_row": store_bytes(store) / corpus.rows,
                "share_of_dense": store_bytes(store) / dense,
            }
            for k, store in stores.items()
        },
    }


def fidelity_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Top-k fidelity of the teacher's masked-LM distributions ({report['rows']:,} masked "
        f"positions in {report['sentences']:,} sentences, vocabulary {report['vocab']:,})",
        "",
        f"Teacher top-1 accuracy on the masked tokens: {report['teacher_top1_accuracy']:.2f}%.",
        "",
        "| k | mass outside top k | KL(full ‖ top-k, rest spread) | KL(top-k renormalised ‖ "
        "full) | store size | bytes / row | of dense fp16 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k, row in report["k"].items():
        lines.append(
            f"| {k} | {row['mass_outside']:.4f} | {row['kl_full_to_topk_spread']:.4f} | "
            f"{row['kl_topk_to_full']:.4f} | {row['store_bytes'] / 2**20:.2f} MiB | "
            f"{row['bytes_per_row']:.0f} | {100 * row['share_of_dense']:.3f}% |"
        )
    lines += [
        "",
        "KL in nats, averaged over masked positions. KL(full ‖ top-k renormalised) is infinite "
        "wherever mass lies outside the top k; the spread form keeps the top k and shares the "
        "remaining mass evenly among the other words (docs/vocab_distillation.md).",
    ]
    if report.get("partial"):
        lines.append(f"Measured on {report['rows_measured']:,} rows (a resumed write).")
    return "\n".join(lines) + "\n"


def check_store(store: LogitStore, corpus: MaskedCorpus, folder: Path) -> None:
    """A store ``distil`` may read for this corpus: top-k, one row per masked position."""
    spec = store.spec
    if spec.kind != "topk" or spec.task != "mlm":
        raise KdnluError(f"{folder} is not a masked-LM top-k store (made by kdnlu-mlm teach)")
    if spec.fingerprint != corpus.fingerprint or spec.rows != corpus.rows:
        raise KdnluError(
            f"{folder} was written for another corpus (fingerprint or row count differ); "
            "teach again with this corpus"
        )
