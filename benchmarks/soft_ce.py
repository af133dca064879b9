"""Soft cross-entropy, forward + backward: plain eager torch, torch.compile of it, our torch
backend, and our Triton kernel (CUDA only), measured side by side in one run.

    python benchmarks/soft_ce.py [--rows 4096] [--vocab 30522] [--temperature 2] [--repeats 5]

Each variant runs in its own child process, for float32 and bfloat16 logits: the median time of
``--repeats`` forward + backward passes (after one warm-up), and the peak memory it adds on top
of its inputs (CPU: the child's peak RSS minus its RSS once the inputs exist; CUDA: the peak of
torch's allocator minus the inputs), printed as a multiple of the logits tensor's size. The
target is dense teacher probabilities [rows, vocab].
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from bench_cli import script_parser

VARIANTS = ("eager", "compiled", "ours-torch", "ours-triton")


def eager_loss(z: torch.Tensor, p: torch.Tensor, temperature: float) -> torch.Tensor:
    log_q = torch.log_softmax(z.float() / temperature, -1)
    return temperature**2 * -(p * log_q).sum(-1).mean()


def current_rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def run_variant(
    variant: str, rows: int, vocab: int, dtype: str, temperature: float, repeats: int
) -> dict:
    from kdnlu.kernels import soft_cross_entropy

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if variant == "ours-triton" and device != "cuda":
        return {"skipped": "needs a CUDA device"}
    torch.manual_seed(0)
    z = torch.randn(rows, vocab, device=device).to(getattr(torch, dtype)).requires_grad_()
    p = torch.softmax(torch.randn(rows, vocab, device=device), -1)
    if variant == "eager":
        fn = lambda: eager_loss(z, p, temperature)  # noqa: E731
    elif variant == "liger-kl":
        try:
            from liger_kernel.transformers import LigerKLDIVLoss
        except ImportError:
            return {"skipped": "liger-kernel is not installed (pip install liger-kernel)"}
        if device != "cuda":
            return {"skipped": "Liger-Kernel needs a CUDA device"}
        kl = LigerKLDIVLoss(reduction="batchmean")  # KL(p || q): soft CE less p's own entropy
        fn = lambda: temperature**2 * kl(torch.log_softmax(z.float() / temperature, -1), p)  # noqa: E731
    elif variant == "compiled":
        try:
            compiled = torch.compile(eager_loss)
            compiled(z, p, temperature).backward()
        except Exception as exc:  # no compiler toolchain, or an unsupported backend
            return {"skipped": f"torch.compile failed: {type(exc).__name__}: {str(exc)[:120]}"}
        fn = lambda: compiled(z, p, temperature)  # noqa: E731
    else:
        backend = "torch" if variant == "ours-torch" else "triton"
        fn = lambda: soft_cross_entropy(  # noqa: E731
            z, target_probs=p, temperature=temperature, backend=backend
        )
    fn().backward()  # warm-up
    z.grad = None
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = current_rss()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        z.grad = None
    if device == "cuda":
        extra = torch.cuda.max_memory_allocated() - base
    else:
        extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {
        "seconds": statistics.median(times),
        "extra_vs_logits": extra / (z.numel() * z.element_size()),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
    }


def run_variant_isolated(
    variant: str, rows: int, vocab: int, dtype: str, temperature: float, repeats: int
) -> dict:
    """``run_variant`` in a child process of its own, so its peak memory is its alone."""
    command = [
        sys.executable, __file__, "--rows", str(rows), "--vocab", str(vocab),
        "--temperature", str(temperature), "--repeats", str(repeats), "--child", variant, dtype,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    if out.returncode == 0 and lines:
        return json.loads(lines[-1])
    return {"skipped": f"failed: {out.stderr.strip().splitlines()[-1:]}"}


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, dtype = args.child
        result = run_variant(variant, args.rows, args.vocab, dtype, args.temperature, args.repeats)
        print(json.dumps(result))
        return
    print(
        f"soft cross-entropy forward + backward, {args.rows} x {args.vocab}, T = {args.temperature}"
    )
    print("| logits | variant | time | vs eager | extra peak memory (x logits) |")
    print("| --- | --- | --- | --- | --- |")
    for dtype in ("float32", "bfloat16"):
        results = {
            variant: run_variant_isolated(
                variant, args.rows, args.vocab, dtype, args.temperature, args.repeats
            )
            for variant in VARIANTS
        }
        eager = results["eager"].get("seconds")
        for variant, r in results.items():
            if "skipped" in r:
                print(f"| {dtype} | {variant} | {r['skipped']} | | |")
                continue
            ratio = f"{eager / r['seconds']:.2f}x" if eager else ""
            print(f"| {dtype} | {variant} | {r['seconds'] * 1e3:.0f} ms | {ratio} | "
                  f"{r['extra_vs_logits']:.2f} |")  # fmt: skip
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"device: {device}; torch {torch.__version__}")


if __name__ == "__main__":
    main()
