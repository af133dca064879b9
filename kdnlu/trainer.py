"""The training loop, readable top to bottom: build, train with one task per batch, evaluate."""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from kdnlu.batches import TaskBatches
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
from kdnlu.checkpoint import save_checkpoint
from kdnlu.data import collate
from kdnlu.distributed import World, join_world, leave_world
from kdnlu.errors import KdnluError, TrainingError, TrainingInterrupted
from kdnlu.evaluation import eval_name, evaluate, is_improvement, label_dtype, select_score
from kdnlu.lock import lock_folder
from kdnlu.nonfinite import check_skipped, check_weights
from kdnlu.optim import linear_schedule, make_optimizer
from kdnlu.recipe import Recipe
from kdnlu.registry import SAMPLERS
from kdnlu.resume import (
    LoopPosition,
    capture,
    check_inputs,
    check_queues,
    load_training_state,
    restore_generators,
    restore_run,
    run_inputs,
)
from kdnlu.run_control import (
    amp_dtype_for,
    deterministic_algorithms,
    interrupt_request,
    pick_device,
    set_seed,
)
from kdnlu.rundir import append_jsonl, atomic_write_text, create_run_dir, environment_record

log = logging.getLogger("kdnlu.train")


@dataclass
class RunResult:
    """What a finished run reports: where it is, its dev metrics, and how long it took."""

    run_dir: Path
    metrics: dict[str, dict[str, float]]
    main_metrics: dict[str, str]
    steps: int
    epochs: int
    seconds: float
    train_loss: list[float] = field(default_factory=list)
    best_score: float | None = None
    best_step: int | None = None
    best_metric: str = "average"


def train(
    recipe: Recipe,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    resume_from: str | Path | None = None,
) -> RunResult:
    """Train ``recipe`` end to end; write everything to a new run directory.

    ``resume_from`` (a run directory of this recipe) goes on from its ``checkpoints/last`` as
    if the run had never stopped.
    """
    world, device_choice = join_world(recipe.train.device)  # under torchrun: one rank of many
    try:
        with deterministic_algorithms(recipe.train.deterministic), ExitStack() as held:
            return _train(recipe, progress, callbacks, resume_from, world, device_choice, held)
    finally:
        leave_world(world)


