"""The GPU path measured in one go: kernel tests, the fused soft cross-entropy against eager
torch, torch.compile and Liger-Kernel, training throughput in fp32 and bf16, a distillation step
against a plain one, and kdnlu against transformers' Trainer. Every figure goes to one JSON file
and a markdown summary.

    python benchmarks/gpu_check.py --out runs/gpu_check [--budget-s 480] [--smoke]

Stages run in order, each in its own process with a share of the time left; one that fails or
runs out of time is recorded as such and the next goes on. Without a CUDA device the CUDA-only
stages are skipped with the reason and the others run at CPU size, so the script is known to
work before a GPU is lent; ``--smoke`` makes every stage as small as possible (tests use it).
GLUE comes from the data-location rule ($KDNLU_DATA/glue, else ~/.cache/kdnlu/data/glue); where
it is absent the sample in tests/fixtures/glue stands in and the summary says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_cli import script_parser

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "fixtures" / "glue"
# a timed run: no evaluation (none would be timed), nothing cached between the runs compared
TIMED_RUN = ["train.eval_each_epoch=false", f"train.eval_every={10**9}", "train.token_cache=false"]
STAGES = ("kernel_tests", "soft_ce", "training", "distill_step", "vs_hf_trainer")


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def glue_root() -> tuple[str, str]:
    from kdnlu.datadir import glue_dir

    found = glue_dir()
    if (found.path / "RTE" / "train.tsv").is_file():
        return str(found.path), f"full GLUE at {found.path}"
    return str(SAMPLE), f"the GLUE sample (no full copy at {found.path})"


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stage_kernel_tests(smoke: bool) -> dict:
    if not cuda():
        return {"skipped": "no CUDA device (the CPU kernel tests run in the normal test suite)"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_kernels.py",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    return {"exit": proc.returncode, "summary": summary, "passed": proc.returncode == 0}


def copy_bandwidth(device: str) -> float:
    """Bytes per second of a large device-to-device copy (read + write), the achievable bound."""
    import torch

    x = torch.empty(256 * 2**20 // 4, device=device)
    y = torch.empty_like(x)
    for _ in range(2):
        y.copy_(x)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    sync()
    return 10 * 2 * x.numel() * x.element_size() / (time.perf_counter() - start)


def stage_soft_ce(smoke: bool) -> dict:
    """Forward + backward of each variant at the vocabulary shape and the GLUE shape."""
    soft_ce = load_benchmark("soft_ce")
    device = "cuda" if cuda() else "cpu"
    shapes = [(4096, 30522), (32, 3)] if device == "cuda" else [(512, 4096), (32, 3)]
    if smoke:
        shapes = [(64, 512)]
    variants = [*soft_ce.VARIANTS, "liger-kl"]
    dtypes = ("float32", "bfloat16")
    measure = soft_ce.run_variant_isolated
    if smoke:  # in this process, no torch.compile: the code path, not the figures
        variants, dtypes, measure = (
            [v for v in variants if v != "compiled"],
            ("float32",),
            (soft_ce.run_variant),
        )
    bandwidth = copy_bandwidth(device)
    rows = []
    for n, v in shapes:
        for dtype in dtypes:
            for variant in variants:
                result = measure(variant, n, v, dtype, 2.0, 2 if smoke else 5)
                elt = 4 if dtype == "float32" else 2
                moved = n * v * (2 * elt + 4)  # read logits and fp32 targets, write the gradient
                if "seconds" in result:
                    result["bandwidth_bound_s"] = moved / bandwidth
                    result["fraction_of_bound"] = moved / bandwidth / result["seconds"]
                rows.append({"rows": n, "vocab": v, "dtype": dtype, "variant": variant, **result})
    return {"device": device, "copy_bandwidth_GBps": bandwidth / 1e9, "results": rows}


def train_recipe(data_root: str, smoke: bool, steps: int, amp: bool, extra: list[str]) -> dict:
    """Train ``recipes/mtdnn_small.yaml`` (the tiny recipe in smoke mode) for ``steps`` steps;
    examples/s from the first to the last step, peak GPU memory where there is a GPU."""
    import torch

    from kdnlu.callbacks import Callback
    from kdnlu.recipe import load_recipe
    from kdnlu.trainer import train

    class Clock(Callback):
        def on_train_start(self, state, model) -> None:
            self.start, self.steps = time.perf_counter(), 0
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()

        def on_step_end(self, state, task, loss) -> None:
            self.end, self.steps = time.perf_counter(), self.steps + 1

    clock = Clock()
    recipe_path = REPO / "recipes" / ("tiny.yaml" if smoke else "mtdnn_small.yaml")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        overrides = [
            f"data_root={data_root}", f"output_dir={scratch}", f"train.max_steps={steps}",
            f"train.amp={str(amp).lower()}", *TIMED_RUN, *extra,
        ]  # fmt: skip
        recipe = load_recipe(recipe_path, overrides)
        train(recipe, progress=False, callbacks=[clock])
    seconds = clock.end - clock.start
    out = {
        "recipe": recipe_path.name,
        "steps": clock.steps,
        "examples_per_s": clock.steps * recipe.train.batch_size / seconds,
        "step_ms": 1e3 * seconds / clock.steps,
    }
    if torch.cuda.is_available():
        out["peak_gpu_memory_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def stage_training(smoke: bool) -> dict:
    data_root, data = glue_root()
    steps = 4 if smoke else (200 if cuda() else 20)
    runs = {"fp32": train_recipe(data_root, smoke, steps, False, [])}
    if cuda():
        runs["bf16"] = train_recipe(data_root, smoke, steps, True, [])
    else:
        runs["bf16"] = {"skipped": "train.amp (bf16 autocast) is measured on CUDA only"}
    return {"data": data, "runs": runs}


def stage_distill_step(smoke: bool) -> dict:
    """One teacher (a short run of the same recipe) stored with kdnlu-teach, then the same steps
    with and without distillation on RTE: the cost a KD student step adds."""
    from kdnlu.recipe import load_recipe
    from kdnlu.teach import TeachOptions, teach
    from kdnlu.trainer import train

    data_root, data = glue_root()
    steps = 4 if smoke else (100 if cuda() else 10)
    recipe_path = REPO / "recipes" / ("tiny.yaml" if smoke else "mtdnn_small.yaml")
    with tempfile.TemporaryDirectory(prefix="gpu-check-kd-") as scratch:
        teacher = train(
            load_recipe(
                recipe_path,
                [
                    f"data_root={data_root}",
                    f"output_dir={scratch}",
                    "name=teacher",
                    f"train.max_steps={steps}",
                    *TIMED_RUN,
                ],
            ),  # fmt: skip
            progress=False,
        )
        store = Path(scratch) / "store"
        started = time.perf_counter()
        teach([str(teacher.run_dir)], str(store), ["rte"], TeachOptions(splits=("train",)), False)
        teach_s = time.perf_counter() - started
        kd = ["distill.store=" + str(store), "distill.tasks=[rte]"]
        plain = train_recipe(data_root, smoke, steps, cuda(), [])
        distilled = train_recipe(data_root, smoke, steps, cuda(), kd)
    return {
        "data": data,
        "teach_seconds": teach_s,
        "plain": plain,
        "distilled": distilled,
        "kd_step_vs_plain": distilled["step_ms"] / plain["step_ms"],
    }


def stage_vs_hf_trainer(smoke: bool) -> dict:
    if not cuda():
        return {"skipped": "CUDA only here (the CPU comparison: benchmarks/vs_hf_trainer.py)"}
    data_root, data = glue_root()
    out = Path(tempfile.mkdtemp(prefix="gpu-check-hf-"))
    script = load_benchmark("vs_hf_trainer")
    args = ["--tasks", "rte", "mrpc", "--seeds", "13", "14", "--poolings", "cls", "--jobs", "1",
            "--max-steps", "20" if smoke else "300", "--device", "cuda", "--bf16",
            "--data-root", data_root, "--out", str(out)]  # fmt: skip
    code = script.main(args)
    return {"data": data, "exit": code, "report": (out / "report.md").read_text()}


def run_stage(name: str, smoke: bool, timeout: float) -> dict:
    """A stage in a child process, so a crash or a hang costs that stage only."""
    command = [sys.executable, __file__, "--child", name] + (["--smoke"] if smoke else [])
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, cwd=REPO, timeout=max(timeout, 1)
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "seconds": time.perf_counter() - started}
    seconds = time.perf_counter() - started
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"status": "failed", "seconds": seconds, "error": " | ".join(tail)}
    result = json.loads(lines[-1])
    status = "skipped" if "skipped" in result else "ok"
    return {"status": status, "seconds": seconds, **result}


def summary(report: dict) -> str:
    lines = [f"# GPU check ({report['device']}, torch {report['torch']})", ""]
    lines += ["| stage | status | seconds | note |", "| --- | --- | --- | --- |"]
    for name, result in report["stages"].items():
        note = result.get("skipped") or result.get("error") or result.get("data", "")
        lines.append(f"| {name} | {result['status']} | {result['seconds']:.0f} | {note} |")
    soft = report["stages"].get("soft_ce", {})
    if soft.get("status") == "ok":
        lines += ["", f"soft cross-entropy, copy bandwidth {soft['copy_bandwidth_GBps']:.0f} GB/s:"]
        lines += [
            "",
            "| shape | dtype | variant | ms | of the bandwidth bound |",
            "| --- " * 5 + "|",
        ]
        for r in soft["results"]:
            took = f"{r['seconds'] * 1e3:.2f}" if "seconds" in r else r.get("skipped", "")
            bound = f"{r['fraction_of_bound']:.0%}" if "fraction_of_bound" in r else ""
            shape = f"{r['rows']} x {r['vocab']}"
            lines.append(f"| {shape} | {r['dtype']} | {r['variant']} | {took} | {bound} |")
    for stage in ("training", "distill_step"):
        result = report["stages"].get(stage, {})
        if result.get("status") == "ok":
            lines += [
                "",
                f"{stage}: `{json.dumps({k: v for k, v in result.items() if k != 'status'})}`",
            ]
    hf = report["stages"].get("vs_hf_trainer", {})
    if hf.get("status") == "ok":
        lines += ["", "kdnlu vs transformers' Trainer (bf16):", "", hf["report"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__)
    parser.add_argument("--out", default="runs/gpu_check")
    parser.add_argument("--budget-s", type=float, default=480.0, help="time for all stages")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--smoke", action="store_true", help="every stage as small as possible")
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(globals()[f"stage_{args.child}"](args.smoke)))
        return 0
    import torch

    started = time.perf_counter()
    report = {
        "device": torch.cuda.get_device_name() if cuda() else "CPU (no CUDA device)",
        "torch": torch.__version__,
        "stages": {},
    }
    for i, name in enumerate(args.stages):
        left = args.budget_s - (time.perf_counter() - started)
        share = left / (len(args.stages) - i)  # an even share of what is left
        report["stages"][name] = run_stage(
            name, args.smoke, share if i < len(args.stages) - 1 else left
        )
        print(f"{name}: {report['stages'][name]['status']}", flush=True)
    report["seconds"] = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    (out / "summary.md").write_text(summary(report))
    print(summary(report))
    failed = [n for n, r in report["stages"].items() if r["status"] in ("failed", "timeout")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
