"""The recipe sections of distillation: ``distill:`` (where the teachers are, and its
shorthand) and the terms of a task's ``objective:``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kdnlu.config import FieldError, doc_field, path_field


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from teacher logit stores (docs/distillation.md).

    For each distilled task the loss is ``alpha * hard + (1 - alpha) * T^2 * soft``: ``hard`` is
    the task's own loss on gold labels, ``soft`` the ``soft_loss`` between the student's
    outputs / T and the mean over teachers of softmax(teacher outputs / T); a regression task
    uses the MSE to the teachers' mean score instead (without T).
    """

    store: str | None = path_field(
        None,
        help="the folder `kdnlu-teach --out` wrote; the store of task `K` is `<store>/K/train`",
        shown_default="required without `online`",
    )
    online: tuple[str, ...] = path_field(
        (),
        help="teacher run directories to run inside each training step instead of reading a "
        "store (online teachers: no disk, a teacher forward pass per step and teacher); soft, "
        "teacher-score, hidden-state and attention terms then read them",
        shown_default="none",
    )
    hidden_tokens: Literal["cls", "all"] = doc_field(
        "cls",
        "with `online`: the positions hidden-state and attention terms compare, [CLS] or every "
        "unpadded token "
        "(a store says it itself)",
    )
    tasks: tuple[str, ...] = doc_field(
        (), "task keys to distil", shown_default="every task with a store"
    )
    teachers: tuple[int, ...] = doc_field(
        (),
        "only these teachers of each store, numbered from 1 as `kdnlu store inspect` lists "
        "them (e.g. `[1]` for a one-teacher ablation)",
        shown_default="all",
    )
    alpha: float = doc_field(0.5, "weight of the hard-label loss (the paper: 0.5)")
    temperature: float = doc_field(1.0, "T (the paper: 1)")
    alpha_final: float | None = doc_field(
        None, "alpha moves linearly from `alpha` to this by the last step"
    )
    temperature_final: float | None = doc_field(
        None, "T moves linearly from `temperature` to this by the last step"
    )
    soft_loss: str = doc_field(
        "soft_cross_entropy", "a loss taking probability targets (`kdnlu list losses`)"
    )
    kernel: Literal["auto", "triton", "apex", "torch"] = doc_field(
        "auto",
        "backend of the fused soft cross-entropy (`kdnlu/kernels`): Triton for CUDA tensors, "
        "apex where installed and applicable, else the chunked torch version",
    )

    def __post_init__(self) -> None:
        if self.store is None and not self.online:
            raise FieldError(
                "store",
                "is required: the folder kdnlu-teach wrote (--out), or give `online` teachers",
            )
        if self.store is not None and self.online:
            raise FieldError("online", "teachers come from a store or online, not both")
        if any(t < 1 for t in self.teachers) or len(set(self.teachers)) != len(self.teachers):
            raise FieldError(
                "teachers",
                f"must be distinct teacher numbers from 1 (as kdnlu store inspect lists them), "
                f"got {list(self.teachers)}",
            )
        for key in ("alpha", "alpha_final"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value <= 1.0:
                raise FieldError(key, f"must be in [0, 1], got {value}")
        for key in ("temperature", "temperature_final"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise FieldError(key, f"must be > 0, got {value}")

    def at(self, progress: float) -> tuple[float, float]:
        """Alpha and temperature after ``progress`` (0 to 1) of the run."""
        alpha = self.alpha
        if self.alpha_final is not None:
            alpha += (self.alpha_final - self.alpha) * progress
        temperature = self.temperature
        if self.temperature_final is not None:
            temperature += (self.temperature_final - self.temperature) * progress
        return alpha, temperature


@dataclass(frozen=True)
class ObjectiveTermConfig:
    """One term of a task's ``objective``: a registered loss, its weight (constant or a linear
    ramp) and what the student is compared with (docs/distillation.md, "Objectives")."""

    loss: str | None = doc_field(
        None,
        "a registered loss (`kdnlu list losses`); that loss's own config keys go beside these",
        shown_default="required",
    )
    name: str | None = doc_field(
        None,
        "the name the term's value is logged under (`distill/<task>/<name>` in metrics.jsonl "
        "and TensorBoard)",
        shown_default="the loss name",
    )
    weight: float = doc_field(1.0, "the term's weight in the task's loss")
    weight_final: float | None = doc_field(
        None, "the weight moves linearly from `weight` to this by the last step"
    )
    targets: Literal["auto", "gold", "teacher"] = doc_field(
        "auto",
        "`gold` labels or the `teacher`s (from `distill.store`); `auto`: the teachers for a "
        "soft, hidden-state or attention loss, the gold labels for any other (a regression "
        "loss with `teacher` learns the teachers' mean score)",
    )
    temperature: float = doc_field(1.0, "T of a soft loss (`T^2` scales it, as in distillation)")
    temperature_final: float | None = doc_field(
        None, "T moves linearly from `temperature` to this by the last step"
    )
    layers: dict[int, int] | None = doc_field(
        None,
        "hidden-state and attention terms: student layer -> teacher layer, numbered as "
        "Hugging Face numbers `hidden_states` (0: the embeddings, 1: the first layer's output; "
        "attention from 1), e.g. `{1: 2, 2: 4, 3: 6}`; the term is the mean over these pairs",
        shown_default="required for those terms",
    )
    project: bool | None = doc_field(
        None,
        "hidden-state terms: pass the student's states through a learned linear map to the "
        "teachers' width (trained with the student, left out of exports); `false` refuses "
        "teachers of another width",
        shown_default="when the widths differ",
    )

    def __post_init__(self) -> None:
        if self.loss is None:
            raise FieldError("loss", "is required: the registered loss of this term")
        for key in ("weight", "weight_final"):
            value = getattr(self, key)
            if value is not None and not value >= 0:
                raise FieldError(key, f"must be >= 0, got {value}")
        for key in ("temperature", "temperature_final"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise FieldError(key, f"must be > 0, got {value}")
        if self.layers is not None:
            if not self.layers:
                raise FieldError("layers", "must map at least one student layer to a teacher's")
            if min([*self.layers, *self.layers.values()]) < 0:
                raise FieldError("layers", f"layer numbers start at 0, got {self.layers}")

    def at(self, progress: float) -> tuple[float, float]:
        """The weight and temperature after ``progress`` (0 to 1) of the run."""
        weight, temperature = self.weight, self.temperature
        if self.weight_final is not None:
            weight += (self.weight_final - self.weight) * progress
        if self.temperature_final is not None:
            temperature += (self.temperature_final - self.temperature) * progress
        return weight, temperature
