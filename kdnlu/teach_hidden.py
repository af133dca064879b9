"""The teachers' hidden states for intermediate-layer distillation (``kdnlu-teach
--hidden-layers``): the mean over the teachers of each chosen layer's states on a task's
training rows, at [CLS] or at every token position, written as a ``hidden`` store at
``OUT/<task>/train-hidden`` (memory-mapped, fp16 by default, resumable like a logit store).
``--attention-layers`` writes the mean attention distributions of the [CLS] query over the
key positions, per head, as an ``attention`` store at ``OUT/<task>/train-attention``.

One mean, not one array per teacher: for an MSE (or KL) term the gradient against the mean of
the teachers' states is the mean of the gradients against each, so the store is as many times
smaller as there are teachers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from kdnlu.data import encode_examples, iterate_batches
from kdnlu.errors import KdnluError
from kdnlu.evaluation import label_dtype
from kdnlu.lock import lock_folder
from kdnlu.store import (
    ATTENTION_SPLIT,
    HIDDEN_SPLIT,
    LogitStore,
    StoreSpec,
    StoreWriter,
    fingerprint_examples,
)
from kdnlu.task import Example
from kdnlu.trained import TrainedRun

log = logging.getLogger("kdnlu.teach")


def teacher_depth(run: TrainedRun) -> int:
    """How many layers a teacher's encoder has (its hidden states are numbered 0 to that)."""
    config = getattr(getattr(run.model.encoder, "model", None), "config", None)
    depth = getattr(config, "num_hidden_layers", None)
    if depth is None or not hasattr(run.model.encoder, "hidden_states"):
        raise KdnluError(
            f"teacher {run.run_dir}: its encoder '{run.recipe.encoder.name}' does not give "
            "hidden states (only Hugging Face encoders do); leave out --hidden-layers"
        )
    return int(depth)


def hidden_spec(
    runs: Sequence[TrainedRun],
    identities: tuple[str, ...],
    key: str,
    examples: list[Example],
    layers: tuple[int, ...],
    tokens: str,
    dtype: str,
    shard_rows: int,
    kind: str = "hidden",
) -> StoreSpec:
    """What the hidden (or attention) store of ``key`` holds; the teachers must agree on
    depth and width (and heads)."""
    attention = kind == "attention"
    flag = f"--{kind}-layers"
    depths = {teacher_depth(run) for run in runs}
    widths = {
        int(run.model.encoder.model.config.num_attention_heads)
        if attention
        else int(run.model.encoder.hidden_size)
        for run in runs
    }
    if len(depths) != 1 or len(widths) != 1:
        raise KdnluError(
            f"{flag}: the teachers' encoders differ in depth {sorted(depths)} or "
            f"{'heads' if attention else 'width'} {sorted(widths)}; they cannot be averaged"
        )
    depth, first = depths.pop(), 1 if attention else 0
    outside = [n for n in layers if not first <= n <= depth]
    if outside or len(set(layers)) != len(layers):
        lowest = "1 (the first layer)" if attention else "0 (the embeddings)"
        raise KdnluError(
            f"{flag} {list(layers)}: give distinct layers from {lowest} to {depth} (the "
            "teachers' last layer)"
        )
    lengths = {run.recipe.tasks[key].options.max_length for run in runs}
    if (tokens == "all" or attention) and len(lengths) != 1:
        raise KdnluError(f"the teachers tokenise {key} to different max_lengths {sorted(lengths)}")
    return StoreSpec(
        task=key,
        split=ATTENTION_SPLIT if attention else HIDDEN_SPLIT,
        rows=len(examples),
        classes=widths.pop(),
        teachers=identities,
        fingerprint=fingerprint_examples(examples),
        kind="attention" if attention else "hidden",
        dtype=dtype,
        shard_rows=shard_rows,
        layers=tuple(layers),
        tokens="cls" if attention else tokens,  # type: ignore[arg-type]
        length=lengths.pop() if tokens == "all" or attention else None,
    )


