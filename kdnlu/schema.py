"""The framework's own recipe sections: per-task options, training options, top-level keys
(the distillation sections are in ``kdnlu.schema_distill``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kdnlu.config import FieldError, doc_field, path_field

SEED_LIMIT = 2**32  # numpy's generators take seeds in [0, 2**32)


def check_seed(field_name: str, value: int) -> None:
    if not 0 <= value < SEED_LIMIT:
        raise FieldError(field_name, f"must be in [0, 2**32), got {value}")


@dataclass(frozen=True)
class TaskOptions:
    """Per-task keys every task accepts, whatever its plugin."""

    max_length: int = doc_field(
        128,
        "tokens per example; pairs are truncated longest-first; at most what the encoder has "
        "position embeddings for (512 for BERT and MiniLM)",
    )
    train_rows: int | None = doc_field(None, "use only the first N training rows")
    eval_rows: int | None = doc_field(None, "use only the first N rows of each evaluation split")
    train_sample: int | None = doc_field(
        None,
        "train on N training rows drawn at random without replacement (after `train_rows`, "
        "kept in file order); the same rows for every `train.seed`; rows keep their place in "
        "the split, so a teachers' store of the whole file still lines up; a ranking task "
        "draws N candidate groups; N at least the split's size means every row (with a warning)",
    )
    sample_seed: int = doc_field(0, "the seed of `train_sample`'s draw, in [0, 2**32)")
    on_bad_row: Literal["error", "skip"] = doc_field(
        "error",
        "a row that cannot be read (wrong column count, unknown label) stops the run naming "
        "file:line; `skip` leaves such rows out and logs one warning per file with their count "
        "and the first one",
    )
    optional: bool = doc_field(
        False,
        "leave the task out (with a log line) when its training or evaluation files are "
        "missing, e.g. MNLI in a GLUE copy without it",
    )

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

    optimizer: Literal["adamw", "adamax"] = doc_field(
        "adamw", "no weight decay on biases and LayerNorm weights; MT-DNN used Adamax"
    )
    lr: float = doc_field(5e-5, "peak learning rate")
    weight_decay: float = doc_field(
        0.01, "the optimiser's weight decay (not on biases and LayerNorm weights)"
    )
    batch_size: int = doc_field(32, "training examples per batch (all from one task)")
    eval_batch_size: int = doc_field(64, "examples per batch when evaluating")
    grad_accumulation: int = doc_field(
        1,
        "batches whose gradients are summed (each scaled by 1/N) before one optimiser step; "
        "one step may mix tasks",
    )
    epochs: int = doc_field(
        3, "passes over every task's training data (as the sampler lays them out)"
    )
    max_steps: int | None = doc_field(
        None,
        "stop after this many optimiser steps (mid-epoch); the last steps are always evaluated "
        "and saved",
    )
    warmup: float = doc_field(0.1, "fraction of steps with linear warm-up, then linear decay to 0")
    grad_clip: float = doc_field(1.0, "gradient-norm clipping; 0 disables")
    amp: bool = doc_field(
        False,
        "mixed precision: bf16 autocast on CPU, fp16 autocast with a gradient scaler on GPU",
    )
    length_bucketing: bool = doc_field(
        True,
        "batch rows of similar length together (less padding); batches are padded to their "
        "longest row either way",
    )
    token_cache: bool = doc_field(
        True,
        "keep tokenised splits on disk (see `cache_dir`) and memory-map them on the next start",
    )
    eval_every: int | None = doc_field(None, "also evaluate every N optimiser steps")
    eval_each_epoch: bool = doc_field(True, "evaluate at the end of each epoch")
    checkpoint_every: int | None = doc_field(
        None,
        "also save `checkpoints/last` (with everything exact resume needs) every this many "
        "steps; it is saved at each evaluation and on Ctrl-C anyway",
    )
    on_nonfinite_loss: Literal["error", "skip"] = doc_field(
        "error",
        "a NaN or infinite loss stops the run naming task, step and epoch; `skip` leaves that "
        "batch out instead (no gradient), logs a warning and counts it (`skipped_batches` in "
        "`metrics.jsonl`). Either way, NaN or infinite weights after a step stop the run, and "
        "none is ever saved",
    )
    max_skipped_fraction: float = doc_field(
        0.1,
        "under `on_nonfinite_loss: skip`, the run stops with an error once more than this "
        "fraction of its batches were skipped (it is diverging)",
    )
    best_metric: str = doc_field(
        "average",
        "what `checkpoints/best` keeps the best of: `average` (mean over tasks of each task's "
        "mean metric; a task scored on several splits, like MNLI, counts once: the GLUE "
        "score's rule; metrics registered with `greater_is_better=False`, such as `mae`, are "
        "left out, and so is a task that has only such metrics) or `<eval name>.<metric>`, "
        "e.g. `rte.accuracy`, `mnli/dev_matched.accuracy`, `sts.mae`; a lower-is-better "
        "metric's best is its lowest value",
    )
    patience: int | None = doc_field(
        None,
        "early stopping: stop after this many evaluations without a new best (in "
        "`best_metric`'s direction)",
    )
    seed: int = doc_field(13, "seeds Python, NumPy and torch, and the batch order; in [0, 2**32)")
    deterministic: bool = doc_field(
        False,
        "deterministic torch kernels for the run (`torch.use_deterministic_algorithms`, cuDNN "
        "autotuning off, `CUBLAS_WORKSPACE_CONFIG` set if unset), so a GPU run repeats bit for "
        "bit; slower on GPU, and an op without a deterministic kernel stops the run with "
        "torch's error. CPU runs repeat without it",
    )
    log_every: int = doc_field(10, "steps between TensorBoard training scalars")
    device: Literal["auto", "cpu", "cuda"] = doc_field(
        "auto", "`auto` takes a GPU when there is one"
    )

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
class RecipeHeader:
    """Top-level scalar keys of a recipe."""

    name: str = doc_field(
        "run",
        "run name; the run directory is `<output_dir>/<name>`, so it is one folder name (not "
        "empty, no `/`)",
        shown_default="file name without `.yaml`",
    )
    imports: tuple[str, ...] = doc_field(
        (),
        "plugin code to import first: `.py` paths (relative to this file) or module names",
    )
    data_root: str | None = path_field(
        None,
        help="folder that GLUE task data is found under (`<data_root>/RTE/train.tsv`); without "
        "it (or with `null`), `$KDNLU_DATA/glue`, else `~/.cache/kdnlu/data/glue` "
        "([data.md](data.md))",
        shown_default="the data-location rule",
    )
    output_dir: str = doc_field(
        "runs", "where run directories are created (relative to the working directory)"
    )
    cache_dir: str | None = path_field(
        None,
        help="where the token cache lives",
        shown_default="`$KDNLU_CACHE_DIR` or `~/.cache/kdnlu`",
    )

    def __post_init__(self) -> None:
        name = self.name
        if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
            raise FieldError(
                "name",
                f"must be one folder name (the run directory is output_dir/name): not empty, "
                f"'.' or '..', and without '/' or '\\'; got {name!r}",
            )


@dataclass(frozen=True)
class KeyDoc:
    """A recipe key that is not a field of one config dataclass (a section, a component, a
    task's head), as its reference table row shows it."""

    name: str
    type: str
    default: str
    help: str


BASE_KEY = KeyDoc(
    "base", "path", "none", "one recipe to inherit from (relative to this file); see below"
)
DEFAULT_SAMPLER = "mtdnn"
SECTION_KEYS = (
    KeyDoc(
        "encoder",
        "component",
        "required",
        "the shared encoder: `{name: hf, path: minilm}`, or any local Hugging Face checkpoint "
        "folder (`kdnlu list encoders` and the encoders' table below show its keys)",
    ),
    KeyDoc("tasks", "mapping", "required", "one entry per task, at least one"),
    KeyDoc(
        "sampler",
        "component",
        f"`{DEFAULT_SAMPLER}`",
        "which task each training step draws its batch from",
    ),
    KeyDoc("train", "mapping", "defaults below", "optimisation and bookkeeping"),
    KeyDoc(
        "distill",
        "mapping",
        "none",
        "distil tasks from teacher logit stores (below, and [distillation.md](distillation.md))",
    ),
)
TASK_ENTRY_KEYS = (
    KeyDoc(
        "name",
        "str",
        "the key",
        "registered task to use (so `rte_long: {name: rte, max_length: 256}` works)",
    ),
    KeyDoc(
        "head",
        "component",
        "the task's default (`classification`)",
        "output layer; `classification`, `regression` and `ranking` take `dropout` and "
        "`pooling`: `cls` (the [CLS] vector, default), `mean` (average over the unpadded "
        "tokens) or `pooler` (the checkpoint's pretrained tanh pooler over [CLS], one copy per "
        "task head, fine-tuned with it)",
    ),
    KeyDoc("loss", "component", "the task's default (`cross_entropy`)", "training loss"),
    KeyDoc(
        "objective",
        "list of terms",
        "the task's loss",
        "the task's loss as a weighted sum of registered losses (terms below); replaces "
        "`loss` in training (which still decodes predictions) and the `distill:` shorthand "
        "for this task",
    ),
)
