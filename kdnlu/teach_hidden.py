"""The teachers' hidden states for intermediate-layer distillation (``kdnlu-teach
--hidden-layers``): the mean over the teachers of each chosen layer's states on a task's
training rows, at [CLS] or at every token position, written as a ``hidden`` store at
``OUT/<task>/train-hidden`` (memory-mapped, fp16 by default, resumable like a logit store).

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
from kdnlu.store import HIDDEN_SPLIT, LogitStore, StoreSpec, StoreWriter, fingerprint_examples
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
) -> StoreSpec:
    """What the hidden store of ``key`` holds; the teachers must agree on depth and width."""
    depths = {teacher_depth(run) for run in runs}
    widths = {int(run.model.encoder.hidden_size) for run in runs}
    if len(depths) != 1 or len(widths) != 1:
        raise KdnluError(
            f"--hidden-layers: the teachers' encoders differ in depth {sorted(depths)} or "
            f"width {sorted(widths)}; their states cannot be averaged"
        )
    depth = depths.pop()
    outside = [n for n in layers if not 0 <= n <= depth]
    if outside or len(set(layers)) != len(layers):
        raise KdnluError(
            f"--hidden-layers {list(layers)}: give distinct layers from 0 (the embeddings) to "
            f"{depth} (the teachers' last layer)"
        )
    lengths = {run.recipe.tasks[key].options.max_length for run in runs}
    if tokens == "all" and len(lengths) != 1:
        raise KdnluError(f"the teachers tokenise {key} to different max_lengths {sorted(lengths)}")
    return StoreSpec(
        task=key,
        split=HIDDEN_SPLIT,
        rows=len(examples),
        classes=widths.pop(),
        teachers=identities,
        fingerprint=fingerprint_examples(examples),
        kind="hidden",
        dtype=dtype,
        shard_rows=shard_rows,
        layers=tuple(layers),
        tokens=tokens,  # type: ignore[arg-type]
        length=lengths.pop() if tokens == "all" else None,
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
) -> LogitStore:
    """Write (or finish) the hidden store of task ``key``'s training rows."""
    spec = hidden_spec(runs, identities, key, examples, layers, tokens, dtype, shard_rows)
    folder = out / key / HIDDEN_SPLIT
    size = store_bytes(spec)
    log.info(
        "%s: the teachers' mean hidden states of %d rows at layers %s (%s), %.1f MB",
        folder, spec.rows, list(layers), "[CLS]" if tokens == "cls" else "all tokens", size / 1e6,
    )  # fmt: skip
    with lock_folder(folder, "hidden store"):
        try:
            writer = StoreWriter(folder, spec)
            bar = tqdm(
                total=len(writer.pending), desc=f"{key}/hidden", unit="shard", disable=not progress
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
                f"cannot write hidden store {folder} ({exc.strerror or exc}); the shards "
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
    """One teacher's states of the rows: ``[rows, layers, H]`` or ``[rows, layers, T, H]``."""
    assert spec.layers is not None
    encoder = run.model.encoder
    encoder.eval()
    options = run.recipe.tasks[key].options
    split = encode_examples(key, encoder.tokenizer, examples, options.max_length)
    positions = () if spec.length is None else (spec.length,)
    out = np.zeros((len(examples), len(spec.layers), *positions, spec.classes), np.float32)
    for batch in iterate_batches(split, batch_size, label_dtype(run.tasks[key])):
        batch = batch.to(device)
        hidden = encoder.hidden_states(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        chosen = torch.stack([hidden[n] for n in spec.layers], 1).float()  # [B, P, T, H]
        rows = batch.indices.numpy()
        if spec.tokens == "cls":
            out[rows] = chosen[:, :, 0].cpu().numpy()
        else:
            mask = batch.attention_mask[:, None, :, None].to(chosen.dtype)
            width = chosen.shape[2]
            out[rows, :, :width] = (chosen * mask).cpu().numpy()
    return out
