"""Distillation into the multi-task student: teacher soft targets from logit stores, mixed into
each distilled task's loss through the trainer's ``on_loss`` hook.

For a distilled task with classes the loss of a batch is

    alpha * hard + (1 - alpha) * T^2 * soft_loss(student_logits / T, mean_t softmax(teacher_t / T))

and for a regression task ``alpha * hard + (1 - alpha) * mse(student_score, mean_t teacher_t)``.
A ranking or multiple-choice task (a group loss) stores one teacher score per candidate; its
soft loss is the same mix over each group's candidates: the student's softmax over a question's
candidate scores learns the teachers' mean softmax over them (scores as the loss makes them,
e.g. the ranking loss's gamma-scaled sigmoid).
``hard`` is the task's own loss on gold labels. Teacher rows are read from the store by the
batch's example indices, so they follow any shuffling, bucketing and task sampling.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from kdnlu.callbacks import Callback, TrainState
from kdnlu.data import Batch, EncodedSplit
from kdnlu.errors import KdnluError
from kdnlu.loss import Loss
from kdnlu.recipe import Recipe
from kdnlu.registry import LOSSES
from kdnlu.store import LogitStore, StoreError, fingerprint_examples
from kdnlu.task import Task

log = logging.getLogger("kdnlu.train")


class Distiller(Callback):
    """Replaces each distilled task's loss with the mix of hard and soft losses."""

    def __init__(
        self,
        recipe: Recipe,
        stores: dict[str, LogitStore],
        losses: Mapping[str, Loss] | None = None,
    ) -> None:
        """``losses``: the tasks' losses as built for training (built here when not given)."""
        from kdnlu.build import build_losses, loss_target

        assert recipe.distill is not None
        self.config = recipe.distill
        self.stores = stores
        self.regression = {key: store.spec.classes == 1 for key, store in stores.items()}
        self.soft_loss: Loss = LOSSES.get(self.config.soft_loss).build()
        self.teachers = [t - 1 for t in self.config.teachers] or None
        grouped = [k for k in stores if loss_target(recipe.tasks[k].loss.name) == "group"]
        if grouped and losses is None:
            losses = build_losses(recipe)
        self.group_losses = {k: losses[k] for k in grouped} if losses else {}

    def on_loss(
        self, state: TrainState, batch: Batch, logits: torch.Tensor, loss: torch.Tensor
    ) -> torch.Tensor:
        store = self.stores.get(batch.task)
        if store is None:
            return loss
        alpha, temperature = self.config.at(state.step / max(1, state.total_steps))
        rows = batch.indices.numpy()
        logits = logits.float()
        if batch.task in self.group_losses:
            teacher = torch.from_numpy(store.logits(rows, self.teachers)).to(logits.device)
            soft = self.group_soft_loss(batch.task, logits, teacher, temperature)
        elif self.regression[batch.task]:
            target = torch.from_numpy(store.mean_scores(rows, self.teachers)).to(logits.device)
            soft = F.mse_loss(logits.reshape(-1), target)
        else:
            teacher = torch.from_numpy(store.logits(rows, self.teachers)).to(logits.device)
            soft = self.class_soft_loss(logits, teacher, temperature)
        state.log_scalar(f"distill/{batch.task}/hard", float(loss.detach()))
        state.log_scalar(f"distill/{batch.task}/soft", float(soft.detach()))
        return alpha * loss + (1 - alpha) * soft

    def class_soft_loss(
        self, logits: torch.Tensor, teacher: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        """The soft loss of class logits against teachers' logits ``[B, teachers, C]``: the
        registered soft loss's own path from teacher logits where it has one (a fused kernel),
        else ``T^2 * soft_loss(logits / T, mean_t softmax(teacher_t / T))``."""
        direct = getattr(self.soft_loss, "from_teacher_logits", None)
        if direct is not None:
            return direct(logits, teacher, temperature, self.config.kernel)
        target = torch.softmax(teacher / temperature, -1).mean(1)
        return temperature**2 * self.soft_loss(logits / temperature, target)

    def group_soft_loss(
        self, key: str, logits: torch.Tensor, teacher: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        """The soft loss over each group's candidates: ``teacher`` is ``[B, teachers, 1]``."""
        loss = self.group_losses[key]
        size = int(loss.group_size or 1)
        scores = loss.scores or (lambda x: x)
        student = scores(logits.reshape(-1)).view(-1, size)
        by_teacher = scores(teacher[..., 0]).view(-1, size, teacher.shape[1])
        target = torch.softmax(by_teacher / temperature, 1).mean(2)
        return temperature**2 * self.soft_loss(student / temperature, target)

    def on_train_start(self, state: TrainState, model: torch.nn.Module) -> None:
        c = self.config
        schedule = ""
        if c.alpha_final is not None or c.temperature_final is not None:
            schedule = f" -> alpha {c.at(1.0)[0]:g}, T {c.at(1.0)[1]:g} by the last step"
        teachers = f"teachers {', '.join(map(str, c.teachers))} of " if c.teachers else ""
        log.info(
            "distilling %s from %s%s (alpha %g, T %g%s)",
            ", ".join(self.stores),
            teachers,
            c.store,
            c.alpha,
            c.temperature,
            schedule,
        )


def open_stores(
    recipe: Recipe, tasks: dict[str, Task], splits: dict[str, EncodedSplit], losses: dict[str, Loss]
) -> dict[str, LogitStore]:
    """The training-split store of every distilled task, checked against the student's data."""
    from kdnlu.build import head_outputs, loss_target

    config = recipe.distill
    assert config is not None
    root = Path(str(config.store))
    keys = list(config.tasks) or [k for k in tasks if (root / k / "train").is_dir()]
    if not keys:
        raise KdnluError(
            f"distill.store {root} has no store for any task of this recipe "
            f"({', '.join(tasks)}); kdnlu-teach writes <store>/<task>/train"
        )
    stores = {}
    for key in keys:
        task, spec = tasks[key], recipe.tasks[key]
        target = loss_target(spec.loss.name) or task.label_kind
        if target not in ("class", "score", "group"):
            raise KdnluError(
                f"distill.tasks: task {key} is trained with a {target}-level loss; "
                "only classification, regression, ranking and multiple-choice tasks can be "
                "distilled"
            )
        examples = task.read("train", on_bad_row=spec.options.on_bad_row)
        try:
            store = LogitStore.open(
                root / key / "train",
                fingerprint=fingerprint_examples(examples),
                rows=len(examples),
                classes=head_outputs(task, spec.loss.name),
            )
        except StoreError as exc:
            raise KdnluError(f"distill: task {key}: {exc}") from None
        if store.spec.kind != "dense":
            raise KdnluError(
                f"distill: task {key}: {store.folder} is a top-{store.spec.top_k} store; "
                "students learn from dense stores (kdnlu-teach without --top-k)"
            )
        if config.teachers and max(config.teachers) > len(store.spec.teachers):
            raise KdnluError(
                f"distill.teachers {list(config.teachers)}: the store of task {key} "
                f"({store.folder}) holds {len(store.spec.teachers)} teacher(s), numbered from 1"
            )
        assert len(splits[key]) <= len(store)
        stores[key] = store
    return stores
