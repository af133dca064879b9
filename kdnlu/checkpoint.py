"""Checkpoints: safetensors weights plus a JSON state, swapped into place atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from kdnlu.errors import KdnluError
from kdnlu.rundir import atomic_write, atomic_write_text, staged_dir

WEIGHTS = "model.safetensors"
STATE = "trainer_state.json"
TRAINING_STATE = "training.pt"


def save_checkpoint(
    folder: Path,
    model: nn.Module,
    state: dict[str, Any],
    training: dict[str, Any] | None = None,
) -> None:
    """Write ``folder`` (weights + state, and the loop's ``training`` state for exact resume,
    see ``kdnlu.resume``) so that a crash or a full disk leaves the previous one loadable."""
    try:
        with staged_dir(folder, replace=True) as staging:
            atomic_write(staging / WEIGHTS, lambda tmp: save_model(model, str(tmp)))
            atomic_write_text(staging / STATE, json.dumps(state, indent=2) + "\n")
            if training is not None:
                atomic_write(staging / TRAINING_STATE, lambda tmp: torch.save(training, tmp))
    # safetensors and torch.save report a full disk (or ulimit -f) as their own errors
    except (OSError, SafetensorError, RuntimeError) as exc:
        kept = "the previous one is kept" if folder.exists() else "there is no earlier one"
        raise KdnluError(
            f"cannot write checkpoint {folder} ({short_reason(exc)}); {kept}. Free disk space "
            "or fix the folder's permissions"
        ) from None


def short_reason(exc: BaseException) -> str:
    """What a failed write or read says, in a few words: the system's reason where it gives one."""
    if isinstance(exc, OSError):
        return str(exc.strerror or exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def load_weights(folder: Path, model: nn.Module) -> None:
    """Load safetensors weights from a checkpoint folder into ``model`` (strict); a file that
    is not safetensors (truncated, replaced) is a ``KdnluError`` naming it."""
    path = folder / WEIGHTS
    try:
        restore_projections(path, model)
        load_model(model, str(path))
    except SafetensorError as exc:
        raise KdnluError(
            f"{path} is not a readable safetensors file (truncated or replaced?): "
            f"{short_reason(exc)}"
        ) from None


def restore_projections(path: Path, model: nn.Module) -> None:
    """Give ``model`` the learned projections of intermediate-layer distillation that the
    weights at ``path`` hold and it lacks (a student loaded to predict or export), so a strict
    load fits; they take no part in predictions."""
    from safetensors import safe_open

    projections = getattr(model, "projections", None)
    if projections is None:
        return
    with safe_open(str(path), "pt") as fh:
        shapes = {
            name: fh.get_slice(name).get_shape()
            for name in fh.keys()
            if name.startswith("projections.") and name.endswith(".weight")
        }
    for name, (out_width, in_width) in shapes.items():
        key = name.split(".")[1]
        if key not in projections:
            projections[key] = nn.Linear(in_width, out_width)