def store_bytes(spec: StoreSpec) -> int:
    """Bytes the store's arrays take on disk."""
    total = 0
    for shape, dtype in spec.array_shapes().values():
        total += int(np.prod(shape)) * np.dtype(dtype).itemsize
    return total


def teach_hidden(
    runs: Sequence[TrainedRun],
    identities: tuple[str, ...],
    key: str,
    examples: list[Example],
    out: Path,
    layers: tuple[int, ...],
    tokens: str,
    dtype: str,
    shard_rows: int,
    batch_size: int,
    device: torch.device,
    progress: bool,
    kind: str = "hidden",
) -> LogitStore:
    """Write (or finish) the hidden (or attention) store of task ``key``'s training rows."""
    spec = hidden_spec(runs, identities, key, examples, layers, tokens, dtype, shard_rows, kind)
    folder = out / key / spec.split
    size = store_bytes(spec)
    where = "[CLS]" if spec.tokens == "cls" else "all tokens"
    what = "attention of the [CLS] query" if kind == "attention" else f"hidden states ({where})"
    log.info(
        "%s: the teachers' mean %s of %d rows at layers %s, %.1f MB",
        folder, what, spec.rows, list(layers), size / 1e6,
    )  # fmt: skip
    with lock_folder(folder, f"{kind} store"):
        try:
            writer = StoreWriter(folder, spec)
            bar = tqdm(
                total=len(writer.pending), desc=f"{key}/{kind}", unit="shard", disable=not progress
            )
            for shard in writer.pending:
                rows = spec.shard_range(shard)
                chunk = examples[rows.start : rows.stop]
                states = sum(
                    _states(run, key, chunk, spec, batch_size, device) for run in runs
                ) / len(runs)
                labels = np.array(
                    [np.nan if ex.label is None else float(ex.label) for ex in chunk],
                    dtype=np.float32,
                )
                writer.write_shard(shard, {"states": states, "labels": labels})
                bar.update(1)
            bar.close()
            return writer.finish()
        except OSError as exc:
            raise KdnluError(
                f"cannot write {kind} store {folder} ({exc.strerror or exc}); the shards "
                "written so far are kept. Free disk space, then run the same kdnlu-teach "
                "command again to finish it"
            ) from None


@torch.no_grad()
def _states(
    run: TrainedRun,
    key: str,
    examples: list[Example],
    spec: StoreSpec,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """One teacher's states of the rows: ``[rows, layers, H]`` or ``[rows, layers, T, H]``;
    of an attention store, ``[rows, layers, heads, T]``."""
    assert spec.layers is not None
    encoder = run.model.encoder
    encoder.eval()
    options = run.recipe.tasks[key].options
    split = encode_examples(key, encoder.tokenizer, examples, options.max_length)
    shape = spec.shard_shapes(None)["states"][0][1:]
    out = np.zeros((len(examples), *shape), np.float32)
    attention = spec.kind == "attention"
    for batch in iterate_batches(split, batch_size, label_dtype(run.tasks[key])):
        batch = batch.to(device)
        hidden, maps = encoder.layer_outputs(
            batch.input_ids, batch.attention_mask, batch.token_type_ids, attention
        )
        if attention:  # the [CLS] query's row of each head: [B, P, heads, T]
            chosen = torch.stack([maps[n - 1][:, :, 0] for n in spec.layers], 1).float()
            out[batch.indices.numpy(), :, :, : chosen.shape[-1]] = chosen.cpu().numpy()
            continue
        chosen = torch.stack([hidden[n] for n in spec.layers], 1).float()  # [B, P, T, H]
        rows = batch.indices.numpy()
        if spec.tokens == "cls":
            out[rows] = chosen[:, :, 0].cpu().numpy()
        else:
            mask = batch.attention_mask[:, None, :, None].to(chosen.dtype)
            width = chosen.shape[2]
            out[rows, :, :width] = (chosen * mask).cpu().numpy()
    return out
