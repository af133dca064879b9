"""``kdnlu-teach``: run teacher checkpoints over task data once, and store their outputs.

The store of task key ``K`` and split ``S`` is the folder ``OUT/K/S`` (see ``kdnlu.store``).
Every teacher must be a run directory of ``kdnlu-train`` that has the task; all teachers must
read exactly the same examples (checked by fingerprint) and give as many outputs.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from kdnlu.checkpoint import STATE, WEIGHTS
from kdnlu.data import encode_examples
from kdnlu.errors import KdnluError
from kdnlu.evaluation import eval_name, predict_outputs
from kdnlu.lock import lock_folder
from kdnlu.metrics import higher_is_better, task_score
from kdnlu.nonfinite import nonfinite_weights
from kdnlu.options import CheckpointChoice, DeviceChoice, option
from kdnlu.store import (
    LogitStore,
    StoreSpec,
    StoreWriter,
    file_sha256,
    fingerprint_examples,
    topk_of,
)
from kdnlu.task import Example
from kdnlu.trained import TrainedRun, load_trained

log = logging.getLogger("kdnlu.teach")


@dataclass(frozen=True)
class TeachOptions:
    """How teachers are run and stored (the options of ``kdnlu-teach``)."""

    splits: tuple[str, ...] = option(
        ("train", "dev"), "splits to store; dev means each task's evaluation splits"
    )
    dtype: Literal["float16", "float32"] = option("float16", "number type of the stored logits")
    top_k: int | None = option(None, "store the top k of the ensemble distribution instead")
    batch_size: int = option(64, "rows per forward pass")
    device: DeviceChoice = option("auto", "where the teachers run")
    checkpoint: CheckpointChoice = option("auto", "each teacher's checkpoint (auto: best if any)")
    shard_rows: int = option(65536, "rows per shard file of a store")
    keep_best: int | None = option(
        None,
        "per task, store only the K teachers with the best dev scores at their stored "
        "checkpoints (e.g. train 6, keep 3, as MT-DNN-KD did)",
        metavar="K",
    )
    hidden_layers: tuple[int, ...] | None = option(
        None,
        "also store the teachers' mean hidden states at these layers (0: the embeddings) of "
        "each task's training rows, in OUT/<task>/train-hidden, for hidden-state objective "
        "terms",
        metavar="N",
    )
    attention_layers: tuple[int, ...] | None = option(
        None,
        "also store the teachers' mean attention distributions of the [CLS] query at these "
        "layers (1: the first), per head, in OUT/<task>/train-attention, for attention terms",
        metavar="N",
    )
    hidden_tokens: Literal["cls", "all"] = option(
        "cls",
        "with --hidden-layers: the [CLS] position only (small), or every token position (rows "
        "x layers x max_length x width: check the size it prints first)",
    )


def teacher_identity(run: TrainedRun) -> str:
    """Run name, checkpoint and a digest of the weights: changes whenever the teacher does."""
    digest = file_sha256(run.checkpoint / WEIGHTS)[:16]
    return f"{run.run_dir.name}/{run.checkpoint.name}@{digest}"


def teacher_splits(run: TrainedRun, key: str, splits: Sequence[str]) -> list[str]:
    """The split names to store: ``dev`` stands for the task's evaluation splits."""
    task = run.tasks[key]
    names: list[str] = []
    for split in splits:
        for name in task.eval_splits if split == "dev" else (split,):
            if name not in names:
                names.append(name)
    return names


def check_teachers(runs: Sequence[TrainedRun], tasks: Sequence[str] | None) -> list[str]:
    """The task keys to teach (all that every teacher has, unless named); refuses tasks whose
    outputs cannot serve as soft targets (token labelling). A ranking or multiple-choice task
    stores one score per candidate row."""
    if tasks:
        for run in runs:
            missing = [k for k in tasks if k not in run.tasks]
            if missing:
                raise KdnluError(
                    f"teacher {run.run_dir} has no task {', '.join(missing)}; it has "
                    f"{', '.join(run.tasks)}"
                )
        keys = list(tasks)
    else:
        keys = [k for k in runs[0].tasks if all(k in r.tasks for r in runs)]
        if not keys:
            raise KdnluError("the teachers share no task")
    for run in runs:
        for key in keys:
            if run.tasks[key].level == "token":
                raise KdnluError(
                    f"teacher {run.run_dir}: task {key} labels tokens; its outputs are per token "
                    "and the logit store holds one row per example"
                )
    return keys


