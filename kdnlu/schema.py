"""The framework's own recipe sections: per-task options, training options, top-level keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kdnlu.config import FieldError, path_field

SEED_LIMIT = 2**32  # numpy's generators take seeds in [0, 2**32)


def check_seed(field_name: str, value: int) -> None:
    if not 0 <= value < SEED_LIMIT:
        raise FieldError(field_name, f"must be in [0, 2**32), got {value}")


@dataclass(frozen=True)
class TaskOptions:
    """Per-task keys every task accepts, whatever its plugin.

    ``on_bad_row``: "error" stops at the first data row that cannot be read (wrong number of
    columns, unknown label), naming file:line; "skip" leaves such rows out and logs one warning
    per file saying how many were skipped and where the first one was.
    ``optional``: leave the task out of the run when its data files are missing.
    ``train_sample``: train on N training rows drawn at random (without replacement, kept in
    file order) with ``sample_seed``, the same rows whatever ``train.seed``; rows keep their
    place in the split, so a teachers' store of the whole split still lines up. A ranking task
    draws N candidate groups.
    """

    max_length: int = 128
    train_rows: int | None = None
    eval_rows: int | None = None
    train_sample: int | None = None
    sample_seed: int = 0
    on_bad_row: Literal["error", "skip"] = "error"
    optional: bool = False

    def __post_init__(self) -> None:
        check_seed("sample_seed", self.sample_seed)
        if self.max_length < 8:
            raise FieldError("max_length", f"must be at least 8, got {self.max_length}")
        for key in ("train_rows", "eval_rows", "train_sample"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise FieldError(key, f"must be a positive number of rows, got {value}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of a training run."""

    optimizer: Literal["adamw", "adamax"] = "adamw"
    lr: float = 5e-5
    weight_decay: float = 0.01
    batch_size: int = 32
    eval_batch_size: int = 64
    grad_accumulation: int = 1
    epochs: int = 3
    max_steps: int | None = None
    warmup: float = 0.1
    grad_clip: float = 1.0
    amp: bool = False
    length_bucketing: bool = True
    token_cache: bool = True
    eval_every: int | None = None
    eval_each_epoch: bool = True
    checkpoint_every: int | None = None
    on_nonfinite_loss: Literal["error", "skip"] = "error"
    max_skipped_fraction: float = 0.1
    best_metric: str = "average"
    patience: int | None = None
    seed: int = 13
    deterministic: bool = False
    log_every: int = 10
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        at_least_one = ("batch_size", "eval_batch_size", "grad_accumulation", "epochs", "log_every")
        for key in at_least_one:
            if getattr(self, key) < 1:
                raise FieldError(key, f"must be >= 1, got {getattr(self, key)}")
        for key in ("max_steps", "eval_every", "patience", "checkpoint_every"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise FieldError(key, f"must be >= 1 or null, got {value}")
        check_seed("seed", self.seed)
        if self.lr <= 0:
            raise FieldError("lr", f"must be > 0, got {self.lr}")
        if not 0.0 <= self.warmup < 1.0:
            raise FieldError("warmup", f"must be a fraction in [0, 1), got {self.warmup}")
        if self.grad_clip < 0:
            raise FieldError("grad_clip", f"must be >= 0 (0 disables), got {self.grad_clip}")
        if not 0.0 <= self.max_skipped_fraction <= 1.0:
            raise FieldError(
                "max_skipped_fraction", f"must be in [0, 1], got {self.max_skipped_fraction}"
            )
        if self.weight_decay < 0:
            raise FieldError("weight_decay", f"must be >= 0, got {self.weight_decay}")
        if not self.eval_each_epoch and self.eval_every is None:
            raise FieldError(
                "eval_each_epoch",
                "is false and eval_every is null: the run would "
                "never be evaluated; set eval_every to a number of steps",
            )


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from teacher logit stores (docs/distillation.md).

    For each distilled task the loss is ``alpha * hard + (1 - alpha) * T^2 * soft``: ``hard`` is
    the task's own loss on gold labels, ``soft`` the ``soft_loss`` between the student's
    outputs / T and the mean over teachers of softmax(teacher outputs / T); a regression task
    uses the MSE to the teachers' mean score instead (without T). ``alpha_final`` and
    ``temperature_final`` make alpha and T move linearly from their start to these values over
    the run's steps. ``teachers`` keeps only some of each store's teachers, numbered from 1 as
    ``kdnlu store inspect`` lists them (empty: all of them). ``kernel`` picks the backend of the
    fused soft cross-entropy (``kdnlu.kernels``) that the default ``soft_loss`` runs on.
    """

    store: str | None = path_field(None)
    tasks: tuple[str, ...] = ()
    teachers: tuple[int, ...] = ()
    alpha: float = 0.5
    temperature: float = 1.0
    alpha_final: float | None = None
    temperature_final: float | None = None
    soft_loss: str = "soft_cross_entropy"
    kernel: Literal["auto", "triton", "apex", "torch"] = "auto"

    def __post_init__(self) -> None:
        if self.store is None:
            raise FieldError("store", "is required: the folder kdnlu-teach wrote (--out)")
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
class RecipeHeader:
    """Top-level scalar keys of a recipe."""

    name: str = "run"
    data_root: str | None = path_field(None)
    output_dir: str = "runs"
    cache_dir: str | None = path_field(None)
    imports: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        name = self.name
        if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
            raise FieldError(
                "name",
                f"must be one folder name (the run directory is output_dir/name): not empty, "
                f"'.' or '..', and without '/' or '\\'; got {name!r}",
            )
