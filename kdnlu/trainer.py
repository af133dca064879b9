"""The training loop, readable top to bottom: one task per batch, an optimizer step per group of
batches, evaluations that save checkpoints.

``train`` sets a run up (``kdnlu.train_setup``) and hands it to a ``Loop``: ``run`` goes through
the epochs, ``run_epoch`` through an epoch's task order, ``train_step`` does one optimizer step
(the forward and backward pass of each batch in it, then the update), and ``evaluate_and_save``
evaluates on the dev splits. What happens around them (the progress bar, metrics.jsonl and
TensorBoard, early stopping, checkpoints) are callbacks (``kdnlu.train_callbacks``); everything
the loop carries from step to step is one ``LoopState`` (``kdnlu.loop_state``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kdnlu.callbacks import Callback, Evaluation, TrainState
from kdnlu.data import collate
from kdnlu.distributed import join_world, leave_world
from kdnlu.errors import TrainingError, TrainingInterrupted
from kdnlu.evaluation import eval_name, evaluate, is_improvement, label_dtype, select_score
from kdnlu.nonfinite import check_skipped, check_weights
from kdnlu.recipe import Recipe
from kdnlu.run_control import deterministic_algorithms, interrupt_request
from kdnlu.train_callbacks import Checkpointer, EarlyStopping, ProgressBar, Reporter
from kdnlu.train_setup import RunParts, build_parts, open_run

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
            parts = build_parts(recipe, world, device_choice)
            state = open_run(parts, resume_from, held)  # held: the run dir's lock, to the end
            return Loop(parts, state, callbacks, progress).run()
    finally:
        leave_world(world)


class Loop:
    """One run's epochs, steps and evaluations over the parts ``build_parts`` made."""

    def __init__(
        self, parts: RunParts, state: TrainState, callbacks: Sequence[Callback], progress: bool
    ) -> None:
        self.parts, self.state, self.cfg = parts, state, parts.cfg
        cfg = parts.cfg
        self.bar = ProgressBar(parts.recipe.name, progress and parts.world.is_main)
        self.reporter = Reporter(parts)
        self.checkpointer = Checkpointer(parts)
        self.user = [*parts.callbacks, *callbacks]  # the distiller first, then the caller's
        # the caller's callbacks run before kdnlu's at a step's end, after its reporting and
        # before its checkpoints at an evaluation (a stop they ask for is saved with them)
        self.reporting = [self.bar, self.reporter, EarlyStopping(cfg.patience, cfg.best_metric)]
        self.interrupted: Callable[[], bool] = lambda: False

    def run(self) -> RunResult:
        """Train every remaining epoch, then evaluate the steps no evaluation has seen yet."""
        self.announce()
        for cb in [*self.user, *self.reporting, self.checkpointer]:
            cb.on_train_start(self.state, self.parts.model)
        try:
            with interrupt_request() as self.interrupted:
                loop = self.state.loop
                for epoch in range(loop.epoch + (loop.order is None), self.cfg.epochs + 1):
                    if self.finished():
                        break
                    self.run_epoch(epoch)
            if self.state.loop.evaluated_at != self.state.step:  # no step is left unsaved
                self.evaluate_and_save(None)
        finally:
            self.bar.close()
            self.reporter.close()
        for cb in self.user:
            cb.on_train_end(self.state)
        return self.result()

    def finished(self) -> bool:
        return self.state.step >= self.state.total_steps or self.state.should_stop

    def run_epoch(self, epoch: int) -> None:
        """The epoch's task order (drawn now, or the resumed one), a step per group of batches
        until the order or the run ends, then the epoch's mean loss and, with
        ``train.eval_each_epoch``, an evaluation."""
        loop = self.state.loop
        loop.epoch = epoch
        if loop.order is None:
            loop.order = self.parts.resumable.schedule.epoch(self.parts.batches.counts())
            loop.position, loop.task_losses = 0, {}
        self.parts.resumable.optimizer.zero_grad(set_to_none=True)
        while loop.position < len(loop.order) and not self.finished():
            self.train_step()
            self.after_step()
        mean_loss = float(np.mean([v for vs in loop.task_losses.values() for v in vs]))
        loop.epoch_losses.append(mean_loss)
        loop.order, loop.position, loop.task_losses = None, 0, {}  # go on with the next epoch
        for cb in [*self.user, *self.reporting, self.checkpointer]:
            cb.on_epoch_end(self.state)
        if self.cfg.eval_each_epoch and loop.evaluated_at != loop.step:
            self.evaluate_and_save(mean_loss)

    def train_step(self) -> None:
        """One optimizer step: forward and backward through each batch of the step's group
        (``train.grad_accumulation`` batches; the epoch's last group may be shorter), then
        clip, update and schedule."""
        loop, cfg, resumable = self.state.loop, self.cfg, self.parts.resumable
        assert loop.order is not None
        end = min(loop.position + cfg.grad_accumulation, len(loop.order))
        size = end - loop.position
        while loop.position < end:
            key = loop.order[loop.position]
            value = self.forward_backward(key, size)
            loop.position += 1
        if cfg.grad_clip > 0:
            resumable.scaler.unscale_(resumable.optimizer)
            torch.nn.utils.clip_grad_norm_(self.parts.model.parameters(), cfg.grad_clip)
        resumable.scaler.step(resumable.optimizer)
        resumable.scaler.update()
        resumable.scheduler.step()
        resumable.optimizer.zero_grad(set_to_none=True)
        loop.step += 1
        check_weights(self.parts.model, loop.step, loop.epoch, key)
        for cb in [*self.user, *self.reporting, self.checkpointer]:
            cb.on_step_end(self.state, key, value)

    def forward_backward(self, key: str, group_size: int) -> float:
        """The loss of one batch of task ``key``, its gradient added (scaled to the group's
        mean); a non-finite loss stops the run or, with ``skip``, adds nothing."""
        parts, loop = self.parts, self.state.loop
        unit = parts.batches.groups[key].shape[1] if key in parts.batches.groups else 1
        rows, weight = parts.world.share(parts.batches.next(key), unit)
        split = parts.train_splits[key]
        batch = collate(split, rows, label_dtype(parts.tasks[key])).to(parts.device)
        autocast = parts.amp_dtype is not None
        with torch.autocast(parts.device.type, dtype=parts.amp_dtype, enabled=autocast):
            logits = parts.net(batch)
        loss = parts.losses[key](logits.float(), batch.labels)
        for cb in self.user:
            loss = cb.on_loss(self.state, batch, logits, loss)
        value = parts.world.mean(loss.item() * weight, parts.device)  # the whole batch's loss
        if math.isfinite(value):
            parts.resumable.scaler.scale(loss * (weight / group_size)).backward()
            loop.add_loss(key, value)
        else:
            self.nonfinite(key, value)
        return value

    def nonfinite(self, key: str, value: float) -> None:
        loop, cfg = self.state.loop, self.cfg
        if cfg.on_nonfinite_loss == "error":
            raise TrainingError(
                f"the {key} loss is {value} at step {loop.step + 1} (epoch {loop.epoch}); "
                "lower train.lr, set train.grad_clip, or check that task's data "
                "(train.on_nonfinite_loss: skip leaves such batches out)"
            )
        # the batch adds no gradient; a step whose batches all failed changes nothing
        loop.skipped_batches += 1
        check_skipped(loop.skipped_batches, self.state.total_steps * cfg.grad_accumulation, cfg)
        log.warning(
            "skipped a %s batch at step %d (epoch %d): its loss is %s (%d skipped)",
            key,
            loop.step + 1,
            loop.epoch,
            value,
            loop.skipped_batches,
        )

    def after_step(self) -> None:
        """Evaluate every ``train.eval_every`` steps; on Ctrl-C save ``last`` and stop (every
        rank after the same step)."""
        stop = self.interrupted()
        world, step = self.parts.world, self.state.step
        if world.distributed:
            stop = world.mean(float(stop), self.parts.device) > 0
        evaluated = self.parts.evaluates_at(step)
        if evaluated:
            self.evaluate_and_save(None)
        if stop:
            if not evaluated:
                self.checkpointer.save_last(self.state)
            raise TrainingInterrupted(self.state.run_dir, step)

    def evaluate_and_save(self, epoch_loss: float | None) -> None:
        """Evaluate (when any task has an evaluation split); kdnlu's callbacks report it and
        decide on early stopping, the caller's see it, then the checkpoints are saved. With
        several ranks, rank 0 does it while the others wait for its stop decision."""
        loop, cfg, world = self.state.loop, self.cfg, self.parts.world
        loop.evaluated_at = loop.step
        if not world.is_main:
            loop.window = {}
            loop.should_stop = world.broadcast(None)
            return
        p = self.parts
        metrics = evaluate(
            p.model, p.tasks, p.eval_splits, cfg.eval_batch_size, p.device, p.amp_dtype, p.decoders
        )
        score = select_score(metrics, cfg.best_metric) if metrics else None
        improved = score is not None and is_improvement(score, loop.best_score, cfg.best_metric)
        if improved:
            loop.best_score, loop.best_step = score, loop.step
            loop.evaluations_without_improvement = 0
        elif score is not None:
            loop.evaluations_without_improvement += 1
        loop.metrics = metrics
        self.state.evaluation = Evaluation(score, improved, epoch_loss)
        for cb in [*self.reporting, *self.user, self.checkpointer]:
            cb.on_evaluate(self.state, metrics)
        world.broadcast(loop.should_stop)

    def announce(self) -> None:
        p, state = self.parts, self.state
        trained = {
            k: p.batches.groups[k].size if k in p.batches.groups else len(s)
            for k, s in p.train_splits.items()
        }
        sizes = ", ".join(f"{k} {n} rows" for k, n in trained.items())
        log.info("run dir: %s", state.run_dir)
        log.info(
            "training %d steps (%d epochs) on %s; device %s",
            state.total_steps,
            self.cfg.epochs,
            sizes,
            p.device,
        )
        if state.step:
            log.info("resuming at step %d (epoch %d)", state.step, state.epoch)

    def result(self) -> RunResult:
        loop, tasks = self.state.loop, self.parts.tasks
        return RunResult(
            run_dir=self.state.run_dir,
            metrics=loop.metrics,
            main_metrics={
                eval_name(k, s, t): t.main_metric for k, t in tasks.items() for s in t.eval_splits
            },
            steps=loop.step,
            epochs=len(loop.epoch_losses),
            seconds=time.time() - self.state.started,
            train_loss=loop.epoch_losses,
            best_score=loop.best_score,
            best_step=loop.best_step,
            best_metric=self.cfg.best_metric,
        )