def check_finite_weights(run: TrainedRun) -> None:
    """A teacher whose weights hold NaN or infinite values is named before anything is written
    (its outputs would be refused shard by shard, and a rerun would fail the same way)."""
    broken = nonfinite_weights(run.model)
    if broken:
        raise KdnluError(
            f"teacher {run.run_dir} ({run.checkpoint}) has NaN or infinite weights in "
            f"{len(broken)} tensor(s), e.g. {broken[0]}; leave it out of the teachers, or "
            "retrain it"
        )


def teacher_dev_score(run: TrainedRun, key: str) -> float | None:
    """A teacher's dev score on one task at the checkpoint it is stored from: the task's score
    (``kdnlu.metrics.task_score``, over its evaluation splits), as that checkpoint recorded
    it."""
    try:
        dev = json.loads((run.checkpoint / STATE).read_text("utf-8")).get("dev") or {}
    except (OSError, ValueError):
        return None
    task = run.tasks[key]
    names = [eval_name(key, split, task) for split in task.eval_splits]
    if not names or any(name not in dev for name in names):
        return None
    return statistics.mean(task_score(dev[name])[0] for name in names)


def best_teachers(runs: Sequence[TrainedRun], key: str, keep: int) -> list[int]:
    """Indices of the ``keep`` teachers with the best dev scores on ``key`` (ties: the order
    given), in the order given (the paper's selection: train several, keep the best)."""
    if not 1 <= keep <= len(runs):
        raise KdnluError(f"--keep-best {keep}: give a number from 1 to {len(runs)} (the teachers)")
    scores = [teacher_dev_score(run, key) for run in runs]
    missing = [str(run.run_dir) for run, score in zip(runs, scores, strict=True) if score is None]
    if missing:
        raise KdnluError(
            f"--keep-best ranks teachers by their dev score on {key} at the checkpoint stored, "
            f"but {', '.join(missing)} recorded none there (trained without evaluation?)"
        )
    sign = -1.0 if higher_is_better(runs[0].tasks[key].metrics) else 1.0  # errors: lowest first
    ranked = sorted(range(len(runs)), key=lambda i: sign * scores[i])[:keep]  # sorted() is stable
    chosen = sorted(ranked)
    kept = ", ".join(f"{runs[i].run_dir.name} ({scores[i]:.2f})" for i in chosen)
    dropped = ", ".join(
        f"{runs[i].run_dir.name} ({scores[i]:.2f})" for i in range(len(runs)) if i not in chosen
    )
    log.info("%s: keeping the %d best teachers by dev score: %s; leaving out %s", key, keep, kept,
             dropped)  # fmt: skip
    return chosen


def _read(run: TrainedRun, key: str, split: str) -> list[Example]:
    return run.tasks[key].read(split, on_bad_row=run.recipe.tasks[key].options.on_bad_row)


def teach(
    teacher_dirs: Sequence[str | Path],
    out: str | Path,
    tasks: Sequence[str] | None = None,
    options: TeachOptions = TeachOptions(),
    progress: bool = True,
) -> list[LogitStore]:
    """Write (or finish) the store of every task and split; returns the finished stores."""
    from kdnlu.run_control import pick_device

    if not teacher_dirs:
        raise KdnluError("give at least one teacher run directory")
    runs = [load_trained(d, options.checkpoint) for d in teacher_dirs]
    for run in runs:
        check_finite_weights(run)
    keys = check_teachers(runs, tasks)
    device = pick_device(options.device)
    for run in runs:
        run.model.to(device)
    identities = tuple(teacher_identity(run) for run in runs)
    if len(set(identities)) != len(identities):
        raise KdnluError("the same teacher checkpoint is given twice: " + ", ".join(identities))
    stores = []
    for key in keys:
        chosen = range(len(runs))
        if options.keep_best is not None:
            chosen = best_teachers(runs, key, options.keep_best)
        task_runs = [runs[i] for i in chosen]
        task_identities = tuple(identities[i] for i in chosen)
        for split in teacher_splits(runs[0], key, options.splits):
            stores.append(
                _teach_split(
                    task_runs, task_identities, key, split, Path(out), options, device, progress
                )
            )
        layered = (("hidden", options.hidden_layers), ("attention", options.attention_layers))
        for kind, layers in layered:
            if not layers:
                continue
            from kdnlu.teach_hidden import teach_hidden

            stores.append(
                teach_hidden(
                    task_runs,
                    task_identities,
                    key,
                    _read(runs[0], key, "train"),
                    Path(out),
                    layers,
                    options.hidden_tokens,
                    options.dtype,
                    options.shard_rows,
                    options.batch_size,
                    device,
                    progress,
                    kind,
                )  # fmt: skip
            )
    return stores


