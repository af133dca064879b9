"""The training loop, readable top to bottom: build, train with one task per batch, evaluate."""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from kdnlu.checkpoint import save_checkpoint
from kdnlu.data import EncodedSplit, batch_indices, collate, encode_examples, iterate_batches
from kdnlu.metrics import compute_metrics
from kdnlu.model import MultiTaskModel
from kdnlu.recipe import Recipe
from kdnlu.registry import ENCODERS, HEADS, LOSSES, SAMPLERS
from kdnlu.rundir import append_jsonl, atomic_write_text, create_run_dir, environment_record
from kdnlu.task import Task

log = logging.getLogger("kdnlu.train")


@dataclass
class RunResult:
    """What a finished run reports: where it is, its last dev metrics, and how long it took."""

    run_dir: Path
    metrics: dict[str, dict[str, float]]
    main_metrics: dict[str, str]
    steps: int
    epochs: int
    seconds: float
    train_loss: list[float] = field(default_factory=list)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def label_dtype(task: Task) -> torch.dtype:
    return torch.float32 if task.label_names is None else torch.long


def build_model(recipe: Recipe, tasks: dict[str, Task]) -> MultiTaskModel:
    """The shared encoder and one head per task, from the registries."""
    encoder = ENCODERS.get(recipe.encoder.name).build(recipe.encoder.config)
    heads = {
        key: HEADS.get(spec.head.name).build(
            spec.head.config, hidden_size=encoder.hidden_size, num_outputs=tasks[key].num_outputs
        )
        for key, spec in recipe.tasks.items()
    }
    return MultiTaskModel(encoder, heads)


def encode_split(
    recipe: Recipe, tasks: dict[str, Task], tokenizer: Any, split: str
) -> dict[str, EncodedSplit]:
    out = {}
    for key, spec in recipe.tasks.items():
        limit = spec.options.train_rows if split == "train" else spec.options.eval_rows
        examples = tasks[key].read(split, limit)
        out[key] = encode_examples(key, tokenizer, examples, spec.options.max_length)
    return out


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """AdamW with no weight decay on biases and normalisation weights."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": recipe.train.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=recipe.train.lr)


def linear_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first ``warmup`` fraction of steps, then linear decay to 0."""
    warmup_steps = int(warmup * total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@torch.no_grad()
def evaluate(
    model: MultiTaskModel,
    tasks: dict[str, Task],
    splits: dict[str, EncodedSplit],
    batch_size: int,
    device: torch.device,
) -> dict[str, dict[str, float]]:
    """Every task's metrics on its evaluation split."""
    model.eval()
    results = {}
    for key, split in splits.items():
        task = tasks[key]
        outputs = []
        for batch in iterate_batches(split, batch_size, label_dtype(task)):
            outputs.append(model(batch.to(device)).float().cpu())
        logits = torch.cat(outputs)
        pred = logits.squeeze(-1).numpy() if task.label_names is None else logits.argmax(-1).numpy()
        results[key] = compute_metrics(task.metrics, pred, split.labels)
    model.train()
    return results


def train(recipe: Recipe, progress: bool = True) -> RunResult:
    """Train ``recipe`` end to end; write everything to a new run directory."""
    started = time.time()
    cfg = recipe.train
    set_seed(cfg.seed)
    device = pick_device(cfg.device)

    run_dir = create_run_dir(recipe.output_dir, recipe.name)
    atomic_write_text(run_dir / "recipe.yaml", recipe.to_yaml())
    atomic_write_text(run_dir / "env.json", json.dumps(environment_record(), indent=2) + "\n")
    log.info("run dir: %s", run_dir)

    tasks = recipe.build_tasks()
    model = build_model(recipe, tasks)
    tokenizer = model.encoder.tokenizer
    train_splits = encode_split(recipe, tasks, tokenizer, "train")
    dev_splits = encode_split(recipe, tasks, tokenizer, "dev")
    model.to(device).train()
    losses = {
        key: LOSSES.get(spec.loss.name).build(spec.loss.config)
        for key, spec in recipe.tasks.items()
    }
    sampler = SAMPLERS.get(recipe.sampler.name).build(recipe.sampler.config)
    rng = random.Random(cfg.seed)

    batches_per_epoch = sum(math.ceil(len(s) / cfg.batch_size) for s in train_splits.values())
    total_steps = cfg.epochs * batches_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer = make_optimizer(model, recipe)
    scheduler = linear_schedule(optimizer, total_steps, cfg.warmup)

    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tb"))
    sizes = ", ".join(f"{k} {len(s)}" for k, s in train_splits.items())
    log.info(
        "training %d steps (%d epochs) on %s; device %s", total_steps, cfg.epochs, sizes, device
    )

    step, epoch_losses = 0, []
    metrics: dict[str, dict[str, float]] = {}
    bar = tqdm(
        total=total_steps, desc=recipe.name, unit="step", disable=not progress, dynamic_ncols=True
    )
    for epoch in range(1, cfg.epochs + 1):
        if step >= total_steps:
            break
        queues = {
            key: batch_indices(len(s), cfg.batch_size, shuffle=True, rng=rng)
            for key, s in train_splits.items()
        }
        order = sampler.epoch({k: len(q) for k, q in queues.items()}, rng)
        task_losses: dict[str, list[float]] = defaultdict(list)
        for key in order:
            if step >= total_steps:
                break
            batch = collate(train_splits[key], queues[key].pop(), label_dtype(tasks[key]))
            batch = batch.to(device)
            loss = losses[key](model(batch), batch.labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step + 1} (task {key})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            task_losses[key].append(loss.item())
            bar.update(1)
            bar.set_postfix(task=key, loss=f"{loss.item():.4f}")
            if step % cfg.log_every == 0:
                writer.add_scalar(f"train/loss/{key}", loss.item(), step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
        mean_loss = float(np.mean([v for vs in task_losses.values() for v in vs]))
        epoch_losses.append(mean_loss)
        metrics = evaluate(model, tasks, dev_splits, cfg.eval_batch_size, device)
        record = {
            "epoch": epoch,
            "step": step,
            "train_loss": mean_loss,
            "train_loss_per_task": {k: float(np.mean(v)) for k, v in task_losses.items()},
            "dev": metrics,
            "seconds": round(time.time() - started, 2),
        }
        append_jsonl(run_dir / "metrics.jsonl", record)
        writer.add_scalar("train/epoch_loss", mean_loss, step)
        for key, values in metrics.items():
            for name, value in values.items():
                writer.add_scalar(f"dev/{key}/{name}", value, step)
        summary = "  ".join(
            f"{k} {tasks[k].main_metric} {v[tasks[k].main_metric]:.2f}" for k, v in metrics.items()
        )
        log.info("epoch %d: train loss %.4f | dev %s", epoch, mean_loss, summary)
        save_checkpoint(
            run_dir / "checkpoints" / "last",
            model,
            {"epoch": epoch, "step": step, "dev": metrics, "recipe": recipe.name},
        )
    bar.close()
    writer.close()
    return RunResult(
        run_dir=run_dir,
        metrics=metrics,
        main_metrics={k: t.main_metric for k, t in tasks.items()},
        steps=step,
        epochs=len(epoch_losses),
        seconds=time.time() - started,
        train_loss=epoch_losses,
    )
