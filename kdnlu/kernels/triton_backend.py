"""The Triton backend: one program per row computes the row's loss and writes its gradient.

Pass 1 runs over the row's vocabulary in blocks with an online softmax (running maximum and
sum) for ``z / T`` (and ``z`` for the hard term), accumulating ``sum p * z / T`` and ``sum p``;
pass 2 runs over the blocks again and writes ``(1 - alpha) * T * (sum(p) * softmax(z / T) - p) +
alpha * (softmax(z) - onehot(y))``, scaled for the reduction, into the gradient buffer. Forward thus
writes the one ``N x V`` buffer backward returns (multiplied in place by the incoming
gradient); no other ``N x V`` tensor is made. Teacher logits ``[N, M, V]`` first get their
per-teacher log-sum-exp from a small kernel; a top-k target's few entries are handled with
torch gathers and one ``scatter_add_`` on the gradient.

Runs on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1`` (slowly: for tests).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from kdnlu.kernels.torch_backend import SoftTarget, _reduce, _row_scale, _valid_rows

KIND_PROBS, KIND_LOGITS, KIND_TOPK = 0, 1, 2


@triton.jit
def _teacher_lse_kernel(t_ptr, stride_tn, stride_tm, lse_ptr, V, inv_temp, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    m = tl.program_id(1)
    n_teachers = tl.num_programs(1)
    base = t_ptr + row.to(tl.int64) * stride_tn + m * stride_tm
    run_max = -float("inf")
    run_sum = 0.0
    for start in range(0, V, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        x = tl.load(base + offs, mask=offs < V, other=-float("inf")).to(tl.float32) * inv_temp
        new_max = tl.maximum(run_max, tl.max(x, 0))
        run_sum = run_sum * tl.exp(run_max - new_max) + tl.sum(tl.exp(x - new_max), 0)
        run_max = new_max
    tl.store(lse_ptr + row * n_teachers + m, run_max + tl.log(run_sum))


@triton.jit
def _target_block(
    p_row, t_row, stride_tm, tlse_row, n_teachers, offs, mask, inv_temp, KIND: tl.constexpr
):
    """The teacher probabilities of one block of a row (0 outside the row, and for top-k), from
    the row's pointers into the targets: probabilities, teacher logits and their log-sum-exps."""
    if KIND == 0:
        p = tl.load(p_row + offs, mask=mask, other=0.0).to(tl.float32)
    elif KIND == 1:
        p = tl.zeros(offs.shape, dtype=tl.float32)
        for m in range(n_teachers):
            lse = tl.load(tlse_row + m)
            t = tl.load(t_row + m * stride_tm + offs, mask=mask, other=-float("inf"))
            p += tl.exp(t.to(tl.float32) * inv_temp - lse)
        p = p / n_teachers
    else:
        p = tl.zeros(offs.shape, dtype=tl.float32)
    return p


