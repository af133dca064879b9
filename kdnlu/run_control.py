"""How a training process runs: seeds, device, autocast, deterministic kernels, Ctrl-C."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from kdnlu.errors import KdnluError

log = logging.getLogger("kdnlu.train")


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise KdnluError("train.device is 'cuda' but torch sees no CUDA device; use auto or cpu")
    return torch.device(choice)


def amp_dtype_for(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 autocast on CPU, fp16 (with a GradScaler) on GPU; None when off."""
    if not enabled:
        return None
    return torch.float16 if device.type == "cuda" else torch.bfloat16


@contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """With ``enabled``, make torch pick deterministic kernels (and fail on ops that have none)
    for the duration, so a GPU run repeats bit for bit; the previous settings come back after."""
    if not enabled:
        yield
        return
    enabled_before = torch.are_deterministic_algorithms_enabled()
    warn_only_before = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark_before = torch.backends.cudnn.benchmark
    workspace_before = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if workspace_before is None:  # cuBLAS needs it to repeat (before its first use)
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled_before, warn_only=warn_only_before)
        torch.backends.cudnn.benchmark = benchmark_before
        if workspace_before is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


class InterruptRequest:
    """Whether Ctrl-C asked the run to stop: calling it tells; ``handle`` is the SIGINT handler."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("interrupt: saving checkpoints/last after this step (Ctrl-C again: stop now)")


@contextmanager
def interrupt_request() -> Iterator[Callable[[], bool]]:
    """While training: a first Ctrl-C (SIGINT) asks the loop to save and stop after the current
    step; a second one stops at once. Yields a function telling whether one was asked."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    request = InterruptRequest()
    previous = signal.signal(signal.SIGINT, request.handle)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)
