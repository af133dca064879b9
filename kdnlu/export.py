"""Export a trained run: the shared encoder in Hugging Face format, plus the task heads."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from kdnlu.build import head_outputs
from kdnlu.config import to_plain
from kdnlu.errors import KdnluError
from kdnlu.rundir import atomic_write_text, staged_dir
from kdnlu.trained import TrainedRun


def heads_readme(run: TrainedRun, manifest: dict[str, dict]) -> str:
    lines = [
        f"# Exported from run `{run.run_dir.name}`",
        "",
        "The encoder files in this folder load with Hugging Face transformers, offline:",
        "",
        "```python",
        "from transformers import AutoModel, AutoTokenizer",
        "",
        'model = AutoModel.from_pretrained("THIS_FOLDER")',
        'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")',
        "```",
        "",
        "`heads/` holds one kdnlu output head per task (`<task>.safetensors`); `heads/heads.json`",
        "describes them. Each head reads the encoder's last hidden states.",
        "",
        "| task | head | config | loss | outputs | labels (index order) | metrics |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, info in manifest.items():
        labels = ", ".join(info["label_names"]) if info["label_names"] else "regression score"
        lines.append(
            f"| {key} | {info['head']} | `{json.dumps(info['head_config'])}` | {info['loss']} | "
            f"{info['num_outputs']} | {labels} | {', '.join(info['metrics'])} |"
        )
    if any(info["loss"] == "ranking" for info in manifest.values()):
        lines += [
            "",
            "A head trained with the ranking loss gives one relevance score per candidate: among",
            "candidates for the same question the best-scored one is the positive class; a lone",
            "candidate is positive when the sigmoid of its score is above 0.5.",
        ]
    return "\n".join(lines) + "\n"


def export_run(run: TrainedRun, out: Path) -> Path:
    """Write ``out`` (which must not exist yet) atomically: encoder, tokenizer, heads, README."""
    if out.exists():
        raise KdnluError(f"export target {out} already exists; choose a new folder")
    encoder = run.model.encoder
    hf_model = getattr(encoder, "model", None)
    if hf_model is None or not hasattr(hf_model, "save_pretrained"):
        raise KdnluError(
            f"encoder '{run.recipe.encoder.name}' is not a Hugging Face model; it cannot be "
            "exported in Hugging Face format"
        )
    with staged_dir(out) as staging:
        hf_model.save_pretrained(str(staging))
        encoder.tokenizer.save_pretrained(str(staging))
        manifest = {}
        for key, head in run.model.heads.items():
            spec, task = run.recipe.tasks[key], run.tasks[key]
            state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
            (staging / "heads").mkdir(exist_ok=True)
            save_file(state, str(staging / "heads" / f"{key}.safetensors"))
            manifest[key] = {
                "task": spec.name,
                "head": spec.head.name,
                "head_config": to_plain(spec.head.config),
                "loss": spec.loss.name,
                "num_outputs": head_outputs(task, spec.loss.name),
                "label_names": list(task.label_names) if task.label_names else None,
                "metrics": list(task.metrics),
                "max_length": spec.options.max_length,
            }
        atomic_write_text(staging / "heads" / "heads.json", json.dumps(manifest, indent=2) + "\n")
        atomic_write_text(staging / "README.md", heads_readme(run, manifest))
    return out
