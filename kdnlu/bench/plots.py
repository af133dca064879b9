"""PNG plots of a bench: scores per task with error bars, and learning curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kdnlu.bench.stats import mean, sample_std

if TYPE_CHECKING:
    from kdnlu.bench.grid import Bench
    from kdnlu.bench.report import PointResults


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_scores(collected: list[PointResults], columns: list[str], out: Path) -> None:
    """Grouped bars: one group per task (and the average), one bar per point, ± std."""
    plt = _pyplot()
    shown = [pr for pr in collected if pr.by_seed]
    width = 0.8 / max(1, len(shown))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(columns) * max(1, len(shown)) / 2), 4.5))
    x = np.arange(len(columns))
    for i, pr in enumerate(shown):
        scores = [list(pr.scores(c).values()) for c in columns]
        means = [mean(v) if v else np.nan for v in scores]
        stds = [sample_std(v) if v else 0.0 for v in scores]
        ax.bar(
            x + i * width - 0.4 + width / 2, means, width, yerr=stds, capsize=3, label=pr.point.name
        )
    ax.set_xticks(x, columns, rotation=20)
    ax.set_ylabel("dev score (mean ± std over seeds)")
    ax.legend(fontsize="small", loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)


def plot_curves(bench: Bench, results: dict[str, dict[str, Any]], out: Path) -> None:
    """The task-average dev score against training step: per point (and recipe), mean over
    seeds at each evaluation step."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    for point in bench.points:
        recipes = sorted({run.recipe for run in point.runs})
        for recipe in recipes:
            by_step: dict[float, list[float]] = {}
            for run in point.runs:
                rec = results.get(run.key)
                if run.recipe != recipe or not rec or rec["status"] != "ok":
                    continue
                for step, score in rec.get("curve", []):
                    by_step.setdefault(step, []).append(score)
            if not by_step:
                continue
            steps = sorted(by_step)
            label = point.name if len(recipes) == 1 else f"{point.name}: {Path(recipe).stem}"
            ax.plot(steps, [mean(by_step[s]) for s in steps], marker="o", label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("dev task average (mean over seeds)")
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
