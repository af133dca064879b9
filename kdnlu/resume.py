"""Exact resume: everything the training loop needs to go on as if it had never stopped.

A checkpoint's ``training.pt`` holds the loop's ``LoopState`` (``dataclasses.asdict``: where the
loop is, the running losses, the best score), the optimizer, scheduler and grad-scaler states,
the global random generators, and the task schedule's and batcher's ``state_dict()`` (their own
generators, every task's remaining batches). It is written with ``torch.save`` and read with
``torch.load(weights_only=True)``: tensors and plain containers only, so a tampered file cannot
run code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import yaml

from kdnlu.callbacks import TrainState
from kdnlu.checkpoint import STATE, TRAINING_STATE, WEIGHTS, load_weights
from kdnlu.data import EncodedSplit
from kdnlu.errors import KdnluError
from kdnlu.generators import global_generators, set_global_generators
from kdnlu.loop_state import LoopState
from kdnlu.rundir import atomic_write_text, recover_swap, staged_dir

FORMAT = 2  # 2: the loop's state is one LoopState; 1 (before it) cannot be resumed

log = logging.getLogger("kdnlu.train")


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class Resumable:
    """The parts of a run that hold state besides the model: what ``checkpoints/last`` saves."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    schedule: Stateful  # the epochs' task order (kdnlu.batches.TaskSchedule)
    batches: Stateful  # every task's pending batches (kdnlu.batches.TaskBatches)
    inputs: dict[str, Any] | None = None  # what the run trains on (run_inputs)


def capture(loop: LoopState, parts: Resumable) -> dict[str, Any]:
    """The loop's whole state after ``loop.step`` optimizer steps, as safe-to-load data."""
    return {
        "format": FORMAT,
        "step": loop.step,
        "loop": asdict(loop),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "rng": global_generators(),
        "schedule": parts.schedule.state_dict(),
        "batches": parts.batches.state_dict(),
        **({"inputs": parts.inputs} if parts.inputs is not None else {}),
    }


def load_training_state(folder: Path) -> dict[str, Any]:
    """Read ``folder/training.pt`` safely; errors say what is wrong with it."""
    if recover_swap(folder):
        log.warning("%s: finished the interrupted save of this checkpoint", folder)
    if not folder.is_dir():
        run_dir = folder.parents[1]
        raise KdnluError(
            f"{run_dir} has no checkpoint to resume from ({folder} does not exist): it stopped "
            "before its first one was saved (train.checkpoint_every saves them as it goes); "
            f"start it again with kdnlu-train {run_dir}/recipe.yaml"
        )
    path = folder / TRAINING_STATE
    if not path.is_file():
        raise KdnluError(
            f"{folder} has no {TRAINING_STATE}: it was written by a kdnlu without exact resume, "
            "or by an evaluation-only checkpoint; the run cannot be resumed from it"
        )
    state = read_state_file(path)
    if isinstance(state, dict) and state.get("format") == 1:
        raise KdnluError(
            f"{path} was written by an earlier kdnlu (training state format 1, this one reads "
            f"{FORMAT}); finish that run with the kdnlu that started it, or start it again "
            f"with kdnlu-train {folder.parents[1]}/recipe.yaml"
        )
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


def split_fingerprint(split: EncodedSplit) -> str:
    """SHA-256 over a tokenised split's arrays: token ids, offsets and labels."""
    digest = hashlib.sha256()
    for array in (split.ids, split.type_ids, split.offsets, split.labels, split.token_labels):
        if array is not None:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.data)
    return digest.hexdigest()


