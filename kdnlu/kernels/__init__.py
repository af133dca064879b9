"""Fused soft cross-entropy: one public op, several backends chosen at run time.

``soft_cross_entropy(logits, ...)`` computes, for each row ``i`` of student logits ``z [N, V]``,

    loss_i = (1 - alpha) * T^2 * H(p_i, softmax(z_i / T)) + alpha * CE(z_i, y_i)

where ``p_i`` is the teacher target: probabilities ``[N, V]`` (``target_probs``), the mean of
``softmax(teacher / T)`` over teachers given as logits ``[N, M, V]`` (``teacher_logits``), or a
sparse top-k distribution (``topk_ids`` and ``topk_probs``, ``[N, K]``). The hard term uses
``hard_labels`` (needed when ``alpha > 0``); rows whose hard label is ``ignore_index`` count for
nothing. Reductions: ``mean`` over the rows that count, ``sum``, or ``none`` (one value per row).

Backends (``backend=``): ``triton`` (CUDA tensors, or any tensor under ``TRITON_INTERPRET=1``),
``torch`` (chunked over rows; the gradient is recomputed in backward, so no ``N x V``
intermediate is kept), and ``apex`` (its fused cross-entropy, for the pure hard-label case
``alpha = 1`` on CUDA when apex is installed). ``auto`` picks Triton where it can run, then apex
where it applies, else torch. Every backend returns the same values and gradients as
``reference_soft_cross_entropy``.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Literal

import torch

from kdnlu.kernels.reference import reference_soft_cross_entropy
from kdnlu.kernels.torch_backend import SoftTarget, torch_soft_cross_entropy

Backend = Literal["auto", "triton", "apex", "torch"]
Reduction = Literal["mean", "sum", "none"]
BACKENDS = ("auto", "triton", "apex", "torch")

__all__ = ["BACKENDS", "SoftTarget", "reference_soft_cross_entropy", "soft_cross_entropy"]


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def interpreter_mode() -> bool:
    return os.environ.get("TRITON_INTERPRET", "") not in ("", "0")


def apex_available() -> bool:
    try:
        return importlib.util.find_spec("apex.contrib.xentropy") is not None
    except ModuleNotFoundError:
        return False


def pick_backend(logits: torch.Tensor, alpha: float, backend: Backend) -> str:
    """The backend that runs: the one asked for (checked), or for ``auto`` the fastest that
    can run these tensors."""
    if backend not in BACKENDS:
        raise ValueError(f"kernel backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    triton_runs = triton_available() and (logits.is_cuda or interpreter_mode())
    apex_applies = apex_available() and logits.is_cuda and alpha == 1.0
    if backend == "auto":
        return "triton" if triton_runs else "apex" if apex_applies else "torch"
    if backend == "triton" and not triton_runs:
        why = "triton is not installed" if not triton_available() else "the tensors are on CPU"
        raise RuntimeError(
            f"the triton kernel cannot run: {why} (it needs CUDA tensors, or TRITON_INTERPRET=1 "
            "set before triton is imported)"
        )
    if backend == "apex" and not apex_applies:
        raise RuntimeError(
            "the apex kernel does not apply: it needs apex installed, CUDA tensors and alpha = 1 "
            "(hard labels only)"
        )
    return backend


def soft_cross_entropy(
    logits: torch.Tensor,
    *,
    target_probs: torch.Tensor | None = None,
    teacher_logits: torch.Tensor | None = None,
    topk_ids: torch.Tensor | None = None,
    topk_probs: torch.Tensor | None = None,
    temperature: float = 1.0,
    hard_labels: torch.Tensor | None = None,
    alpha: float = 0.0,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
    backend: Backend = "auto",
) -> torch.Tensor:
    """Soft (and optionally hard) cross-entropy of student ``logits [N, V]``; see the module."""
    target = SoftTarget.of(
        logits, target_probs, teacher_logits, topk_ids, topk_probs, hard_labels, alpha
    )
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be mean, sum or none, got {reduction!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    chosen = pick_backend(logits, alpha, backend)
    if chosen == "triton":
        from kdnlu.kernels.triton_backend import triton_soft_cross_entropy

        return triton_soft_cross_entropy(
            logits, target, temperature, hard_labels, alpha, ignore_index, reduction
        )
    if chosen == "apex":
        from kdnlu.kernels.apex_backend import apex_cross_entropy

        assert hard_labels is not None
        return apex_cross_entropy(logits, hard_labels, ignore_index, reduction)
    return torch_soft_cross_entropy(
        logits, target, temperature, hard_labels, alpha, ignore_index, reduction
    )
