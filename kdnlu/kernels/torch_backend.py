"""The torch backend: rows in chunks, the gradient recomputed in backward.

Forward keeps no ``N x V`` intermediate (each chunk's softmax is dropped after its rows' losses
are summed), only each row's logsumexp(z / T) and sum(p); backward recomputes the chunk's
softmax from them in one pass and writes the gradient into the one ``N x V`` buffer it must
return. Peak extra memory is that buffer plus a few chunk-sized
temporaries (``CHUNK_ELEMENTS`` floats each). For large inputs (``COMPILE_MIN_ELEMENTS``) the
per-chunk functions run through ``torch.compile`` where it works, which fuses their passes;
otherwise, or if compiling fails, they run eagerly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger("kdnlu.kernels")

CHUNK_ELEMENTS = 1 << 23  # floats per chunk temporary: 32 MB in float32


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(n) for n in t.shape) + "]"


@dataclass(frozen=True)
class SoftTarget:
    """The teacher side in one of three forms: ``probs [N, V]``, teacher ``logits [N, M, V]``
    or ``topk`` (``ids [N, K]`` and ``probs [N, K]``)."""

    kind: str
    tensors: tuple[torch.Tensor, ...]

    @classmethod
    def of(
        cls,
        logits: torch.Tensor,
        target_probs: torch.Tensor | None,
        teacher_logits: torch.Tensor | None,
        topk_ids: torch.Tensor | None,
        topk_probs: torch.Tensor | None,
        hard_labels: torch.Tensor | None,
        alpha: float,
    ) -> SoftTarget:
        """Check the shapes of the given target form (exactly one) against ``logits``."""
        if logits.ndim != 2:
            raise ValueError(f"logits must be [N, V], got {_shape(logits)}")
        n, v = logits.shape
        forms = {
            "probs": target_probs is not None,
            "logits": teacher_logits is not None,
            "topk": topk_ids is not None or topk_probs is not None,
        }
        if sum(forms.values()) != 1:
            raise ValueError(
                "give exactly one teacher target: target_probs, teacher_logits, or topk_ids "
                "with topk_probs"
            )
        if hard_labels is not None and hard_labels.shape != (n,):
            raise ValueError(f"hard_labels must be [N] = [{n}], got {_shape(hard_labels)}")
        if alpha > 0 and hard_labels is None:
            raise ValueError("alpha > 0 mixes in the hard-label loss: give hard_labels")
        if target_probs is not None:
            if target_probs.shape != (n, v):
                raise ValueError(
                    f"target_probs must be [N, V] = [{n}, {v}], got {_shape(target_probs)}"
                )
            return cls("probs", (target_probs,))
        if teacher_logits is not None:
            if teacher_logits.ndim != 3 or teacher_logits.shape[::2] != (n, v):
                raise ValueError(
                    f"teacher_logits must be [N, M, V] = [{n}, M, {v}], got "
                    f"{_shape(teacher_logits)}"
                )
            return cls("logits", (teacher_logits,))
        if topk_ids is None or topk_probs is None:
            raise ValueError("a top-k target needs both topk_ids and topk_probs")
        if topk_ids.ndim != 2 or topk_ids.shape != topk_probs.shape or len(topk_ids) != n:
            raise ValueError(
                f"topk_ids and topk_probs must both be [N, K] with N = {n}, got "
                f"{_shape(topk_ids)} and {_shape(topk_probs)}"
            )
        return cls("topk", (topk_ids, topk_probs))

    def dense(self, rows: slice, vocab: int, temperature: float) -> torch.Tensor:
        """The float32 target probabilities of ``rows``, ``[rows, V]``."""
        if self.kind == "probs":
            return self.tensors[0][rows].float()
        if self.kind == "logits":
            return torch.softmax(self.tensors[0][rows].float() / temperature, -1).mean(1)
        ids, probs = self.tensors
        out = torch.zeros(len(ids[rows]), vocab, device=ids.device)
        return out.scatter_add_(1, ids[rows].long(), probs[rows].float())


def _soft_loss(
    z: torch.Tensor, p: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows' T^2 * H(p, softmax(z / T)) in float32, with the rows' logsumexp(z / T) and sum(p)
    that backward reuses (``[rows]`` each), so that it makes one pass over the chunk."""
    zt = z.float() / t
    lse = torch.logsumexp(zt, -1)
    p_sum = p.sum(-1)
    return (p_sum * lse - (p * zt).sum(-1)) * t * t, lse, p_sum


