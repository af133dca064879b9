"""Dev metrics of each teacher and of their ensemble, from the dev stores kdnlu-teach wrote.

    python benchmarks/ensemble_dev.py runs/kd_store runs/teacher_a

prints a markdown table: one row per teacher (the checkpoint the store was written from) and
one for the ensemble (classification: the argmax of the mean of the teachers' probabilities;
regression: the mean of their scores), with each task's metrics as the task defines them and
the GLUE-style average. The teacher run (any one) gives the tasks' metric names. Where the
teachers differ by task (`kdnlu-teach --keep-best K`), a teacher's cells for the tasks it was
left out of read "-", and so does its average.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bench_cli import script_parser

from kdnlu.metrics import compute_metrics, task_average
from kdnlu.recipe import load_recipe
from kdnlu.store import LogitStore


def dev_predictions(store: LogitStore) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Each teacher's predictions, the ensemble's, and the gold labels of a dev store."""
    rows = np.arange(len(store))
    logits, gold = store.logits(rows), store.labels(rows)
    if store.spec.classes == 1:
        scores = logits[:, :, 0]
        return [scores[:, t] for t in range(scores.shape[1])], scores.mean(1), gold
    z = np.exp(logits - logits.max(-1, keepdims=True))
    probs = z / z.sum(-1, keepdims=True)
    teachers = [logits[:, t].argmax(-1) for t in range(logits.shape[1])]
    return teachers, probs.mean(1).argmax(-1), gold


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("store", help="the folder kdnlu-teach --out wrote")
    parser.add_argument("teacher_run", help="one teacher's run directory (for metric names)")
    args = parser.parse_args()
    recipe = load_recipe(Path(args.teacher_run) / "recipe.yaml", check_files=False)
    tasks = recipe.build_tasks()
    results: dict[str, dict[str, dict[str, float]]] = {}
    columns: list[tuple[str, str]] = []
    for key, task in tasks.items():
        folder = Path(args.store) / key / "dev"
        if not folder.is_dir():
            continue
        store = LogitStore.open(folder)
        teachers, ensemble, gold = dev_predictions(store)
        names = [t.split("@")[0] for t in store.spec.teachers] + ["ensemble"]  # run/checkpoint
        for name, pred in zip(names, [*teachers, ensemble], strict=True):
            results.setdefault(name, {})[key] = compute_metrics(task.metrics, pred, gold)
        columns += [(key, metric) for metric in results["ensemble"][key]]
    if not results:
        parser.error(f"{args.store} holds no dev store of the tasks of {args.teacher_run}")
    print(table(results, columns))


def table(results: dict[str, dict[str, dict[str, float]]], columns: list[tuple[str, str]]) -> str:
    """The markdown table: teachers in the order first met, the ensemble last."""
    names = [name for name in results if name != "ensemble"] + ["ensemble"]
    tasks = {key for key, _ in columns}
    lines = ["| model | " + " | ".join(f"{k} {m}" for k, m in columns) + " | average |"]
    lines.append("|" + " --- |" * (len(columns) + 2))
    for name in names:
        scores = results[name]
        cells = [f"{scores[k][m]:.2f}" if k in scores else "-" for k, m in columns]
        average = f"{task_average(scores):.2f}" if set(scores) == tasks else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {average} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