def run_inputs(
    recipe_yaml: str, train: Mapping[str, EncodedSplit], evaluation: Mapping[str, EncodedSplit]
) -> dict[str, Any]:
    """What a run trains on, recorded in its checkpoints so that a resume can check it: the
    resolved recipe and a fingerprint of every split it reads."""
    data = {f"{k} (train)": split_fingerprint(s) for k, s in train.items()}
    data.update({f"{k} (evaluation)": split_fingerprint(s) for k, s in evaluation.items()})
    return {"recipe": recipe_yaml, "data": data}


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def check_inputs(saved: dict[str, Any], inputs: dict[str, Any], run_dir: Path) -> None:
    """Refuse to resume a run whose recipe.yaml or data changed since it started, naming what
    changed (checkpoints from before inputs were recorded are not checked)."""
    recorded = saved.get("inputs")
    if not isinstance(recorded, dict):
        return
    was, now = _flat(yaml.safe_load(recorded["recipe"])), _flat(yaml.safe_load(inputs["recipe"]))
    changes = [
        f"{key} {was.get(key, '(unset)')!r} -> {now.get(key, '(unset)')!r}"
        for key in [*was, *(k for k in now if k not in was)]
        if was.get(key) != now.get(key)
    ]
    names = [*recorded["data"], *(k for k in inputs["data"] if k not in recorded["data"])]
    data = [n for n in names if recorded["data"].get(n) != inputs["data"].get(n)]
    found = []
    if changes:
        found.append(f"{run_dir}/recipe.yaml changed ({'; '.join(changes)})")
    if data:
        found.append(f"the data of {', '.join(data)} changed")
    if found:
        raise KdnluError(
            f"{run_dir} cannot be resumed: since it started, {' and '.join(found)}. Put back "
            "what it started with to resume it, or start a new run with the new values "
            f"(kdnlu-train {run_dir}/recipe.yaml)"
        )


def check_queues(saved: dict[str, Any], sizes: Mapping[str, int], run_dir: Path) -> None:
    """The rows a checkpoint's pending batches name must still be there (data that shrank)."""
    for key, batches in saved["batches"]["queues"].items():
        largest = max((max(b) for b in batches if b), default=-1)
        if key not in sizes or largest >= sizes[key]:
            have = f"has {sizes[key]} rows" if key in sizes else "is no longer trained"
            raise KdnluError(
                f"{run_dir} cannot be resumed: its checkpoint goes on with row {largest} of task "
                f"{key}'s training data, which now {have}; the data changed since the run "
                f"started. Put it back, or start a new run (kdnlu-train {run_dir}/recipe.yaml)"
            )


def restore_run(
    saved: dict[str, Any],
    run_dir: Path,
    model: torch.nn.Module,
    parts: Resumable,
    state: TrainState,
) -> None:
    """Load ``run_dir/checkpoints/last`` into the freshly built model, the run's stateful parts
    and ``state.loop``; drop metrics.jsonl lines written after that checkpoint."""
    loop = LoopState(**saved["loop"])
    restore_missing_best(run_dir, loop.step, loop.best_step)
    if loop.step > state.total_steps:
        raise KdnluError(
            f"{run_dir}: its checkpoint is at step {loop.step}, but the recipe trains "
            f"{state.total_steps} steps; was recipe.yaml changed?"
        )
    finished = loop.step >= state.total_steps or loop.should_stop
    if finished and loop.evaluated_at == loop.step:
        raise KdnluError(f"{run_dir} finished at step {loop.step}; there is nothing to resume")
    try:
        load_weights(run_dir / "checkpoints" / "last", model)
        parts.optimizer.load_state_dict(saved["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise KdnluError(
            f"{run_dir}/checkpoints/last does not fit the model its recipe.yaml builds "
            f"(was the recipe or a plugin changed?): {exc}"
        ) from None
    parts.scheduler.load_state_dict(saved["scheduler"])
    parts.scaler.load_state_dict(saved["scaler"])
    set_global_generators(saved["rng"])
    parts.schedule.load_state_dict(saved["schedule"])
    parts.batches.load_state_dict(saved["batches"])
    state.loop = loop
    truncate_metrics(run_dir / "metrics.jsonl", loop.step)


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
