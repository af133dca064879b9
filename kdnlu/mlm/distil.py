"""Vocabulary-level distillation: a smaller masked LM learns the teacher's top-k distributions.

The student is cut from the teacher (its embeddings, output head and some encoder layers, see
``cut_student``) and trained on the masked corpus against the top-k store, renormalised over
its k words, with the fused ``soft_cross_entropy`` (top-k target), mixed with the gold-token
loss by ``alpha``. Every ``holdout``-th sentence is kept out of training and scored before,
during and after it. The result is a Hugging Face folder that fine-tunes like any encoder.

Every ``checkpoint_every`` steps the whole training state (student, optimizer, schedule, random
generator, losses and evaluations so far) is written atomically to ``OUT.partial.pt``; the same
command run again after an interruption goes on from there and ends with exactly the student
an uninterrupted run makes. The file is removed once the student is saved.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from kdnlu.errors import KdnluError
from kdnlu.generators import set_torch_generators, torch_generators
from kdnlu.kernels import BACKENDS, Backend, soft_cross_entropy
from kdnlu.mlm.corpus import MaskedCorpus
from kdnlu.mlm.models import MlmModel, cut_student, save_mlm, sentence_batches, training_order
from kdnlu.mlm.teach import check_store
from kdnlu.optim import linear_schedule, make_optimizer
from kdnlu.options import OptionError, option
from kdnlu.resume import read_state_file
from kdnlu.rundir import atomic_write
from kdnlu.store import LogitStore

log = logging.getLogger("kdnlu.mlm")
STATE_FORMAT = 1


@dataclass(frozen=True)
class DistilOptions:
    """How the student is made and trained; ``steps = 0`` only cuts it (a baseline)."""

    layers: tuple[int, ...] = option((0, 2, 4), "teacher layers to keep", sep=",")
    steps: int = option(1000, "training steps; 0: cut only, a baseline")
    batch_size: int = option(32, "sentences per step")
    lr: float = option(1e-4, "peak learning rate")
    warmup: float = option(0.1, "share of the steps the learning rate warms up over")
    weight_decay: float = option(0.01, "AdamW weight decay")
    alpha: float = option(0.0, "weight of the gold-token loss")
    holdout: int = option(50, "every Nth sentence is held out")
    eval_every: int = option(250, "evaluate on the held-out sentences every N steps")
    checkpoint_every: int = option(
        250,
        "save the training state every N steps to OUT.partial.pt (0: never); the same command "
        "resumes from it",
    )
    seed: int = option(13, "seed of the sentence order")
    backend: Backend = option("auto", "soft cross-entropy kernel", flag="--kernel")

    def __post_init__(self) -> None:
        for name, least in (("steps", 0), ("batch_size", 1), ("eval_every", 1), ("holdout", 2)):
            if getattr(self, name) < least:
                raise OptionError(
                    name,
                    "steps must be >= 0, batch_size and eval_every >= 1 and holdout >= 2; got "
                    f"{self.steps}, {self.batch_size}, {self.eval_every}, {self.holdout}",
                )
        if not 0.0 <= self.alpha <= 1.0:
            raise OptionError("alpha", f"alpha must be in [0, 1], got {self.alpha}")
        if self.checkpoint_every < 0:
            raise OptionError(
                "checkpoint_every",
                f"checkpoint_every must be >= 0 (0: never), got {self.checkpoint_every}",
            )
        if self.lr <= 0:
            raise OptionError("lr", f"lr must be > 0, got {self.lr}")
        if self.backend not in BACKENDS:
            raise OptionError(
                "backend", f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )


def targets_of(store: LogitStore, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k ids and probabilities renormalised over the k words, for some store rows."""
    ids, probs, _ = store.topk(rows)
    probs = probs / np.clip(probs.sum(1, keepdims=True), 1e-12, None)
    return torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(probs)


def evaluate(
    student: MlmModel,
    corpus: MaskedCorpus,
    store: LogitStore,
    sentences: np.ndarray,
    batch_size: int = 64,
) -> dict[str, float]:
    """On held-out sentences: soft cross-entropy against the renormalised top k (nats), how
    often the student's top word is the teacher's, and its accuracy on the original tokens."""
    model = student.model
    was_training = model.training
    model.eval()
    soft = agree = gold = rows = 0.0
    with torch.no_grad():
        for batch in sentence_batches(sentences, batch_size, corpus):
            logits = student.masked_logits(batch).float()
            ids, probs = (t.to(logits.device) for t in targets_of(store, batch["rows"]))
            soft += float(
                soft_cross_entropy(
                    logits, topk_ids=ids, topk_probs=probs, reduction="sum", backend="torch"
                )
            )
            top = logits.argmax(1)
            agree += float((top == ids[:, 0]).sum())
            gold += float((top == batch["targets"].to(top.device)).sum())
            rows += len(logits)
    model.train(was_training)
    rows = max(rows, 1.0)
    return {
        "soft_ce": soft / rows,
        "teacher_top1_agreement": 100 * agree / rows,
        "gold_accuracy": 100 * gold / rows,
    }


