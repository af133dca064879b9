"""Overhead of kdnlu's training loop against a hand-written loop over the same batches and model.

    python benchmarks/trainer_overhead.py [--encoder tiny|minilm] [--steps 60] [--rounds 3]

Both loops train the same model from the same seed on the same batches (same rows, same order)
with AdamW, the linear schedule and gradient clipping; kdnlu's loop is timed from its first to
its last step by a callback, so evaluation and checkpoint writing are not counted. The two are
alternated in one run. Step times are paired (step i of one loop trains the same batch as step
i of the other) and the median of the per-step ratios is printed, which is robust to the
machine's noise; the first step of each run (warm-up) is left out.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_cli import add_glue_root, script_parser

from kdnlu.batches import TaskBatches
from kdnlu.build import build_model, encode_split
from kdnlu.callbacks import Callback
from kdnlu.data import collate
from kdnlu.optim import linear_schedule, make_optimizer
from kdnlu.recipe import load_recipe
from kdnlu.registry import LOSSES, SAMPLERS
from kdnlu.run_control import set_seed
from kdnlu.trainer import train

REPO = Path(__file__).resolve().parents[1]
ENCODERS = {
    "tiny": "{name: tiny, layers: 2, hidden_size: 64, heads: 2, intermediate_size: 128}",
    "minilm": "{name: hf, path: minilm}",
}


class StepClock(Callback):
    def on_train_start(self, state, model) -> None:
        self.times = [time.perf_counter()]

    def on_step_end(self, state, task, loss) -> None:
        self.times.append(time.perf_counter())


def hand_loop(recipe) -> list[float]:
    """The same training steps written out plainly; returns the seconds of each step."""
    cfg = recipe.train
    set_seed(cfg.seed)
    tasks = recipe.build_tasks()
    model = build_model(recipe, tasks)
    splits = {k: encode_split(recipe, tasks, model.encoder.tokenizer, "train", k) for k in tasks}
    model.train()
    loss_fn = {k: LOSSES.get(s.loss.name).build(s.loss.config) for k, s in recipe.tasks.items()}
    sampler = SAMPLERS.get(recipe.sampler.name).build(recipe.sampler.config)
    sampler_rng, batch_rng = random.Random(cfg.seed), random.Random(cfg.seed + 1)
    batches = TaskBatches(splits, cfg.batch_size, cfg.length_bucketing, batch_rng)
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay)
    scheduler = linear_schedule(optimizer, cfg.max_steps, cfg.warmup)
    order = sampler.epoch(batches.counts(), sampler_rng)[: cfg.max_steps]
    times = [time.perf_counter()]
    for key in order:
        batch = collate(splits[key], batches.next(key), torch.long)
        loss = loss_fn[key](model(batch), batch.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        times.append(time.perf_counter())
    return list(np.diff(times))


def main() -> None:
    parser = script_parser(__doc__)
    add_glue_root(parser)
    parser.add_argument("--encoder", default="tiny", choices=list(ENCODERS))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        text = (
            f"name: overhead\ndata_root: {args.data_root}\nencoder: {ENCODERS[args.encoder]}\n"
            f"output_dir: {tmp}/runs\ncache_dir: {tmp}/cache\n"
            "tasks: {mrpc: {eval_rows: 32}, rte: {eval_rows: 32}}\n"
            f"train: {{batch_size: 32, epochs: 1, max_steps: {args.steps}, device: cpu}}\n"
        )
        path = Path(tmp) / "overhead.yaml"
        path.write_text(text)
        recipe = load_recipe(path)
        ratios, ours_total, plain_total = [], 0.0, 0.0
        for _ in range(args.rounds):
            clock = StepClock()
            train(recipe, progress=True, callbacks=[clock])
            ours = np.diff(clock.times)[1:]
            plain = np.array(hand_loop(recipe))[1:]
            ratios.extend(ours / plain)
            ours_total += ours.sum()
            plain_total += plain.sum()
    print(
        f"{args.steps} steps x {args.rounds} rounds, encoder {args.encoder}, batch 32, "
        "MRPC+RTE rows"
    )
    print(
        f"total step time: kdnlu loop {ours_total:.2f} s, hand loop {plain_total:.2f} s "
        f"({100 * (ours_total / plain_total - 1):+.1f}%)"
    )
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    print(
        f"per-step time ratio kdnlu/hand: median {median:.3f} (quartiles {q1:.3f}-{q3:.3f}); "
        f"overhead {100 * (median - 1):+.1f}%"
    )


if __name__ == "__main__":
    main()