def _hard_loss(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return -torch.log_softmax(z.float(), -1).gather(1, labels[:, None])[:, 0]


def _soft_grad(
    out: torch.Tensor,
    z: torch.Tensor,
    p: torch.Tensor,
    t: torch.Tensor,
    lse: torch.Tensor,
    p_sum: torch.Tensor,
    coef: torch.Tensor,
    scale: torch.Tensor,
) -> None:
    """``out = scale * coef * T * (sum(p) * softmax(z / T) - p)``, written in place (no chunk
    copy) in one pass, from forward's logsumexp; sum(p) < 1 for a top-k target."""
    q = torch.exp(z.float() / t - lse[:, None])
    out.copy_((q * p_sum[:, None] - p) * (coef * t * scale[:, None]))


def _hard_grad(
    out: torch.Tensor,
    z: torch.Tensor,
    labels: torch.Tensor,
    coef: torch.Tensor,
    scale: torch.Tensor,
) -> None:
    """``out += scale * coef * (softmax(z) - onehot(labels))``, in place."""
    q = torch.softmax(z.float(), -1)
    onehot = torch.zeros_like(q).scatter_(1, labels[:, None], 1.0)
    out.add_((q - onehot) * (coef * scale[:, None]))


_COMPILED: dict[str, Any] = {}
COMPILE_MIN_ELEMENTS = 1 << 24  # below this, compiling costs more than it saves
_compile_failed = False


def _fn(name: str, eager: Any, elements: int) -> Any:
    """``eager``, or its torch.compile version for large inputs when compiling works here."""
    # the grad functions write into views of the one gradient buffer (compiled, that is an
    # input mutation torch.compile keeps in place), which saves a copy of every chunk
    if _compile_failed or elements < COMPILE_MIN_ELEMENTS or not hasattr(torch, "compile"):
        return eager
    if name not in _COMPILED:
        _COMPILED[name] = torch.compile(eager, dynamic=False)  # full chunks, then the last
    compiled = _COMPILED[name]

    def run(*args: torch.Tensor) -> Any:
        global _compile_failed
        try:
            return compiled(*args)
        except Exception as exc:  # no C++ toolchain, an unsupported device, ...
            _compile_failed = True
            log.warning("torch.compile is unavailable (%s); soft cross-entropy runs eagerly", exc)
            return eager(*args)

    return run


class _SoftCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: torch.Tensor,
        hard_labels: torch.Tensor | None,
        settings: tuple[str, float, float, int, str],
        *target_tensors: torch.Tensor,
    ) -> torch.Tensor:
        kind, temperature, alpha, ignore_index, reduction = settings
        target = SoftTarget(kind, target_tensors)
        n, v = logits.shape
        device = logits.device
        valid = _valid_rows(n, hard_labels, ignore_index, device)
        losses = torch.zeros(n, dtype=torch.float32, device=device)
        lse = torch.empty(n, dtype=torch.float32, device=device)
        p_sum = torch.empty(n, dtype=torch.float32, device=device)
        t = torch.tensor(temperature, device=device)
        soft_loss = _fn("soft_loss", _soft_loss, n * v)
        hard_loss = _fn("hard_loss", _hard_loss, n * v)
        for rows in _chunks(n, v):
            z = logits[rows]
            soft, lse[rows], p_sum[rows] = soft_loss(z, target.dense(rows, v, temperature), t)
            loss = (1 - alpha) * soft
            if hard_labels is not None and alpha > 0:
                loss = loss + alpha * hard_loss(z, _safe(hard_labels[rows], ignore_index))
            losses[rows] = torch.where(valid[rows], loss, torch.zeros_like(loss))
        ctx.settings = settings
        ctx.save_for_backward(logits, hard_labels, lse, p_sum, *target_tensors)
        return _reduce(losses, valid, reduction)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        kind, temperature, alpha, ignore_index, reduction = ctx.settings
        logits, hard_labels, lse, p_sum, *target_tensors = ctx.saved_tensors
        target = SoftTarget(kind, tuple(target_tensors))
        n, v = logits.shape
        device = logits.device
        valid = _valid_rows(n, hard_labels, ignore_index, device)
        scale = _row_scale(grad_out, valid, reduction)
        t = torch.tensor(temperature, device=device)
        soft_coef = torch.tensor(1 - alpha, device=device)
        hard_coef = torch.tensor(alpha, device=device)
        soft_grad = _fn("soft_grad", _soft_grad, n * v)
        hard_grad = _fn("hard_grad", _hard_grad, n * v)
        grad = torch.empty_like(logits)
        for rows in _chunks(n, v):
            z, out = logits[rows], grad[rows]
            p = target.dense(rows, v, temperature)
            soft_grad(out, z, p, t, lse[rows], p_sum[rows], soft_coef, scale[rows])
            if hard_labels is not None and alpha > 0:
                labels = _safe(hard_labels[rows], ignore_index)
                hard_grad(out, z, labels, hard_coef, scale[rows])
        return (grad, None, None, *(None for _ in target_tensors))


def _chunks(n: int, v: int) -> list[slice]:
    step = max(1, CHUNK_ELEMENTS // max(1, v))
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


def _valid_rows(
    n: int, hard_labels: torch.Tensor | None, ignore_index: int, device: torch.device
) -> torch.Tensor:
    if hard_labels is None:
        return torch.ones(n, dtype=torch.bool, device=device)
    return hard_labels != ignore_index


def _safe(labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Labels usable as indices (ignored rows point at class 0; their loss is dropped)."""
    labels = labels.long()
    return torch.where(labels == ignore_index, torch.zeros_like(labels), labels)


def _reduce(losses: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / valid.sum().clamp(min=1)


def _row_scale(grad_out: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    """d(output)/d(loss_i) times the incoming gradient, per row (0 for ignored rows)."""
    mask = valid.float()
    if reduction == "none":
        return grad_out.float() * mask
    if reduction == "sum":
        return grad_out.float() * mask
    return grad_out.float() * mask / valid.sum().clamp(min=1)


def torch_soft_cross_entropy(
    logits: torch.Tensor,
    target: SoftTarget,
    temperature: float,
    hard_labels: torch.Tensor | None,
    alpha: float,
    ignore_index: int,
    reduction: str,
) -> torch.Tensor:
    settings = (target.kind, float(temperature), float(alpha), int(ignore_index), reduction)
    return _SoftCrossEntropy.apply(logits, hard_labels, settings, *target.tensors)