@triton.jit
def _soft_ce_kernel(
    z_ptr,
    stride_z,
    g_ptr,
    stride_g,
    loss_ptr,
    p_ptr,
    stride_p,
    t_ptr,
    stride_tn,
    stride_tm,
    tlse_ptr,
    n_teachers,
    topk_dot_ptr,
    topk_sum_ptr,
    y_ptr,
    scale_ptr,
    V,
    inv_temp,
    temp,
    alpha,
    ignore_index,
    KIND: tl.constexpr,
    HAS_Y: tl.constexpr,
    HARD: tl.constexpr,
    WRITE_GRAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0)
    z_row = z_ptr + row.to(tl.int64) * stride_z
    p_row = p_ptr + row.to(tl.int64) * stride_p
    t_row = t_ptr + row.to(tl.int64) * stride_tn
    tlse_row = tlse_ptr + row * n_teachers
    y = -1
    if HAS_Y:
        y = tl.load(y_ptr + row).to(tl.int32)
    max_t = -float("inf")
    sum_t = 0.0
    max_1 = -float("inf")
    sum_1 = 0.0
    dot = 0.0  # sum p * z / T
    p_sum = 0.0
    z_y = 0.0
    for start in range(0, V, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < V
        z = tl.load(z_row + offs, mask=mask, other=-float("inf")).to(tl.float32)
        zt = z * inv_temp
        new_max = tl.maximum(max_t, tl.max(zt, 0))
        sum_t = sum_t * tl.exp(max_t - new_max) + tl.sum(tl.exp(zt - new_max), 0)
        max_t = new_max
        if HARD:
            new_max1 = tl.maximum(max_1, tl.max(z, 0))
            sum_1 = sum_1 * tl.exp(max_1 - new_max1) + tl.sum(tl.exp(z - new_max1), 0)
            max_1 = new_max1
            z_y += tl.sum(tl.where(offs == y, z, 0.0), 0)
        p = _target_block(p_row, t_row, stride_tm, tlse_row, n_teachers, offs, mask, inv_temp, KIND)
        dot += tl.sum(tl.where(mask, p * zt, 0.0), 0)
        p_sum += tl.sum(p, 0)
    if KIND == 2:
        dot = tl.load(topk_dot_ptr + row)
        p_sum = tl.load(topk_sum_ptr + row)
    lse_t = max_t + tl.log(sum_t)
    loss = (1.0 - alpha) * temp * temp * (lse_t * p_sum - dot)
    lse_1 = 0.0
    if HARD:
        lse_1 = max_1 + tl.log(sum_1)
        loss += alpha * (lse_1 - z_y)
    scale = tl.load(scale_ptr + row)
    if HAS_Y:
        loss = tl.where(y != ignore_index, loss, 0.0)
        scale = tl.where(y != ignore_index, scale, 0.0)
    tl.store(loss_ptr + row, loss)
    if WRITE_GRAD:
        g_row = g_ptr + row.to(tl.int64) * stride_g
        for start in range(0, V, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            mask = offs < V
            z = tl.load(z_row + offs, mask=mask, other=0.0).to(tl.float32)
            p = _target_block(
                p_row, t_row, stride_tm, tlse_row, n_teachers, offs, mask, inv_temp, KIND
            )
            g = (1.0 - alpha) * temp * (p_sum * tl.exp(z * inv_temp - lse_t) - p)
            if HARD:
                g += alpha * (tl.exp(z - lse_1) - tl.where(offs == y, 1.0, 0.0))
            tl.store(g_row + offs, (g * scale).to(g_ptr.dtype.element_ty), mask=mask)


def _block(vocab: int) -> int:
    return min(triton.next_power_of_2(vocab), 2048)


class _TritonSoftCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: torch.Tensor,
        hard_labels: torch.Tensor | None,
        settings: tuple[str, float, float, int, str],
        *target_tensors: torch.Tensor,
    ) -> torch.Tensor:
        kind, temperature, alpha, ignore_index, reduction = settings
        z = logits.contiguous()
        n, v = z.shape
        device = z.device
        valid = _valid_rows(n, hard_labels, ignore_index, device)
        # each row's share of the reduced loss (0 for ignored rows), as the torch backend's
        scale = _row_scale(torch.ones(n, device=device), valid, reduction).contiguous()
        losses = torch.empty(n, dtype=torch.float32, device=device)
        write_grad = logits.requires_grad
        grad = torch.empty_like(z) if write_grad else z.new_empty((1, 1))
        dummy = torch.zeros(1, dtype=torch.float32, device=device)
        p = t = tlse = topk_dot = topk_sum = dummy
        stride_p = stride_tn = stride_tm = n_teachers = 0
        block = _block(v)
        code = {"probs": KIND_PROBS, "logits": KIND_LOGITS, "topk": KIND_TOPK}[kind]
        if kind == "probs":
            p = target_tensors[0].contiguous()
            stride_p = p.stride(0)
        elif kind == "logits":
            t = target_tensors[0].contiguous()
            stride_tn, stride_tm, n_teachers = t.stride(0), t.stride(1), t.shape[1]
            tlse = torch.empty(n, n_teachers, dtype=torch.float32, device=device)
            _teacher_lse_kernel[(n, n_teachers)](
                t, stride_tn, stride_tm, tlse, v, 1.0 / temperature, BLOCK=block
            )
        else:
            ids, probs = target_tensors
            picked = z.gather(1, ids.long()).float()
            topk_dot = (picked * probs.float()).sum(-1).div(temperature).contiguous()
            topk_sum = probs.float().sum(-1).contiguous()
        y = hard_labels.contiguous() if hard_labels is not None else dummy
        _soft_ce_kernel[(n,)](
            z, z.stride(0), grad, grad.stride(0), losses,
            p, stride_p, t, stride_tn, stride_tm, tlse, n_teachers,
            topk_dot, topk_sum, y, scale,
            v, 1.0 / temperature, float(temperature), float(alpha), int(ignore_index),
            KIND=code, HAS_Y=hard_labels is not None, HARD=alpha > 0,
            WRITE_GRAD=write_grad, BLOCK=block,
        )  # fmt: skip
        if write_grad and kind == "topk":
            ids, probs = target_tensors
            delta = -(1 - alpha) * temperature * probs.float() * scale[:, None]
            grad.scatter_add_(1, ids.long(), delta.to(grad.dtype))
        ctx.reduction = reduction
        ctx.n_targets = len(target_tensors)
        ctx.used = False
        ctx.save_for_backward(grad)
        return _reduce(losses, valid, reduction)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        if ctx.used:
            raise RuntimeError(
                "the fused soft cross-entropy writes its gradient in forward and can be "
                "backpropagated once; use backend='torch' to backpropagate twice"
            )
        ctx.used = True
        (grad,) = ctx.saved_tensors
        if ctx.reduction == "none":
            grad.mul_(grad_out[:, None].to(grad.dtype))
        elif grad_out.item() != 1.0:
            grad.mul_(grad_out.to(grad.dtype))
        return (grad, None, None, *(None for _ in range(ctx.n_targets)))


def triton_soft_cross_entropy(
    logits: torch.Tensor,
    target: SoftTarget,
    temperature: float,
    hard_labels: torch.Tensor | None,
    alpha: float,
    ignore_index: int,
    reduction: str,
) -> torch.Tensor:
    settings = (target.kind, float(temperature), float(alpha), int(ignore_index), reduction)
    return _TritonSoftCrossEntropy.apply(logits, hard_labels, settings, *target.tensors)
