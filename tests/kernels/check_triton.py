"""Run by tests/test_kernels.py in a child process with TRITON_INTERPRET=1: the Triton kernel
against the plain reference on small shapes (the interpreter is slow). Exits non-zero on the
first mismatch."""

import itertools
import os
import sys
import warnings

assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
warnings.filterwarnings("ignore", category=RuntimeWarning)  # -inf arithmetic in masked lanes

import torch  # noqa: E402

from kdnlu.kernels import pick_backend, soft_cross_entropy  # noqa: E402
from kdnlu.kernels.reference import dense_target, reference_soft_cross_entropy  # noqa: E402


def targets(kind: str, n: int, v: int, dtype: torch.dtype) -> dict:
    if kind == "probs":
        return {"target_probs": torch.softmax(torch.randn(n, v), -1).to(dtype)}
    if kind == "logits":
        return {"teacher_logits": torch.randn(n, 3, v).to(dtype)}
    k = min(4, v)
    return {"topk_ids": torch.randint(0, v, (n, k)), "topk_probs": (torch.rand(n, k) / k).to(dtype)}


def main() -> int:
    torch.manual_seed(0)
    assert pick_backend(torch.zeros(1, 2), 0.0, "auto") == "triton"
    cases = itertools.product(
        (2, 3, 1000, 2500),  # 2500 > one block of 2048: the online softmax spans blocks
        ("probs", "logits", "topk"),
        ((1.0, 0.0), (2.0, 0.5), (4.0, 1.0)),
        ("mean", "sum", "none"),
        (torch.float32, torch.bfloat16),
    )
    count = 0
    for v, kind, (temperature, alpha), reduction, dtype in cases:
        if v >= 1000 and (reduction != "mean" or dtype != torch.float32) and kind != "logits":
            continue  # large rows: fewer combinations, the interpreter is slow
        n = 3
        z = torch.randn(n, v).to(dtype).requires_grad_()
        labels = torch.randint(0, v, (n,))
        labels[1] = -100
        kw = targets(kind, n, v, dtype)
        out = soft_cross_entropy(
            z,
            temperature=temperature,
            hard_labels=labels,
            alpha=alpha,
            reduction=reduction,
            backend="triton",
            **kw,
        )
        ref = reference_soft_cross_entropy(
            z,
            dense_target(v, temperature=temperature, **kw),
            temperature,
            labels,
            alpha,
            -100,
            reduction,
        )
        w = torch.randn_like(out)
        (g,) = torch.autograd.grad((out * w).sum(), z)
        (g_ref,) = torch.autograd.grad((ref * w).sum(), z)
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        where = f"V={v} {kind} T={temperature} alpha={alpha} {reduction} {dtype}"
        if not torch.allclose(out.float(), ref.float(), atol=tol, rtol=tol):
            print(f"loss differs at {where}: {out} vs {ref}")
            return 1
        if g.dtype != dtype or not torch.allclose(g.float(), g_ref.float(), atol=tol, rtol=tol):
            print(f"gradient differs at {where}: max {(g.float() - g_ref.float()).abs().max()}")
            return 1
        count += 1
    out = soft_cross_entropy(z, target_probs=torch.softmax(torch.randn(n, v), -1), backend="triton")
    out.backward(retain_graph=True)
    try:
        out.backward()
    except RuntimeError as exc:
        assert "can be backpropagated once" in str(exc)
    else:
        print("a second backward was not refused")
        return 1
    print(f"triton kernel matches the reference in {count} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
