"""The fused soft cross-entropy op: every backend against the plain reference."""

import itertools
import sys

import pytest
import torch

from conftest import REPO, run_python
from kdnlu.kernels import pick_backend, soft_cross_entropy, triton_available
from kdnlu.kernels.reference import dense_target, reference_soft_cross_entropy


def targets(kind: str, n: int, v: int, dtype: torch.dtype) -> dict:
    if kind == "probs":
        return {"target_probs": torch.softmax(torch.randn(n, v), -1).to(dtype)}
    if kind == "logits":
        return {"teacher_logits": torch.randn(n, 3, v).to(dtype)}
    k = min(8, v)
    return {"topk_ids": torch.randint(0, v, (n, k)), "topk_probs": (torch.rand(n, k) / k).to(dtype)}


CASES = list(
    itertools.product(
        (2, 3, 1000, 30522),
        ("probs", "logits", "topk"),
        (torch.float32, torch.bfloat16),
    )
)


def check_against_reference(
    vocab: int, kind: str, dtype: torch.dtype, backend: str, device: str
) -> None:
    """Every temperature/alpha/reduction combination, with ignored rows, values and gradients."""
    torch.manual_seed(vocab)
    n = 6 if vocab > 1000 else 24
    kw = {k: v.to(device) for k, v in targets(kind, n, vocab, dtype).items()}
    labels = torch.randint(0, vocab, (n,), device=device)
    labels[::5] = -100  # ignored rows
    for (temperature, alpha), reduction in itertools.product(
        ((1.0, 0.0), (2.0, 0.5), (4.0, 1.0), (2.0, 0.0)), ("mean", "sum", "none")
    ):
        z = (3 * torch.randn(n, vocab, device=device)).to(dtype).requires_grad_()
        out = soft_cross_entropy(
            z,
            temperature=temperature,
            hard_labels=labels,
            alpha=alpha,
            reduction=reduction,
            backend=backend,
            **kw,
        )
        target = dense_target(vocab, temperature=temperature, **kw)
        ref = reference_soft_cross_entropy(z, target, temperature, labels, alpha, -100, reduction)
        w = torch.randn_like(out)
        (grad,) = torch.autograd.grad((out * w).sum(), z)
        (expected,) = torch.autograd.grad((ref * w).sum(), z)
        fp32 = 1e-5 if backend == "torch" else 1e-4  # GPU exp/log differ in the last bits
        tol = fp32 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(out.float(), ref.float(), atol=tol, rtol=tol)
        assert grad.dtype == dtype
        torch.testing.assert_close(grad.float(), expected.float(), atol=tol, rtol=tol)
        if reduction == "none":
            assert (out[labels == -100] == 0).all()
            assert (grad[labels == -100] == 0).all()


@pytest.mark.parametrize(("vocab", "kind", "dtype"), CASES, ids=lambda x: str(x))
def test_torch_backend_matches_the_reference(vocab: int, kind: str, dtype: torch.dtype) -> None:
    check_against_reference(vocab, kind, dtype, "torch", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("vocab", "kind", "dtype"), CASES, ids=lambda x: str(x))
def test_triton_kernel_on_the_gpu_matches_the_reference(
    vocab: int, kind: str, dtype: torch.dtype
) -> None:
    check_against_reference(vocab, kind, dtype, "triton", "cuda")


def test_torch_backend_works_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    from kdnlu.kernels import torch_backend

    monkeypatch.setattr(torch_backend, "CHUNK_ELEMENTS", 64)  # 64 // 50 = one row per chunk
    z = torch.randn(7, 50, requires_grad=True)
    teacher = torch.randn(7, 2, 50)
    out = soft_cross_entropy(z, teacher_logits=teacher, temperature=2.0, backend="torch")
    ref = reference_soft_cross_entropy(
        z, dense_target(50, teacher_logits=teacher, temperature=2.0), 2.0
    )
    torch.testing.assert_close(out, ref)
    (g,) = torch.autograd.grad(out, z)
    (g_ref,) = torch.autograd.grad(ref, z)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.skipif(not triton_available(), reason="triton is not installed")
