"""kdnlu's own parts of a training run, as callbacks: the progress bar, the reporter (metrics.jsonl,
TensorBoard, the log), early stopping and the checkpointer."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from kdnlu.callbacks import Callback, TrainState
from kdnlu.checkpoint import save_checkpoint
from kdnlu.evaluation import select_score
from kdnlu.resume import capture
from kdnlu.rundir import append_jsonl
from kdnlu.train_setup import RunParts

log = logging.getLogger("kdnlu.train")


def _mean(values: dict[str, list[float]]) -> dict[str, float]:
    return {k: float(np.mean(v)) for k, v in values.items() if v}


class ProgressBar(Callback):
    """A tqdm bar over the run's steps, showing the last batch's task and loss."""

    def __init__(self, name: str, enabled: bool) -> None:
        self.name, self.enabled = name, enabled
        self.bar: Any = None

    def on_train_start(self, state: TrainState, model: torch.nn.Module) -> None:
        self.bar = tqdm(
            total=state.total_steps,
            initial=state.step,
            desc=self.name,
            unit="step",
            disable=not self.enabled,
            dynamic_ncols=True,
        )

    def on_step_end(self, state: TrainState, task: str, loss: float) -> None:
        self.bar.set_postfix(task=task, loss=f"{loss:.4f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _NoWriter:
    """Stands in for the TensorBoard writer on ranks other than 0."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


class Reporter(Callback):
    """Training scalars to TensorBoard every ``train.log_every`` steps; each evaluation to
    metrics.jsonl, TensorBoard and the log."""

    def __init__(self, parts: RunParts) -> None:
        self.parts = parts
        self.writer: Any = _NoWriter()

    def on_train_start(self, state: TrainState, model: torch.nn.Module) -> None:
        if self.parts.world.is_main:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(state.run_dir / "tb"))

    def on_step_end(self, state: TrainState, task: str, loss: float) -> None:
        loop = state.loop
        if loop.step % self.parts.cfg.log_every:
            return
        for key, value in _mean(loop.logged).items():
            self.writer.add_scalar(f"train/loss/{key}", value, loop.step)
        loop.logged = {}
        lr = self.parts.resumable.scheduler.get_last_lr()[0]
        self.writer.add_scalar("train/lr", lr, loop.step)
        for name, value in _mean(loop.scalars).items():
            self.writer.add_scalar(f"train/{name}", value, loop.step)
        loop.scalars.clear()

    def on_epoch_end(self, state: TrainState) -> None:
        loss = state.loop.epoch_losses[-1]
        self.writer.add_scalar("train/epoch_loss", loss, state.step)
        log.info("epoch %d: train loss %.4f", state.epoch, loss)

    def on_evaluate(self, state: TrainState, results: dict[str, dict[str, float]]) -> None:
        loop, evaluation, cfg = state.loop, state.evaluation, self.parts.cfg
        assert evaluation is not None
        scalars = _mean(loop.window_scalars)
        loop.window_scalars.clear()
        record = {
            "epoch": loop.epoch,
            "step": loop.step,
            "train_loss": evaluation.epoch_loss,
            "train_loss_per_task": _mean(loop.window),
            **({"train_scalars": scalars} if scalars else {}),
            "dev": results,
            "score": evaluation.score,
            "best_score": loop.best_score,
            **({"skipped_batches": loop.skipped_batches} if loop.skipped_batches else {}),
            "seconds": round(time.time() - state.started, 2),
        }
        loop.window = {}
        append_jsonl(state.run_dir / "metrics.jsonl", record)
        for name, values in results.items():
            for metric, value in values.items():
                self.writer.add_scalar(f"dev/{name}/{metric}", value, loop.step)
        if evaluation.score is not None:
            self.writer.add_scalar(f"dev/{cfg.best_metric}", evaluation.score, loop.step)
            log.info(
                "step %d (epoch %d): dev %s | %s %.2f%s",
                loop.step,
                loop.epoch,
                self.shown(results),
                cfg.best_metric,
                evaluation.score,
                " (best)" if evaluation.improved else "",
            )

    def shown(self, results: dict[str, dict[str, float]]) -> str:
        """Each evaluation split's main metric, for the log line."""
        tasks, splits = self.parts.tasks, self.parts.eval_splits
        metric = {name: tasks[splits[name].task].main_metric for name in results}
        return "  ".join(f"{n} {metric[n]} {v[metric[n]]:.2f}" for n, v in results.items())

    def close(self) -> None:
        self.writer.close()


class EarlyStopping(Callback):
    """Stops the run when ``train.best_metric`` has not improved for ``train.patience``
    evaluations."""

    def __init__(self, patience: int | None, metric: str) -> None:
        self.patience, self.metric = patience, metric

    def on_evaluate(self, state: TrainState, results: dict[str, dict[str, float]]) -> None:
        if self.patience is not None and state.evaluations_without_improvement >= self.patience:
            log.info(
                "early stop: %s did not improve for %d evaluations", self.metric, self.patience
            )
            state.should_stop = True


class Checkpointer(Callback):
    """``checkpoints/best`` at each improving evaluation, then ``checkpoints/last`` (weights and
    everything a resume needs) at each evaluation and every ``train.checkpoint_every`` steps."""

    def __init__(self, parts: RunParts) -> None:
        self.parts = parts

    def on_step_end(self, state: TrainState, task: str, loss: float) -> None:
        every = self.parts.cfg.checkpoint_every  # an evaluation's own save covers its step
        if (
            every is not None
            and state.step % every == 0
            and not self.parts.evaluates_at(state.step)
        ):
            self.save_last(state)

    def on_evaluate(self, state: TrainState, results: dict[str, dict[str, float]]) -> None:
        # best before last: a crash between the two leaves a last that records an earlier best
        # (which exists) and a resume that redoes this evaluation, never a recorded best missing
        if state.evaluation is not None and state.evaluation.improved:
            self.save(state, "best", training=False)
        self.save_last(state)

    def save_last(self, state: TrainState) -> None:
        """checkpoints/last: the weights and everything to go on from this point."""
        self.save(state, "last", training=True)

    def save(self, state: TrainState, name: str, training: bool) -> None:
        if not self.parts.world.is_main:
            return
        loop, cfg = state.loop, self.parts.cfg
        summary = {
            "epoch": loop.epoch,
            "step": loop.step,
            "dev": loop.metrics,
            "score": select_score(loop.metrics, cfg.best_metric) if loop.metrics else None,
            "best_score": loop.best_score,
            "best_step": loop.best_step,
            "recipe": self.parts.recipe.name,
        }
        resume = None
        if training:
            loop.seconds = time.time() - state.started
            resume = capture(loop, self.parts.resumable)
        folder = state.run_dir / "checkpoints" / name
        save_checkpoint(folder, self.parts.model, summary, resume)