class _NoWriter:
    """Stands in for the TensorBoard writer on ranks other than 0."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _train(
    recipe: Recipe,
    progress: bool,
    callbacks: Sequence[Callback],
    resume_from: str | Path | None,
    world: World,
    device_choice: str,
    held: ExitStack,
) -> RunResult:
    """The run itself; ``held`` keeps the run dir's writer lock until the run ends."""
    started = time.time()
    cfg = recipe.train
    set_seed(cfg.seed)
    device = pick_device(device_choice)
    amp_dtype = amp_dtype_for(device, cfg.amp)
    tasks = recipe.build_tasks()
    check_best_metric(cfg.best_metric, tasks)

    model = build_model(recipe, tasks)
    tokenizer = model.encoder.tokenizer
    train_splits = {key: encode_split(recipe, tasks, tokenizer, "train", key) for key in tasks}
    eval_splits = encode_eval_splits(recipe, tasks, tokenizer)
    model.to(device).train()
    net: torch.nn.Module = model
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        torch.manual_seed(cfg.seed + world.rank)  # ranks drop out different units
        ids = [device.index] if device.type == "cuda" else None
        # a step uses the encoder and one task's head: the other heads get no gradient
        net = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
    losses = build_losses(recipe)
    decoders = loss_decoders(losses)
    sampler = SAMPLERS.get(recipe.sampler.name).build(recipe.sampler.config)
    # separate streams: the task order must not change which rows form a task's batches
    sampler_rng, batch_rng = random.Random(cfg.seed), random.Random(cfg.seed + 1)
    batches = TaskBatches(
        train_splits,
        cfg.batch_size,
        cfg.length_bucketing,
        batch_rng,
        groups=training_units(recipe, train_splits, losses),
    )
    if recipe.distill is not None:
        from kdnlu.distill import Distiller, open_stores

        stores = open_stores(recipe, tasks, train_splits, losses)
        callbacks = [Distiller(recipe, stores), *callbacks]

    try:
        batches_per_epoch = len(sampler.epoch(batches.counts(), random.Random(0)))
    except ValueError as exc:
        raise KdnluError(f"sampler '{recipe.sampler.name}': {exc}") from None
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / cfg.grad_accumulation))
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay)
    scheduler = linear_schedule(optimizer, total_steps, cfg.warmup)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    resumed = resume_from is not None
    inputs = run_inputs(recipe.to_yaml(), train_splits, eval_splits)
    if resume_from is None:
        # everything that reads data or could reject the recipe has run: only now make the run dir
        if world.is_main:
            run_dir = create_run_dir(recipe.output_dir, recipe.name)
            held.enter_context(lock_folder(run_dir, "run directory"))
            atomic_write_text(run_dir / "recipe.yaml", recipe.to_yaml())
            environment = json.dumps(environment_record(), indent=2) + "\n"
            atomic_write_text(run_dir / "env.json", environment)
        run_dir = Path(world.broadcast(str(run_dir) if world.is_main else None))
        point = LoopPosition(epoch=1, position=0, order=None)
        state = TrainState(run_dir=run_dir, total_steps=total_steps)
    else:
        run_dir = Path(resume_from)
        if world.is_main:
            held.enter_context(lock_folder(run_dir, "run directory"))
        saved = load_training_state(run_dir / "checkpoints" / "last")
        check_inputs(saved, inputs, run_dir)
        check_queues(saved, {k: len(s) for k, s in train_splits.items()}, run_dir)
        state = TrainState(run_dir=run_dir, total_steps=total_steps)
        point = restore_run(saved, run_dir, model, optimizer, scheduler, scaler, state)
        restore_generators(saved, sampler_rng, batch_rng)
        batches.queues = {k: [list(b) for b in v] for k, v in saved["queues"].items()}
        started -= saved["train_state"]["seconds"]
    log.info("run dir: %s", run_dir)

    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tb")) if world.is_main else _NoWriter()
    trained = {
        k: batches.groups[k].size if k in batches.groups else len(s)
        for k, s in train_splits.items()
    }
    sizes = ", ".join(f"{k} {n} rows" for k, n in trained.items())
    log.info(
        "training %d steps (%d epochs) on %s; device %s", total_steps, cfg.epochs, sizes, device
    )
    if resumed:
        log.info("resuming at step %d (epoch %d)", state.step, point.epoch)
    for cb in callbacks:
        cb.on_train_start(state, model)

    epoch_losses: list[float] = point.epoch_losses
    metrics: dict[str, dict[str, float]] = {}
    evaluated_at = point.evaluated_at
    window: dict[str, list[float]] = defaultdict(list, point.window)  # since the last evaluation
    logged: dict[str, list[float]] = defaultdict(list, point.logged)  # since the last scalar write
    task_losses: dict[str, list[float]] = defaultdict(list, point.task_losses)

    def checkpoint_state() -> dict[str, Any]:
        return {
            "epoch": state.epoch,
            "step": state.step,
            "dev": metrics,
            "score": select_score(metrics, cfg.best_metric) if metrics else None,
            "best_score": state.best_score,
            "best_step": state.best_step,
            "recipe": recipe.name,
        }

    def save_last(resume_at: tuple[int, int, list[str] | None]) -> None:
        """checkpoints/last: the weights and everything to go on from ``resume_at``."""
        epoch, position, order = resume_at
        loop = LoopPosition(
            epoch=epoch,
            position=position,
            order=order,
            task_losses=dict(task_losses) if order is not None else {},
            window=dict(window),
            logged=dict(logged),
            epoch_losses=list(epoch_losses),
            evaluated_at=evaluated_at,
        )
        training = capture(
            step=state.step,
            loop=loop,
            train_state={
                "epoch": state.epoch,
                "best_score": state.best_score,
                "best_step": state.best_step,
                "evaluations_without_improvement": state.evaluations_without_improvement,
                "should_stop": state.should_stop,
                "skipped_batches": state.skipped_batches,
                "scalars": dict(state.scalars),
                "window_scalars": dict(state.window_scalars),
                "seconds": time.time() - started,
            },
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            sampler_rng=sampler_rng,
            batch_rng=batch_rng,
            queues=batches.queues,
            inputs=inputs,
        )
        if world.is_main:
            save_checkpoint(run_dir / "checkpoints" / "last", model, checkpoint_state(), training)

    def run_evaluation(
        epoch_loss: float | None, resume_at: tuple[int, int, list[str] | None]
    ) -> None:
        """Evaluate (when any task has an evaluation split), log, and save checkpoints; with
        several ranks, rank 0 does it while the others wait for its early-stop decision."""
        nonlocal metrics, evaluated_at, window
        evaluated_at = state.step
        if not world.is_main:
            window = defaultdict(list)
            state.should_stop = world.broadcast(None)
            return
        metrics = evaluate(
            model, tasks, eval_splits, cfg.eval_batch_size, device, amp_dtype, decoders
        )
        score = select_score(metrics, cfg.best_metric) if metrics else None
        improved = score is not None and is_improvement(score, state.best_score, cfg.best_metric)
        if improved:
            state.best_score, state.best_step = score, state.step
            state.evaluations_without_improvement = 0
        elif score is not None:
            state.evaluations_without_improvement += 1
        window_scalars = dict(state.window_scalars)
        state.window_scalars.clear()
        record = {
            "epoch": state.epoch,
            "step": state.step,
            "train_loss": epoch_loss,
            "train_loss_per_task": {k: float(np.mean(v)) for k, v in window.items() if v},
            **(
                {"train_scalars": {k: float(np.mean(v)) for k, v in window_scalars.items()}}
                if window_scalars
                else {}
            ),
            "dev": metrics,
            "score": score,
            "best_score": state.best_score,
            **({"skipped_batches": state.skipped_batches} if state.skipped_batches else {}),
            "seconds": round(time.time() - started, 2),
        }
        window = defaultdict(list)
        append_jsonl(run_dir / "metrics.jsonl", record)
        for name, values in metrics.items():
            for metric, value in values.items():
                writer.add_scalar(f"dev/{name}/{metric}", value, state.step)
        if score is not None:
            writer.add_scalar(f"dev/{cfg.best_metric}", score, state.step)
        shown = "  ".join(
            f"{n} {tasks[eval_splits[n].task].main_metric} "
            f"{v[tasks[eval_splits[n].task].main_metric]:.2f}"
            for n, v in metrics.items()
        )
        if score is not None:
            log.info(
                "step %d (epoch %d): dev %s | %s %.2f%s",
                state.step,
                state.epoch,
                shown,
                cfg.best_metric,
                score,
                " (best)" if improved else "",
            )
        if cfg.patience is not None and state.evaluations_without_improvement >= cfg.patience:
            log.info(
                "early stop: %s did not improve for %d evaluations", cfg.best_metric, cfg.patience
            )
            state.should_stop = True
        # best before last: a crash between the two leaves a last that records an earlier best
        # (which exists) and a resume that redoes this evaluation, never a recorded best missing
        if improved:
            save_checkpoint(run_dir / "checkpoints" / "best", model, checkpoint_state())
        save_last(resume_at)
        for cb in callbacks:
            cb.on_evaluate(state, metrics)
        world.broadcast(state.should_stop)

    bar = tqdm(
        total=total_steps,
        initial=state.step,
        desc=recipe.name,
        unit="step",
        disable=not progress or not world.is_main,
        dynamic_ncols=True,
    )
    with interrupt_request() as interrupted:
        for epoch in range(point.epoch, cfg.epochs + 1):
            if state.step >= total_steps or state.should_stop:
                break
            state.epoch = epoch
            if epoch == point.epoch and point.order is not None:  # resuming inside this epoch
                order, first = point.order, point.position
            else:
                order, first = sampler.epoch(batches.counts(), sampler_rng), 0
                task_losses = defaultdict(list)
            optimizer.zero_grad(set_to_none=True)
            for position in range(first, len(order)):
                if state.step >= total_steps or state.should_stop:
                    break
                key = order[position]
                unit = batches.groups[key].shape[1] if key in batches.groups else 1
                rows, weight = world.share(batches.next(key), unit)
                batch = collate(train_splits[key], rows, label_dtype(tasks[key])).to(device)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = net(batch)
                loss = losses[key](logits.float(), batch.labels)
                for cb in callbacks:
                    loss = cb.on_loss(state, batch, logits, loss)
                value = world.mean(loss.item() * weight, device)  # the whole batch's loss
                # a group's losses are averaged; the last group of an epoch may be shorter
                group_start = position - position % cfg.grad_accumulation
                group_size = min(cfg.grad_accumulation, len(order) - group_start)
                if math.isfinite(value):
                    scaler.scale(loss * (weight / group_size)).backward()
                    task_losses[key].append(value)
                    window[key].append(value)
                    logged[key].append(value)
                elif cfg.on_nonfinite_loss == "error":
                    raise TrainingError(
                        f"the {key} loss is {value} at step {state.step + 1} (epoch {epoch}); "
                        "lower train.lr, set train.grad_clip, or check that task's data "
                        "(train.on_nonfinite_loss: skip leaves such batches out)"
                    )
                else:  # the batch adds no gradient; a step whose batches all failed changes nothing
                    state.skipped_batches += 1
                    check_skipped(state.skipped_batches, total_steps * cfg.grad_accumulation, cfg)
                    log.warning(
                        "skipped a %s batch at step %d (epoch %d): its loss is %s (%d skipped)",
                        key,
                        state.step + 1,
                        epoch,
                        value,
                        state.skipped_batches,
                    )
                if (position + 1) % cfg.grad_accumulation and position + 1 < len(order):
                    continue
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state.step += 1
                check_weights(model, state.step, epoch, key)
                bar.set_postfix(task=key, loss=f"{value:.4f}", refresh=False)
                bar.update(1)
                for cb in callbacks:
                    cb.on_step_end(state, key, value)
                if state.step % cfg.log_every == 0:
                    for task_key, values in logged.items():
                        if values:
                            writer.add_scalar(f"train/loss/{task_key}", np.mean(values), state.step)
                    logged = defaultdict(list)
                    writer.add_scalar("train/lr", scheduler.get_last_lr()[0], state.step)
                    for name, values in state.scalars.items():
                        writer.add_scalar(f"train/{name}", np.mean(values), state.step)
                    state.scalars.clear()
                resume_at = (epoch, position + 1, order)
                stop = interrupted()
                if world.distributed:  # every rank stops after the same step
                    stop = world.mean(float(stop), device) > 0
                if cfg.eval_every is not None and state.step % cfg.eval_every == 0:
                    run_evaluation(None, resume_at)
                elif stop or (
                    cfg.checkpoint_every is not None and state.step % cfg.checkpoint_every == 0
                ):
                    save_last(resume_at)
                if stop:
                    bar.close()
                    writer.close()
                    raise TrainingInterrupted(run_dir, state.step)
            mean_loss = float(np.mean([v for vs in task_losses.values() for v in vs]))
            epoch_losses.append(mean_loss)
            writer.add_scalar("train/epoch_loss", mean_loss, state.step)
            log.info("epoch %d: train loss %.4f", epoch, mean_loss)
            if cfg.eval_each_epoch and evaluated_at != state.step:
                run_evaluation(mean_loss, (epoch + 1, 0, None))
    if evaluated_at != state.step:  # steps after the last evaluation are never left unsaved
        run_evaluation(None, (cfg.epochs + 1, 0, None))
    bar.close()
    writer.close()
    for cb in callbacks:
        cb.on_train_end(state)
    return RunResult(
        run_dir=run_dir,
        metrics=metrics,
        main_metrics={
            eval_name(k, s, t): t.main_metric for k, t in tasks.items() for s in t.eval_splits
        },
        steps=state.step,
        epochs=len(epoch_losses),
        seconds=time.time() - started,
        train_loss=epoch_losses,
        best_score=state.best_score,
        best_step=state.best_step,
        best_metric=cfg.best_metric,
    )
