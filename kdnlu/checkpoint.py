"""Checkpoints: safetensors weights plus a JSON state, swapped into place atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_model, save_model
from torch import nn

from kdnlu.rundir import atomic_write, atomic_write_text, staged_dir

WEIGHTS = "model.safetensors"
STATE = "trainer_state.json"


def save_checkpoint(folder: Path, model: nn.Module, state: dict[str, Any]) -> None:
    """Write ``folder`` (weights + state) so that a crash leaves the previous one loadable."""
    with staged_dir(folder, replace=True) as staging:
        atomic_write(staging / WEIGHTS, lambda tmp: save_model(model, str(tmp)))
        atomic_write_text(staging / STATE, json.dumps(state, indent=2) + "\n")


def load_weights(folder: Path, model: nn.Module) -> None:
    """Load safetensors weights from a checkpoint folder into ``model`` (strict)."""
    load_model(model, str(folder / WEIGHTS))
