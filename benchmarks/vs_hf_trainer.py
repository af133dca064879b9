"""Single-task fine-tuning through kdnlu and through transformers' Trainer, side by side: same
checkpoint, rows, budget and seeds; dev metrics (mean ± std over seeds) and training examples/s.

    python benchmarks/vs_hf_trainer.py --tasks rte mrpc --seeds 13 14 --train-rows 1000 \\
        --epochs 2 [--poolings cls pooler mean] [--jobs 2] [--out runs/vs_hf]

Every (task, seed) is trained once by ``transformers.Trainer`` (with
``AutoModelForSequenceClassification``, which classifies from the checkpoint's pretrained
pooler) and once by kdnlu per head pooling
(``cls``, ``pooler``, ``mean``), each run in its own process with one thread, ``--jobs`` at a
time. Both sides read the same first ``--train-rows`` training rows with kdnlu's GLUE reader,
truncate to ``--max-length`` tokens and train with AdamW (lr ``--lr``, no weight decay), batch
``--batch-size``, linear decay after 10% warm-up, gradient clipping at 1, dropout 0.1, and are
scored on the whole dev set by kdnlu's metric functions. Examples/s counts training only (the
first step to the last; no evaluation, no checkpoint writing). Needs ``pip install accelerate``
(transformers' Trainer requires it; kdnlu does not). Results: ``OUT/runs.jsonl`` (one line per
run, appended as runs finish, so a rerun skips finished runs) and ``OUT/report.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from bench_cli import add_glue_root, script_parser

REPO = Path(__file__).resolve().parents[1]


def read_split(task_name: str, data_root: str, split: str, rows: int | None) -> tuple:
    """The task and its first ``rows`` examples of ``split`` (all with ``None``)."""
    from kdnlu import discovery
    from kdnlu.registry import TASKS

    discovery.load_all()
    task = TASKS.get(task_name).build(data_root=data_root)
    return task, task.read(split, limit=rows)


def score(task, predictions: list, golds: list) -> dict[str, float]:
    import numpy as np

    from kdnlu.metrics import compute_metrics

    return compute_metrics(task.metrics, np.asarray(predictions), np.asarray(golds))


def run_hf(job: dict) -> dict:
    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from kdnlu.hf import checkpoint_dir, quiet_transformers

    quiet_transformers()
    task, train_rows = read_split(job["task"], job["data_root"], "train", job["train_rows"])
    _, dev_rows = read_split(job["task"], job["data_root"], task.eval_splits[0], None)
    folder = str(checkpoint_dir(job["encoder"]))
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def encode(rows: list) -> list[dict]:
        out = []
        for ex in rows:
            enc = tokenizer(ex.text_a, ex.text_b, truncation=True, max_length=job["max_length"])
            out.append({**enc, **({"labels": ex.label} if ex.label is not None else {})})
        return out

    torch.manual_seed(job["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=task.num_outputs, hidden_dropout_prob=0.1
    )
    clock = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock["start"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            clock["end"] = time.perf_counter()

    args = TrainingArguments(
        output_dir=job["scratch"],
        per_device_train_batch_size=job["batch_size"],
        per_device_eval_batch_size=64,
        learning_rate=job["lr"],
        weight_decay=0.0,
        num_train_epochs=job["epochs"],
        max_steps=job["max_steps"] or -1,
        warmup_steps=0.1,  # a float below 1: a ratio of the total steps
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        seed=job["seed"],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to=[],
        use_cpu=job["device"] == "cpu",
        bf16=job["bf16"],
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=encode(train_rows),
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[Clock()],
    )
    result = trainer.train()
    predictions = trainer.predict(encode(dev_rows)).predictions
    predicted = np.argmax(predictions, -1).tolist()
    return {
        "dev": score(task, predicted, [ex.label for ex in dev_rows]),
        "steps": result.global_step,
        "train_seconds": clock["end"] - clock["start"],
    }


def run_kdnlu(job: dict) -> dict:
    from kdnlu.callbacks import Callback
    from kdnlu.recipe import load_recipe
    from kdnlu.trainer import train

    clock: dict[str, float] = {}

    class Clock(Callback):
        def on_train_start(self, state, model) -> None:
            clock["start"] = time.perf_counter()

        def on_step_end(self, state, task, loss) -> None:
            clock["end"] = time.perf_counter()

    steps = job["max_steps"]
    recipe_text = json.dumps(
        {
            "name": "run",
            "data_root": job["data_root"],
            "output_dir": job["scratch"],
            "encoder": {"name": "hf", "path": job["encoder"]},
            "tasks": {
                job["task"]: {
                    "train_rows": job["train_rows"],
                    "max_length": job["max_length"],
                    "head": {"name": "classification", "dropout": 0.1, "pooling": job["pooling"]},
                }
            },
            "train": {
                "optimizer": "adamw",
                "lr": job["lr"],
                "weight_decay": 0.0,
                "batch_size": job["batch_size"],
                "epochs": job["epochs"],
                "max_steps": steps,
                "warmup": 0.1,
                "grad_clip": 1.0,
                "seed": job["seed"],
                "amp": job["bf16"],
                "device": job["device"],
                "eval_each_epoch": False,
                "eval_every": steps or 10**9,
                "token_cache": False,
            },
        }
    )
    path = Path(job["scratch"]) / "recipe.yaml"
    path.write_text(recipe_text)  # JSON is YAML
    result = train(load_recipe(path), progress=False, callbacks=[Clock()])
    return {
        "dev": next(iter(result.metrics.values())),
        "steps": result.steps,
        "train_seconds": clock["end"] - clock["start"],
    }


def run_child(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="vs-hf-") as scratch:
        job = {**job, "scratch": scratch}
        out = run_hf(job) if job["framework"] == "hf-trainer" else run_kdnlu(job)
    if job["max_steps"] is None:
        _, rows = read_split(job["task"], job["data_root"], "train", job["train_rows"])
        examples = job["epochs"] * len(rows)
    else:
        examples = job["batch_size"] * out["steps"]
    out["examples_per_s"] = examples / out["train_seconds"]
    return out


def run_name(job: dict) -> str:
    arm = job["framework"] if job["framework"] == "hf-trainer" else f"kdnlu-{job['pooling']}"
    return f"{job['task']}/{arm}/seed{job['seed']}"


def launch(job: dict, log_dir: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, __file__, "--child", json.dumps(job)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    log = log_dir / (run_name(job).replace("/", "_") + ".log")
    log.write_text(proc.stdout + proc.stderr)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"run": run_name(job), "job": job, "error": f"exit {proc.returncode}; see {log}"}
    return {"run": run_name(job), "job": job, **json.loads(lines[-1])}


def split_finished(jobs: list[dict], done: list[dict]) -> tuple[list[dict], list[dict]]:
    """The finished results that belong to ``jobs`` and the jobs still to run: a finished run
    counts only for the very settings it ran with (another budget or checkpoint runs again)."""
    results = [r for r in done if "error" not in r and r.get("job") in jobs]
    finished = [r["job"] for r in results]
    return results, [job for job in jobs if job not in finished]


def mean_std(values: list[float]) -> str:
    if not values:
        return ""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {std:.2f}"


def report(results: list[dict], arms: list[str], tasks: list[str]) -> str:
    lines = [
        "| task | metric | " + " | ".join(arms) + " |",
        "|" + " --- |" * (2 + len(arms)),
    ]
    ok = [r for r in results if "error" not in r]
    for task in tasks:
        runs = {arm: [r for r in ok if r["run"].startswith(f"{task}/{arm}/")] for arm in arms}
        metrics = next((list(r["dev"]) for rs in runs.values() for r in rs), [])
        for metric in metrics:
            cells = [mean_std([r["dev"][metric] for r in runs[arm]]) for arm in arms]
            lines.append(f"| {task} | {metric} | " + " | ".join(cells) + " |")
        speed = [mean_std([r["examples_per_s"] for r in runs[arm]]) for arm in arms]
        lines.append(f"| {task} | train examples/s | " + " | ".join(speed) + " |")
    failed = [r for r in results if "error" in r]
    lines += [""] + [f"failed: {r['run']}: {r['error']}" for r in failed]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__)
    parser.add_argument("--tasks", nargs="+", default=["rte", "mrpc"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[13, 14])
    parser.add_argument("--poolings", nargs="+", default=["cls", "pooler", "mean"])
    parser.add_argument("--train-rows", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, help="stop after this many steps instead")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--encoder", default="minilm", help="checkpoint folder, or minilm")
    add_glue_root(parser)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on both sides")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each")
    parser.add_argument("--out", default="runs/vs_hf_trainer")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return 0
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    common = {
        k: getattr(args, k)
        for k in ("train_rows", "epochs", "max_steps", "lr", "batch_size", "max_length")
    }
    common.update(
        encoder=args.encoder, data_root=args.data_root, device=args.device, bf16=args.bf16
    )
    jobs = [
        {**common, "task": t, "seed": s, "framework": f, "pooling": p}
        for s in args.seeds
        for t in args.tasks
        for f, p in [("hf-trainer", None), *[("kdnlu", p) for p in args.poolings]]
    ]
    done_file = out / "runs.jsonl"
    done = [json.loads(x) for x in done_file.read_text().splitlines()] if done_file.exists() else []
    results, pending = split_finished(jobs, done)
    print(f"{len(pending)} of {len(jobs)} runs to do, {args.jobs} at a time", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool, open(done_file, "a") as log:
        futures = [pool.submit(launch, job, out / "logs") for job in pending]
        for future in as_completed(futures):  # recorded as each finishes, whatever the order
            result = future.result()
            print(f"  {result['run']}: {result.get('dev', result.get('error'))}", flush=True)
            log.write(json.dumps(result) + "\n")
            log.flush()
            results.append(result)
    arms = ["hf-trainer", *[f"kdnlu-{p}" for p in args.poolings]]
    text = report(results, arms, args.tasks)
    (out / "report.md").write_text(text)
    print(text)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