def test_triton_kernel_matches_the_reference_in_the_interpreter() -> None:
    proc = run_python(
        [str(REPO / "tests" / "kernels" / "check_triton.py")], REPO, TRITON_INTERPRET="1"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "triton kernel matches the reference in" in proc.stdout


def test_backend_choice() -> None:
    cpu = torch.zeros(2, 3)
    assert pick_backend(cpu, 0.5, "auto") == "torch"  # no CUDA, no interpreter: torch
    assert pick_backend(cpu, 0.5, "torch") == "torch"
    with pytest.raises(RuntimeError, match=r"^the triton kernel cannot run: "):
        pick_backend(cpu, 0.5, "triton")
    with pytest.raises(RuntimeError, match=r"^the apex kernel does not apply: it needs apex"):
        pick_backend(cpu, 1.0, "apex")
    with pytest.raises(ValueError, match="kernel backend must be one of auto, triton, apex, torch"):
        pick_backend(cpu, 0.0, "cuda")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give exactly one teacher target"),
        (
            {"target_probs": torch.zeros(2, 4)},
            r"target_probs must be \[N, V\] = \[2, 3\], got \[2, 4\]",
        ),
        ({"teacher_logits": torch.zeros(2, 3)}, r"teacher_logits must be \[N, M, V\]"),
        ({"topk_ids": torch.zeros(2, 1, dtype=torch.long)}, "needs both topk_ids and topk_probs"),
        (
            {"target_probs": torch.zeros(2, 3), "alpha": 0.5},
            "alpha > 0 mixes in the hard-label loss",
        ),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        soft_cross_entropy(torch.zeros(2, 3), backend="torch", **kwargs)


def test_no_n_by_v_tensor_is_kept_for_backward() -> None:
    z = torch.randn(16, 1000, requires_grad=True)
    probs = torch.softmax(torch.randn(16, 1000), -1)
    out = soft_cross_entropy(z, target_probs=probs, temperature=2.0, backend="torch")
    saved = [t for t in out.grad_fn.saved_tensors if t is not None]
    # the inputs themselves and per-row values (logsumexp, target mass): no softmax or
    # gradient made in forward is held
    inputs = [t for t in saved if t.data_ptr() in (z.data_ptr(), probs.data_ptr())]
    per_row = [t for t in saved if t.shape == (16,)]
    assert len(inputs) == 2 and len(per_row) == 2 and len(saved) == 4


def test_apex_backend_wiring_with_a_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """apex cannot be installed here: a stand-in with apex's interface checks our side."""
    import types

    from kdnlu.kernels import apex_backend

    class StandIn:
        @staticmethod
        def apply(logits, labels, smoothing, padding_idx, half_to_float):
            assert (smoothing, padding_idx) == (0.0, -1)
            return torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")

    module = types.ModuleType("apex.contrib.xentropy")
    module.SoftmaxCrossEntropyLoss = StandIn
    monkeypatch.setitem(sys.modules, "apex.contrib.xentropy", module)
    z = torch.randn(5, 7)
    labels = torch.tensor([1, -100, 3, 6, 0])
    out = apex_backend.apex_cross_entropy(z, labels, -100, "mean")
    ref = reference_soft_cross_entropy(z, torch.zeros(5, 7), 1.0, labels, 1.0, -100, "mean")
    torch.testing.assert_close(out, ref)


def test_compiled_chunks_match_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large inputs run the chunk functions through torch.compile (here made to apply to a
    small one); the result is the same."""
    from kdnlu.kernels import torch_backend

    monkeypatch.setattr(torch_backend, "COMPILE_MIN_ELEMENTS", 0)
    monkeypatch.setattr(torch_backend, "CHUNK_ELEMENTS", 300)  # chunks of 3 rows, then 1
    monkeypatch.setattr(torch_backend, "_COMPILED", {})
    z = torch.randn(10, 100, requires_grad=True)
    labels = torch.tensor([1, 2, -100, 4, 5, 6, 7, 8, 9, 0])
    probs = torch.softmax(torch.randn(10, 100), -1)
    out = soft_cross_entropy(
        z, target_probs=probs, temperature=2.0, hard_labels=labels, alpha=0.5, backend="torch"
    )
    ref = reference_soft_cross_entropy(z, probs, 2.0, labels, 0.5)
    torch.testing.assert_close(out, ref)
    (g,) = torch.autograd.grad(out, z)
    (g_ref,) = torch.autograd.grad(ref, z)
    torch.testing.assert_close(g, g_ref)
    assert torch_backend._compile_failed or set(torch_backend._COMPILED) == {
        "soft_loss",
        "hard_loss",
        "soft_grad",
        "hard_grad",
    }