def _teach_split(
    runs: Sequence[TrainedRun],
    identities: tuple[str, ...],
    key: str,
    split: str,
    out: Path,
    options: TeachOptions,
    device: torch.device,
    progress: bool,
) -> LogitStore:
    examples = _read(runs[0], key, split)
    fingerprint = fingerprint_examples(examples)
    for run in runs[1:]:
        if fingerprint_examples(_read(run, key, split)) != fingerprint:
            raise KdnluError(
                f"teachers {runs[0].run_dir} and {run.run_dir} read different {key} {split} "
                "examples (is their data_root the same?); a store needs one set of examples"
            )
    from kdnlu.build import head_outputs

    widths = {head_outputs(run.tasks[key], run.recipe.tasks[key].loss.name) for run in runs}
    if len(widths) != 1:
        raise KdnluError(f"the teachers' {key} heads give different numbers of outputs: {widths}")
    classes = widths.pop()
    spec = StoreSpec(
        task=key,
        split=split,
        rows=len(examples),
        classes=classes,
        teachers=identities,
        fingerprint=fingerprint,
        kind="topk" if options.top_k else "dense",
        dtype=options.dtype,
        top_k=options.top_k,
        shard_rows=options.shard_rows,
    )
    folder = out / key / split
    with lock_folder(folder, "logit store"):
        try:
            return _write_store(runs, examples, folder, spec, options, device, progress)
        except OSError as exc:  # a full disk, ulimit -f, a folder turned read-only
            raise KdnluError(
                f"cannot write logit store {folder} ({exc.strerror or exc}); the shards written "
                "so far are kept. Free disk space (or fix the folder's permissions), then run "
                "the same kdnlu-teach command again to finish it"
            ) from None


def _write_store(
    runs: Sequence[TrainedRun],
    examples: list[Example],
    folder: Path,
    spec: StoreSpec,
    options: TeachOptions,
    device: torch.device,
    progress: bool,
) -> LogitStore:
    """Write (or finish) one store; the caller holds its folder's lock."""
    key = spec.task
    writer = StoreWriter(folder, spec)
    pending = writer.pending
    if len(pending) < spec.shards:
        done = spec.shards - len(pending)
        log.info("%s: resuming, %d of %d shards already written", folder, done, spec.shards)
    bar = tqdm(total=len(pending), desc=f"{key}/{spec.split}", unit="shard", disable=not progress)
    for shard in pending:
        rows = spec.shard_range(shard)
        chunk = examples[rows.start : rows.stop]
        per_teacher = [_outputs(run, key, chunk, options, device) for run in runs]
        for run, teacher_outputs in zip(runs, per_teacher, strict=True):
            if not np.isfinite(teacher_outputs).all():
                raise KdnluError(
                    f"teacher {run.run_dir} gives NaN or infinite {key} outputs on rows "
                    f"{rows.start} to {rows.stop - 1} of {spec.split}; leave it out of the "
                    "teachers (and write to a new --out), or retrain it"
                )
        outputs = np.stack(per_teacher, axis=1)
        labels = np.array(
            [np.nan if ex.label is None else float(ex.label) for ex in chunk], dtype=np.float32
        )
        if spec.kind == "topk":
            z = outputs - outputs.max(-1, keepdims=True)
            probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
            arrays = {**topk_of(probs.mean(1), int(spec.top_k or 0)), "labels": labels}
        else:
            arrays = {"logits": outputs, "labels": labels}
        writer.write_shard(shard, arrays)
        bar.update(1)
    bar.close()
    store = writer.finish()
    log.info("%s: %d rows x %d teachers x %d outputs", folder, spec.rows, len(runs), spec.classes)
    return store


def _outputs(
    run: TrainedRun, key: str, examples: list[Example], options: TeachOptions, device: torch.device
) -> np.ndarray:
    encoded = encode_examples(
        key, run.model.encoder.tokenizer, examples, run.recipe.tasks[key].options.max_length
    )
    task = run.tasks[key]
    outputs = predict_outputs(run.model, key, task, encoded, options.batch_size, device)
    return outputs.reshape(len(examples), -1)
