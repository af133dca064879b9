"""Setting a run up: the model, data, losses, batches and optimizer a recipe describes, and the
run directory (a new one, or the one a resume goes on in)."""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdnlu.batches import TaskBatches, TaskSchedule
from kdnlu.build import (
    build_losses,
    build_model,
    check_best_metric,
    encode_eval_splits,
    encode_split,
    loss_decoders,
    training_units,
)
from kdnlu.callbacks import Callback, TrainState
from kdnlu.data import EncodedSplit
from kdnlu.distributed import World
from kdnlu.errors import KdnluError
from kdnlu.lock import lock_folder
from kdnlu.loss import Loss
from kdnlu.model import MultiTaskModel
from kdnlu.optim import linear_schedule, make_optimizer
from kdnlu.recipe import Recipe
from kdnlu.registry import SAMPLERS
from kdnlu.resume import (
    Resumable,
    check_inputs,
    check_queues,
    load_training_state,
    restore_run,
    run_inputs,
)
from kdnlu.run_control import amp_dtype_for, pick_device, set_seed
from kdnlu.rundir import atomic_write_text, create_run_dir, environment_record
from kdnlu.schema import TrainConfig
from kdnlu.task import Task


@dataclass
class RunParts:
    """Everything a run is made of, built from its recipe."""

    recipe: Recipe
    world: World
    device: torch.device
    amp_dtype: torch.dtype | None
    tasks: dict[str, Task]
    model: MultiTaskModel
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    train_splits: dict[str, EncodedSplit]
    eval_splits: dict[str, EncodedSplit]
    losses: dict[str, Loss]
    decoders: dict[str, Any]
    batches: TaskBatches
    resumable: Resumable
    total_steps: int = 0
    callbacks: list[Callback] = field(default_factory=list)  # the objective, when any

    @property
    def cfg(self) -> TrainConfig:
        return self.recipe.train

    def evaluates_at(self, step: int) -> bool:
        """Whether ``train.eval_every`` evaluates after ``step``."""
        return self.cfg.eval_every is not None and step % self.cfg.eval_every == 0


def build_parts(recipe: Recipe, world: World, device_choice: str) -> RunParts:
    """Build the model, data, losses and batches, then the optimizer for the whole run."""
    cfg = recipe.train
    set_seed(cfg.seed)
    device = pick_device(device_choice)
    tasks = recipe.build_tasks()
    check_best_metric(cfg.best_metric, tasks)
    model = build_model(recipe, tasks)
    tokenizer = model.encoder.tokenizer
    train_splits = {key: encode_split(recipe, tasks, tokenizer, "train", key) for key in tasks}
    eval_splits = encode_eval_splits(recipe, tasks, tokenizer)
    losses = build_losses(recipe)
    from kdnlu.distill import build_objective

    # before the optimizer and the parallel wrapper: hidden terms add projections to the model
    objective = build_objective(recipe, tasks, train_splits, losses, model, world.distributed)
    callbacks: list[Callback] = [objective] if objective is not None else []
    model.to(device).train()
    net = _parallel(model, world, device, cfg.seed)
    sampler = SAMPLERS.get(recipe.sampler.name).build(recipe.sampler.config)
    # separate streams: the task order must not change which rows form a task's batches
    schedule = TaskSchedule(sampler, random.Random(cfg.seed))
    groups = training_units(recipe, train_splits, losses)
    batches = TaskBatches(
        train_splits, cfg.batch_size, cfg.length_bucketing, random.Random(cfg.seed + 1), groups
    )
    total_steps = _total_steps(recipe, schedule, batches)
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay)
    amp_dtype = amp_dtype_for(device, cfg.amp)
    resumable = Resumable(
        optimizer=optimizer,
        scheduler=linear_schedule(optimizer, total_steps, cfg.warmup),
        scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16),
        schedule=schedule,
        batches=batches,
        inputs=run_inputs(recipe.to_yaml(), train_splits, eval_splits),
    )
    return RunParts(
        recipe, world, device, amp_dtype, tasks, model, net, train_splits, eval_splits,
        losses, loss_decoders(losses), batches, resumable, total_steps, callbacks,
    )  # fmt: skip


def _parallel(model: torch.nn.Module, world: World, device: torch.device, seed: int) -> Any:
    """The model as the loop calls it: under torchrun, wrapped for data-parallel training."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(seed + world.rank)  # ranks drop out different units
    ids = [device.index] if device.type == "cuda" else None
    # a step uses the encoder and one task's head: the other heads get no gradient
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def _total_steps(recipe: Recipe, schedule: TaskSchedule, batches: TaskBatches) -> int:
    cfg = recipe.train
    try:
        batches_per_epoch = len(schedule.sampler.epoch(batches.counts(), random.Random(0)))
    except ValueError as exc:
        raise KdnluError(f"sampler '{recipe.sampler.name}': {exc}") from None
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / cfg.grad_accumulation))
    total = cfg.epochs * steps_per_epoch
    return total if cfg.max_steps is None else min(total, cfg.max_steps)


def open_run(parts: RunParts, resume_from: str | Path | None, held: ExitStack) -> TrainState:
    """The run's state: a new run directory, or the loop state of the one to resume; ``held``
    keeps the run directory's writer lock until the run ends."""
    recipe, world = parts.recipe, parts.world
    if resume_from is not None:
        return _resume(parts, Path(resume_from), held)
    # everything that reads data or could reject the recipe has run: only now make the run dir
    if world.is_main:
        run_dir = create_run_dir(recipe.output_dir, recipe.name)
        held.enter_context(lock_folder(run_dir, "run directory"))
        atomic_write_text(run_dir / "recipe.yaml", recipe.to_yaml())
        environment = json.dumps(environment_record(), indent=2) + "\n"
        atomic_write_text(run_dir / "env.json", environment)
    run_dir = Path(world.broadcast(str(run_dir) if world.is_main else None))
    return TrainState(run_dir=run_dir, total_steps=parts.total_steps, started=time.time())


def _resume(parts: RunParts, run_dir: Path, held: ExitStack) -> TrainState:
    if parts.world.is_main:
        held.enter_context(lock_folder(run_dir, "run directory"))
    saved = load_training_state(run_dir / "checkpoints" / "last")
    assert parts.resumable.inputs is not None
    check_inputs(saved, parts.resumable.inputs, run_dir)
    check_queues(saved, {k: len(s) for k, s in parts.train_splits.items()}, run_dir)
    state = TrainState(run_dir=run_dir, total_steps=parts.total_steps)
    restore_run(saved, run_dir, parts.model, parts.resumable, state)
    state.started = time.time() - state.loop.seconds
    return state
