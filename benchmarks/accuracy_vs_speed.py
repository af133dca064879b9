"""Accuracy against inference speed: each model's average dev score over its seeds and its dev
examples per second, in one table and one plot (docs/results.md, "Smaller students").

    python benchmarks/accuracy_vs_speed.py --records docs/results/cpu_scale_runs.jsonl \\
        --model "MT-DNN" all mtdnn_small_s13 mtdnn_small_s14 mtdnn_small_s15 \\
        --model gold-3l 0,2,4 runs/small/gold_3l_s13 runs/small/gold_3l_s14 ... \\
        --out docs/results/small_students [--rounds 3] [--threads 1]

Each ``--model NAME LAYERS RUN...`` is one row: LAYERS is ``all`` (the whole checkpoint) or the
comma-separated layers its student keeps (``0,2,4``), and each RUN is one seed, a run folder or
a name in the ``--records`` files (as in compare_runs.py). The score is the average over tasks
of each run's last evaluation (each task's metrics averaged first, as GLUE does). The speed of
each distinct LAYERS is measured side by side in this run by inference_speed.py (batch 64 on
the RTE and MRPC dev rows, one thread by default): it depends on the shape, not the weights.
The first model is the reference of the "kept" and "speed" columns. ``--leave-out TASK...``
adds a column with the average over the other tasks (e.g. ``--leave-out wnli``: WNLI's small,
adversarial dev set moves the six-task average by 2 points between seeds). OUT gets
accuracy_vs_speed.md and accuracy_vs_speed.png.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from bench_cli import script_parser
from compare_runs import RECORDS, load_records, mean_std, merged_evaluation
from inference_speed import Speed, measure

from kdnlu.metrics import task_average
from kdnlu.rundir import atomic_write, atomic_write_text


@dataclass(frozen=True)
class Model:
    """One row: a name, the layers kept (None: all), and each seed's dev metrics by task."""

    name: str
    layers: str | None
    evaluations: list[dict[str, dict[str, float]]]

    def scores(self, leave_out: tuple[str, ...] = ()) -> list[float]:
        """Each seed's average dev score over its tasks, but those left out."""
        return [
            task_average({k: v for k, v in evaluation.items() if k not in leave_out})
            for evaluation in self.evaluations
        ]


def parse_model(words: list[str]) -> Model:
    if len(words) < 3:
        raise SystemExit(f"--model {' '.join(words)}: give NAME LAYERS RUN... (at least one run)")
    name, layers, *runs = words
    if layers != "all" and not all(part.isdigit() for part in layers.split(",")):
        raise SystemExit(f"--model {name}: LAYERS is 'all' or a list such as 0,2,4, not {layers!r}")
    return Model(name, None if layers == "all" else layers, [merged_evaluation(r) for r in runs])


def check_leave_out(models: list[Model], leave_out: tuple[str, ...]) -> None:
    """Every task left out is one of the runs' tasks, and every run keeps at least one."""
    tasks = {key for model in models for evaluation in model.evaluations for key in evaluation}
    unknown = [key for key in leave_out if key not in tasks]
    if unknown:
        known = ", ".join(sorted(tasks))
        raise SystemExit(f"--leave-out {' '.join(unknown)}: not a task of these runs ({known})")
    for model in models:
        if any(set(evaluation) <= set(leave_out) for evaluation in model.evaluations):
            raise SystemExit(f"--leave-out leaves a run of {model.name} with no task to average")


def table(
    models: list[Model], speeds: dict[str | None, Speed], leave_out: tuple[str, ...] = ()
) -> str:
    reference = models[0]
    base_score = float(np.mean(reference.scores()))
    base_speed = speeds[reference.layers].examples_per_s
    other = f" | average without {', '.join(leave_out)}" if leave_out else ""
    lines = [
        "| model | encoder layers | parameters | dev examples/s | speed | average dev score"
        f"{other} | kept of {reference.name} | seeds |",
        "| --- " * (8 + bool(leave_out)) + "|",
    ]
    for model in models:
        speed = speeds[model.layers]
        kept = 100 * float(np.mean(model.scores())) / base_score
        other = f" | {mean_std(model.scores(leave_out))}" if leave_out else ""
        lines.append(
            f"| {model.name} | {speed.layers} | {speed.parameters:.1f} M | "
            f"{speed.examples_per_s:.1f} | {speed.examples_per_s / base_speed:.2f}x | "
            f"{mean_std(model.scores())}{other} | {kept:.1f}% | {len(model.evaluations)} |"
        )
    return "\n".join(lines)


def plot_x(models: list[Model], speeds: dict[str | None, Speed]) -> list[float]:
    """Each model's x in the plot: its speed, with the models that share a speed (the same
    layers) spread evenly around it, 1.5% of the speed range apart, so none hides another."""
    shared = Counter(model.layers for model in models)
    rates = [speed.examples_per_s for speed in speeds.values()]
    dodge = 0.015 * ((max(rates) - min(rates)) or 1.0)
    seen: Counter[str | None] = Counter()
    xs = []
    for model in models:
        offset = seen[model.layers] - (shared[model.layers] - 1) / 2
        seen[model.layers] += 1
        xs.append(speeds[model.layers].examples_per_s + offset * dodge)
    return xs


def plot(models: list[Model], speeds: dict[str | None, Speed], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for model, x in zip(models, plot_x(models, speeds), strict=True):
        scores = model.scores()
        std = float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0
        ax.errorbar(x, np.mean(scores), yerr=std, fmt="o", capsize=4, label=model.name)
    ax.legend(fontsize=8, loc="best")
    ax.set_xlabel("dev examples/s (batch 64, CPU)")
    ax.set_ylabel("average dev score (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.15, y=0.1)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--model", nargs="+", action="append", required=True,
                        metavar=("NAME", "LAYERS"), help="NAME LAYERS RUN...")  # fmt: skip
    parser.add_argument("--records", type=Path, action="append", default=[],
                        help="JSON lines of runs whose folders are gone (repeatable)")  # fmt: skip
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for accuracy_vs_speed.md and accuracy_vs_speed.png",
    )
    parser.add_argument(
        "--encoder",
        default="minilm",
        help="the checkpoint whose layers are timed (default: the bundled MiniLM)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="GLUE's folder (default: the data-location rule, docs/data.md)",
    )
    parser.add_argument(
        "--leave-out",
        nargs="+",
        default=[],
        metavar="TASK",
        help="add a column: the average over all tasks but these (e.g. wnli)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="timed rounds per model; the median round counts (default 3)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads while timing (default 1)"
    )
    args = parser.parse_args()
    for records in args.records:
        RECORDS.update(load_records(records))
    models = [parse_model(words) for words in args.model]
    check_leave_out(models, tuple(args.leave_out))
    torch.set_num_threads(args.threads)
    shapes = list(dict.fromkeys(model.layers for model in models))
    rows, measured = measure(shapes, args.encoder, data_root=args.data_root, rounds=args.rounds)
    speeds = dict(zip(shapes, measured, strict=True))
    text = (
        f"{table(models, speeds, tuple(args.leave_out))}\n\n"
        f"Speed: {rows} dev rows of RTE and MRPC, batch 64, "
        f"{args.threads} thread(s), median of {args.rounds} rounds, measured side by side.\n"
    )
    md = args.out / "accuracy_vs_speed.md"
    atomic_write_text(md, text)
    plot(models, speeds, args.out / "accuracy_vs_speed.png")
    print(text, end="")
    print(f"written: {md}, {args.out / 'accuracy_vs_speed.png'}")


if __name__ == "__main__":
    main()
