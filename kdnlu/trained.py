"""Loading a finished run back: its resolved recipe, tasks and checkpoint weights."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from kdnlu.checkpoint import STATE, WEIGHTS, load_weights
from kdnlu.errors import KdnluError
from kdnlu.loss import Decoder, Loss
from kdnlu.model import MultiTaskModel
from kdnlu.recipe import Recipe, load_recipe
from kdnlu.rundir import recover_swap
from kdnlu.task import Task

log = logging.getLogger("kdnlu.predict")


@dataclass
class TrainedRun:
    """A run directory loaded for prediction or export."""

    run_dir: Path
    recipe: Recipe
    tasks: dict[str, Task]
    model: MultiTaskModel
    checkpoint: Path
    decoders: dict[str, Decoder] = field(default_factory=dict)
    losses: dict[str, Loss] = field(default_factory=dict)  # built once, as training built them


def recorded_best_step(run_dir: Path) -> int | None:
    """The step of the best checkpoint that ``checkpoints/last`` records (None: none yet)."""
    try:
        state = json.loads((run_dir / "checkpoints" / "last" / STATE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    step = state.get("best_step") if isinstance(state, dict) else None
    return step if isinstance(step, int) else None


def refuse_missing_best(run_dir: Path) -> None:
    """A run whose ``last`` records a best checkpoint that is not there is not quietly served
    from ``last`` (its weights are those of another step)."""
    best_step = recorded_best_step(run_dir)
    if best_step is None:
        return
    raise KdnluError(
        f"{run_dir}: checkpoints/last records a best checkpoint at step {best_step}, but "
        f"{run_dir / 'checkpoints' / 'best' / WEIGHTS} is missing; kdnlu-train --resume "
        f"{run_dir} rewrites it where it can, or pass --checkpoint last to use the last "
        "weights instead"
    )


def load_trained(run_dir: str | Path, checkpoint: str = "auto") -> TrainedRun:
    """Build the run's model from its ``recipe.yaml`` and load ``checkpoints/<checkpoint>``.

    ``auto`` takes ``best`` when it exists, else ``last`` (refused when ``last`` records a
    best checkpoint that is missing).
    """
    from kdnlu.build import build_losses, build_model, loss_decoders

    run_dir = Path(run_dir)
    for name in ("best", "last"):
        if recover_swap(run_dir / "checkpoints" / name):
            log.warning("%s: finished the interrupted save of checkpoints/%s", run_dir, name)
    if not (run_dir / "recipe.yaml").is_file():
        raise KdnluError(f"{run_dir} is not a run directory: it has no recipe.yaml")
    if checkpoint == "auto":
        checkpoint = "best" if (run_dir / "checkpoints" / "best" / WEIGHTS).is_file() else "last"
        if checkpoint == "last":
            refuse_missing_best(run_dir)
    folder = run_dir / "checkpoints" / checkpoint
    if not (folder / WEIGHTS).is_file():
        raise KdnluError(f"{run_dir}: no checkpoint '{checkpoint}' ({folder / WEIGHTS} is missing)")
    recipe = load_recipe(run_dir / "recipe.yaml", check_files=False)
    tasks = recipe.build_tasks()
    model = build_model(recipe, tasks)
    try:
        load_weights(folder, model)
    except (RuntimeError, ValueError) as exc:
        raise KdnluError(
            f"{folder / WEIGHTS} does not fit the model that {run_dir / 'recipe.yaml'} builds "
            f"(was the recipe or a plugin changed?): {exc}"
        ) from None
    model.eval()
    losses = build_losses(recipe)
    return TrainedRun(run_dir, recipe, tasks, model, folder, loss_decoders(losses), losses)
