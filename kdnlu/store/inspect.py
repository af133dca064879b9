"""A readable account of a store: its header and what its teachers do (``kdnlu store inspect``)."""

from __future__ import annotations

import numpy as np

from kdnlu.store.reader import LogitStore, store_statistics


def describe_store(store: LogitStore) -> str:
    """The header and statistics of one store, for ``kdnlu store inspect``."""
    if store.spec.kind in ("hidden", "attention"):
        return describe_hidden_store(store)
    spec, stats = store.spec, store_statistics(store)
    kind = f"top-{spec.top_k}" if spec.kind == "topk" else "dense"
    lines = [
        f"store: {store.folder}",
        f"  task {spec.task}, split {spec.split}: {spec.rows} rows ({stats['labelled_rows']} "
        f"labelled), {spec.classes} outputs, {kind} {spec.dtype}, {spec.shards} shard(s)",
        f"  examples fingerprint {spec.fingerprint[:16]}...",
        "  teachers:",
    ]

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    per_teacher = stats.get("teacher_accuracy") or stats.get("teacher_pearson")
    measure = "accuracy" if "teacher_accuracy" in stats else "pearson"
    for i, teacher in enumerate(spec.teachers):
        score = f"   {measure} {pct(per_teacher[i])}" if per_teacher else ""
        lines.append(f"    {i + 1}. {teacher}{score}")
    if "ensemble_accuracy" in stats:
        lines.append(
            f"  ensemble accuracy {pct(stats['ensemble_accuracy'])}, teachers agree on "
            f"{stats['teacher_agreement']:.2f}% of rows, mean ensemble entropy "
            f"{stats['mean_ensemble_entropy']:.4f} nats"
        )
    elif "ensemble_pearson" in stats:
        lines.append(
            f"  ensemble (mean score) pearson {pct(stats['ensemble_pearson'])}, mean spread "
            f"across teachers {stats['mean_teacher_spread']:.4f}"
        )
    else:
        lines.append(
            f"  ensemble top-1 accuracy {pct(stats['ensemble_top1_accuracy'])}, mean mass "
            f"outside the top {spec.top_k} {stats['mean_mass_outside_top_k']:.4f}"
        )
    return "\n".join(lines)


def describe_hidden_store(store: LogitStore) -> str:
    """The header of a hidden-state (or attention) store and what the teachers' mean states
    look like on its first rows (their norm; an attention row's entropy)."""
    spec = store.spec
    assert spec.layers is not None
    states = store.states(range(min(spec.rows, 256)), spec.layers)
    if spec.kind == "attention":
        what = (
            f"the teachers' mean attention of the [CLS] query at layers {list(spec.layers)}, "
            f"{spec.classes} heads over {spec.length} positions"
        )
        entropy = -(states * np.log(np.clip(states, 1e-12, None))).sum(-1).mean((0, 2))
        summary = "mean [CLS] attention entropy by layer (first rows, nats): " + ", ".join(
            f"{layer}: {value:.2f}" for layer, value in zip(spec.layers, entropy, strict=True)
        )
    else:
        where = "[CLS]" if spec.tokens == "cls" else f"all {spec.length} token positions"
        what = (
            f"the teachers' mean hidden states at layers {list(spec.layers)}, {where}, width "
            f"{spec.classes}"
        )
        summary = "mean state norm by layer (first rows): " + ", ".join(
            f"{layer}: {float(np.linalg.norm(states[:, i], axis=-1).mean()):.2f}"
            for i, layer in enumerate(spec.layers)
        )
    lines = [
        f"store: {store.folder}",
        f"  task {spec.task}, split {spec.split}: {spec.rows} rows, {what}, {spec.dtype}, "
        f"{spec.shards} shard(s)",
        f"  examples fingerprint {spec.fingerprint[:16]}...",
        f"  {summary}",
        "  teachers:",
        *(f"    {i + 1}. {teacher}" for i, teacher in enumerate(spec.teachers)),
    ]
    return "\n".join(lines)
