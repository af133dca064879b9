"""Exact resume: everything the training loop needs to go on as if it had never stopped.

A checkpoint's ``training.pt`` holds the optimizer, scheduler and grad-scaler states, the random
generators (python, numpy, torch; the sampler's and the batcher's own), where the loop is (epoch,
the epoch's task order and the next position in it, every task's remaining batches) and the
running losses. It is written with ``torch.save`` and read with ``torch.load(weights_only=True)``:
tensors and plain containers only, so a tampered file cannot run code.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdnlu.callbacks import TrainState
from kdnlu.checkpoint import STATE, TRAINING_STATE, WEIGHTS, load_weights
from kdnlu.errors import KdnluError
from kdnlu.rundir import atomic_write_text, recover_swap, staged_dir

FORMAT = 1

log = logging.getLogger("kdnlu.train")


@dataclass
class LoopPosition:
    """Where the loop goes on: the epoch, its task order and the next position in it."""

    epoch: int
    position: int
    order: list[str] | None  # None: the epoch has not drawn its order yet
    task_losses: dict[str, list[float]] = field(default_factory=dict)
    window: dict[str, list[float]] = field(default_factory=dict)
    logged: dict[str, list[float]] = field(default_factory=dict)
    epoch_losses: list[float] = field(default_factory=list)
    evaluated_at: int = -1


def numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def set_numpy_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["cached"]))


def python_state(rng: random.Random | None = None) -> list[Any]:
    """A ``random`` state as lists (torch's safe loader reads lists, not arbitrary tuples)."""
    version, internal, gauss = (rng or random).getstate()
    return [version, list(internal), gauss]


def set_python_state(state: list[Any], rng: random.Random | None = None) -> None:
    version, internal, gauss = state
    (rng or random).setstate((version, tuple(internal), gauss))


def torch_generators() -> dict[str, Any]:
    """torch's CPU generator state (``torch``) and every CUDA device's (``cuda``, [] without)."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_torch_generators(state: dict[str, Any]) -> None:
    """Restore what ``torch_generators`` captured (CUDA states only where CUDA is here)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def capture(
    *,
    step: int,
    loop: LoopPosition,
    train_state: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    sampler_rng: random.Random,
    batch_rng: random.Random,
    queues: dict[str, list[list[int]]],
) -> dict[str, Any]:
    """The loop's whole state after ``step`` optimizer steps, as safe-to-load data."""
    return {
        "format": FORMAT,
        "step": step,
        "loop": {
            "epoch": loop.epoch,
            "position": loop.position,
            "order": loop.order,
            "task_losses": loop.task_losses,
            "window": loop.window,
            "logged": loop.logged,
            "epoch_losses": loop.epoch_losses,
            "evaluated_at": loop.evaluated_at,
        },
        "train_state": train_state,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": {
            "python": python_state(),
            "numpy": numpy_state(),
            **torch_generators(),
            "sampler": python_state(sampler_rng),
            "batches": python_state(batch_rng),
        },
        "queues": queues,
    }


