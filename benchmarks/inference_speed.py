"""Inference speed of students cut from a checkpoint's layers against the full checkpoint,
measured side by side in one run: dev examples per second at batch 64, and parameters.

    python benchmarks/inference_speed.py [--encoder minilm] [--students 0,2,4 0,3]
        [--tasks rte mrpc] [--rounds 3] [--threads 1]

Every model gets the same dev rows of the tasks (kdnlu's GLUE reader, ``--max-length`` tokens,
through ``kdnlu.evaluation.predict_outputs``, the path ``kdnlu predict`` takes); the models are
timed in turn, round after round, and each model's median round is reported with its speed
relative to the full checkpoint. GLUE comes from the data-location rule, else the sample in
tests/fixtures/glue stands in.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from bench_cli import script_parser

from kdnlu.build import build_model, encode_split
from kdnlu.datadir import glue_dir
from kdnlu.evaluation import predict_outputs
from kdnlu.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]


def recipe_text(encoder: str, layers: str | None, tasks: list[str], data_root: str, length: int):
    keep = f", layers: [{layers}]" if layers else ""
    entries = "\n".join(f"  {t}: {{max_length: {length}}}" for t in tasks)
    return (
        f"name: speed\ndata_root: {data_root}\nencoder: {{name: hf, path: {encoder}{keep}}}\n"
        f"tasks:\n{entries}\ntrain: {{device: cpu, token_cache: false}}\n"
    )


@dataclass(frozen=True)
class Speed:
    """One model's measured inference speed."""

    name: str
    layers: int
    parameters: float  # millions
    examples_per_s: float


def default_data_root() -> str:
    """The GLUE copy of the data-location rule, else the sample in tests/fixtures/glue."""
    found = glue_dir().path
    return str(found if (found / "RTE").is_dir() else REPO / "tests" / "fixtures" / "glue")


def measure(
    students: list[str | None],
    encoder: str = "minilm",
    tasks: tuple[str, ...] = ("rte", "mrpc"),
    data_root: str | None = None,
    max_length: int = 128,
    batch_size: int = 64,
    rounds: int = 3,
) -> tuple[int, list[Speed]]:
    """Dev rows, and each model's median-round speed (``None`` in ``students``: the whole
    checkpoint; else a comma-separated layer list), the models timed in turn round after round
    after one warm-up round."""
    data_root = str(Path(data_root).resolve()) if data_root else default_data_root()
    device = torch.device("cpu")
    models, splits = {}, {}
    for layers in students:
        name = "full" if layers is None else f"layers {layers}"
        with tempfile.TemporaryDirectory(prefix="kdnlu-speed-") as scratch:
            path = Path(scratch) / "speed.yaml"
            path.write_text(recipe_text(encoder, layers, list(tasks), data_root, max_length))
            recipe = load_recipe(path)
        built = recipe.build_tasks()
        model = build_model(recipe, built).eval()
        models[name] = (model, built)
        if not splits:
            tokenizer = model.encoder.tokenizer
            for key, task in built.items():
                splits[key] = encode_split(recipe, built, tokenizer, task.eval_splits[0], key)
    rows = sum(len(s) for s in splits.values())
    seconds: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for _ in range(rounds + 1):  # the first round warms up and is not counted
            for name, (model, built) in models.items():
                start = time.perf_counter()
                for key, split in splits.items():
                    predict_outputs(model, key, built[key], split, batch_size, device)
                seconds[name].append(time.perf_counter() - start)
    speeds = []
    for name, (model, _) in models.items():
        took = statistics.median(seconds[name][1:])
        depth = len(model.encoder.model.encoder.layer)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        speeds.append(Speed(name, depth, params, rows / took))
    return rows, speeds


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--students", nargs="+", default=["0,2,4", "0,3"], help="layer lists")
    parser.add_argument("--tasks", nargs="+", default=["rte", "mrpc"])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, speeds = measure(
        [None, *args.students], args.encoder, tuple(args.tasks), args.data_root, args.max_length,
        args.batch_size, args.rounds,
    )  # fmt: skip
    print(f"dev rows: {rows} ({', '.join(args.tasks)}), batch {args.batch_size}, "
          f"{args.threads} thread(s), median of {args.rounds} rounds")  # fmt: skip
    print("| model | encoder layers | parameters | examples/s | vs full |")
    print("| --- | --- | --- | --- | --- |")
    full = speeds[0].examples_per_s
    for speed in speeds:
        print(
            f"| {speed.name} | {speed.layers} | {speed.parameters:.1f} M | "
            f"{speed.examples_per_s:.1f} | {speed.examples_per_s / full:.2f}x |"
        )


if __name__ == "__main__":
    main()
