"""The random generators' states as plain data (lists, ints, tensors) that ``torch.load``'s
safe loader reads back: python's ``random``, numpy's global generator, torch's CPU and CUDA."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


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


def global_generators() -> dict[str, Any]:
    """Every global generator's state: python's, numpy's and torch's."""
    return {"python": python_state(), "numpy": numpy_state(), **torch_generators()}


def set_global_generators(state: dict[str, Any]) -> None:
    set_python_state(state["python"])
    set_numpy_state(state["numpy"])
    set_torch_generators(state)