def load_training_state(folder: Path) -> dict[str, Any]:
    """Read ``folder/training.pt`` safely; errors say what is wrong with it."""
    if recover_swap(folder):
        log.warning("%s: finished the interrupted save of this checkpoint", folder)
    path = folder / TRAINING_STATE
    if not path.is_file():
        raise KdnluError(
            f"{folder} has no {TRAINING_STATE}: it was written by a kdnlu without exact resume, "
            "or by an evaluation-only checkpoint; the run cannot be resumed from it"
        )
    state = read_state_file(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise KdnluError(f"{path} is not a kdnlu training state of format {FORMAT}")
    return state


def read_state_file(path: Path) -> Any:
    """``torch.load`` of a state file kdnlu wrote, tensors and plain values only (a tampered
    file cannot run code); errors say what is wrong with it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise KdnluError(
            f"{path} holds objects other than tensors and plain values and is refused (a "
            f"checkpoint written by kdnlu never does; was it replaced?): {exc}"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise KdnluError(f"{path} cannot be read (truncated or damaged?): {exc}") from None


def restore_generators(
    state: dict[str, Any], sampler_rng: random.Random, batch_rng: random.Random
) -> None:
    rng = state["rng"]
    set_python_state(rng["python"])
    set_numpy_state(rng["numpy"])
    set_torch_generators(rng)
    set_python_state(rng["sampler"], sampler_rng)
    set_python_state(rng["batches"], batch_rng)


def loop_position(state: dict[str, Any]) -> LoopPosition:
    loop = state["loop"]
    return LoopPosition(
        epoch=loop["epoch"],
        position=loop["position"],
        order=loop["order"],
        task_losses=dict(loop["task_losses"]),
        window=dict(loop["window"]),
        logged=dict(loop["logged"]),
        epoch_losses=list(loop["epoch_losses"]),
        evaluated_at=loop["evaluated_at"],
    )


def restore_run(
    saved: dict[str, Any],
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    state: TrainState,
) -> LoopPosition:
    """Load ``run_dir/checkpoints/last`` into the freshly built model, optimizer and loop state;
    drop metrics.jsonl lines written after that checkpoint. Where the loop goes on."""
    step, kept = saved["step"], saved["train_state"]
    point = loop_position(saved)
    restore_missing_best(run_dir, step, kept["best_step"])
    if step > state.total_steps:
        raise KdnluError(
            f"{run_dir}: its checkpoint is at step {step}, but the recipe trains "
            f"{state.total_steps} steps; was recipe.yaml changed?"
        )
    if (step >= state.total_steps or kept["should_stop"]) and point.evaluated_at == step:
        raise KdnluError(f"{run_dir} finished at step {step}; there is nothing to resume")
    try:
        load_weights(run_dir / "checkpoints" / "last", model)
        optimizer.load_state_dict(saved["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise KdnluError(
            f"{run_dir}/checkpoints/last does not fit the model its recipe.yaml builds "
            f"(was the recipe or a plugin changed?): {exc}"
        ) from None
    scheduler.load_state_dict(saved["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    state.step, state.epoch = step, kept["epoch"]
    state.best_score, state.best_step = kept["best_score"], kept["best_step"]
    state.evaluations_without_improvement = kept["evaluations_without_improvement"]
    state.should_stop = kept["should_stop"]
    state.skipped_batches = kept.get("skipped_batches", 0)
    state.scalars = {k: list(v) for k, v in kept["scalars"].items()}
    state.window_scalars = {k: list(v) for k, v in kept["window_scalars"].items()}
    truncate_metrics(run_dir / "metrics.jsonl", step)
    return point


def restore_missing_best(run_dir: Path, step: int, best_step: int | None) -> None:
    """Rewrite a missing ``checkpoints/best`` (a crash between an evaluation's two saves, in
    runs that saved ``last`` first): when ``last`` was saved at that very evaluation, it holds
    the best weights and state."""
    checkpoints = run_dir / "checkpoints"
    recover_swap(checkpoints / "best")
    if best_step is None or (checkpoints / "best" / WEIGHTS).is_file():
        return
    if best_step != step:
        log.warning(
            "%s: the best checkpoint (step %d) is missing and cannot be rewritten; the next "
            "evaluation that improves writes a new one",
            checkpoints / "best",
            best_step,
        )
        return
    with staged_dir(checkpoints / "best", replace=True) as staging:
        for name in (WEIGHTS, STATE):
            shutil.copyfile(checkpoints / "last" / name, staging / name)
    log.warning("%s: rewrote the missing best checkpoint from last (step %d)", run_dir, step)


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the evaluations up to ``step``: later ones are redone by the resumed run."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by the crash
    if len(kept) != len(lines):
        log.info("%s: dropping %d evaluation(s) after step %d", path, len(lines) - len(kept), step)
        atomic_write_text(path, "".join(line + "\n" for line in kept))