def distil_mlm(
    teacher: MlmModel,
    corpus: MaskedCorpus,
    store_dir: str | Path,
    out: str | Path,
    options: DistilOptions = DistilOptions(),
    progress: bool = True,
) -> dict[str, Any]:
    """Cut the student, train it against the store and save it to ``out``; returns the
    evaluations (held-out sentences) and the loss curve."""
    store = open_checked_store(teacher, corpus, store_dir, out)
    torch.manual_seed(options.seed)
    student = cut_student(teacher, options.layers)
    everything = np.arange(corpus.sentences)
    held = everything[:: options.holdout]
    train = np.setdiff1d(everything, held)
    if len(train) == 0:
        raise KdnluError("the corpus is too small: no sentence is left to train on")
    model = student.model
    optimizer = make_optimizer(model, "adamw", options.lr, options.weight_decay)
    schedule = linear_schedule(optimizer, max(options.steps, 1), options.warmup)
    partial, key = partial_path(out), resume_key(teacher, corpus, store, options)
    done, losses, evals = 0, [], []
    if partial.is_file():
        done, losses, evals = _restore(partial, key, student, optimizer, schedule)
        log.info("%s: resuming the distillation at step %d of %d", partial, done, options.steps)
    else:
        evals = [{"step": 0, **evaluate(student, corpus, store, held)}]
    order = training_order(train, options.steps, options.batch_size, options.seed)
    model.train()
    bar = tqdm(
        total=options.steps, initial=done, desc="distil MLM", unit="step", disable=not progress
    )
    batches = sentence_batches(order[done * options.batch_size :], options.batch_size, corpus)
    for step, batch in enumerate(batches, start=done + 1):
        losses.append(distil_step(student, store, batch, optimizer, schedule, options))
        bar.update()
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if step % options.eval_every == 0 or step == options.steps:
            evals.append({"step": step, **evaluate(student, corpus, store, held)})
        every = options.checkpoint_every
        if every and step % every == 0 and step < options.steps:
            _save_state(partial, key, step, student, optimizer, schedule, losses, evals)
    bar.close()
    result = {
        "store": str(store.folder),
        "top_k": store.spec.top_k,
        "corpus_fingerprint": corpus.fingerprint,
        "held_out_sentences": len(held),
        "options": {**asdict(options), "layers": list(options.layers)},
        "evaluations": evals,
        "loss": losses,
    }
    save_mlm(student, out, {"teacher": teacher.source, "distillation": result})
    partial.unlink(missing_ok=True)
    return result


def open_checked_store(
    teacher: MlmModel, corpus: MaskedCorpus, store_dir: str | Path, out: str | Path
) -> LogitStore:
    """The top-k store, refused unless it was written for this corpus and teacher's
    vocabulary, and ``out`` is new."""
    store = LogitStore.open(store_dir)
    check_store(store, corpus, Path(store_dir))
    if Path(out).exists():
        raise KdnluError(f"{out} already exists; choose a new folder")
    if store.spec.classes != int(teacher.model.config.vocab_size):
        raise KdnluError(
            f"{store_dir} has {store.spec.classes} classes; the teacher's vocabulary has "
            f"{teacher.model.config.vocab_size}"
        )
    return store


def resume_key(
    teacher: MlmModel, corpus: MaskedCorpus, store: LogitStore, options: DistilOptions
) -> str:
    """What a saved training state must have been made with to be resumed."""
    return json.dumps(
        {
            "store": store.spec.to_json(),
            "corpus": corpus.fingerprint,
            "teacher": teacher.source,
            "options": {**asdict(options), "checkpoint_every": None},
        },
        sort_keys=True,
    )


def distil_step(
    student: MlmModel,
    store: LogitStore,
    batch: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    options: DistilOptions,
) -> float:
    """One training step of the student on one batch; its loss."""
    logits = student.masked_logits(batch)
    ids, probs = targets_of(store, batch["rows"])
    loss = soft_cross_entropy(
        logits,
        topk_ids=ids.to(logits.device),
        topk_probs=probs.to(logits.device),
        hard_labels=batch["targets"].to(logits.device),
        alpha=options.alpha,
        backend=options.backend,
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    return loss.item()


def partial_path(out: str | Path) -> Path:
    """Where an unfinished distillation into ``out`` keeps its training state."""
    out = Path(out)
    return out.with_name(out.name + ".partial.pt")


def _save_state(
    path: Path,
    key: str,
    step: int,
    student: MlmModel,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    losses: list[float],
    evals: list[dict[str, float]],
) -> None:
    state = {
        "format": STATE_FORMAT,
        "key": key,
        "step": step,
        "model": student.model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": torch_generators(),
        "losses": losses,
        "evaluations": evals,
    }
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _restore(
    path: Path,
    key: str,
    student: MlmModel,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, list[float], list[dict[str, float]]]:
    state = read_state_file(path)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise KdnluError(f"{path} is not a kdnlu-mlm distillation state; remove it to start over")
    if state.get("key") != key:
        raise KdnluError(
            f"{path} belongs to a distillation with another teacher, corpus, store or options; "
            "run the command it was made by, or remove the file to start this one over"
        )
    student.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    set_torch_generators(state["rng"])
    return int(state["step"]), list(state["losses"]), list(state["evaluations"])
