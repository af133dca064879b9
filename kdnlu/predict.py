"""Predictions of a trained run, and benchmark submission files (e.g. for the GLUE server)."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from kdnlu.data import encode_examples, word_positions
from kdnlu.errors import KdnluError
from kdnlu.evaluation import predict_outputs, to_predictions
from kdnlu.plugin_code import about_task
from kdnlu.rundir import atomic_write, atomic_write_text
from kdnlu.task import Example, Task
from kdnlu.trained import TrainedRun

log = logging.getLogger("kdnlu.predict")


def format_prediction(task: Task, value: float) -> str:
    """A class's label string, or a regression score with three decimals."""
    if task.label_names is not None:
        return task.label_names[int(value)]
    return f"{float(value):.3f}"


def question_lines(examples: list[Example], predictions: np.ndarray, positive: int) -> str:
    """``question<TAB>candidate`` rows: per group, the index of the candidate predicted
    ``positive`` (the first such; the group's first candidate when none is)."""
    chosen: dict[str, int] = {}
    picked: set[str] = set()
    for ex, p in zip(examples, predictions, strict=True):
        group = ex.group if ex.group is not None else ex.uid
        candidate = ex.candidate if ex.candidate is not None else 0
        chosen.setdefault(group, candidate)
        if group not in picked and int(p) == positive:
            chosen[group] = candidate
            picked.add(group)
    rows = ["index\tprediction", *(f"{g}\t{c}" for g, c in chosen.items())]
    return "\n".join(rows) + "\n"


def prediction_lines(
    task: Task,
    examples: list[Example],
    predictions: np.ndarray | list[np.ndarray],
    positive_label: int | None = None,
) -> str:
    """``index<TAB>prediction`` rows; for token labelling, ``word<TAB>tag`` lines with a blank
    line after each sentence (CoNLL style); for multiple choice (rows with a ``candidate`` and a
    loss that picks one ``positive_label`` row per group), the chosen candidate per question."""
    if positive_label is not None and any(ex.candidate is not None for ex in examples):
        assert isinstance(predictions, np.ndarray)
        return question_lines(examples, predictions, positive_label)
    if task.level == "token":
        assert task.label_names is not None
        names = task.label_names
        sentences = []
        for ex, tags in zip(examples, predictions, strict=True):
            pairs = zip(ex.words or (), tags, strict=True)
            sentences.append("".join(f"{word}\t{names[int(t)]}\n" for word, t in pairs))
        return "\n".join(sentences) + "\n"  # a blank line after every sentence
    rows = ["index\tprediction"]
    rows += [
        f"{ex.uid}\t{format_prediction(task, p)}"
        for ex, p in zip(examples, predictions, strict=True)
    ]
    return "\n".join(rows) + "\n"


def predict_file(
    run: TrainedRun, key: str, examples: list[Example], batch_size: int, device: torch.device
) -> np.ndarray | list[np.ndarray]:
    """Predictions for ``examples``: one per row, or for token labelling one tag index per
    word (words without a token, cut off by ``max_length`` or giving none, get the tag ``O``
    when the task has it, else the first tag; the encoder warns how many there are)."""
    task = run.tasks[key]
    encoded = encode_examples(
        key, run.model.encoder.tokenizer, examples, run.recipe.tasks[key].options.max_length
    )
    outputs = predict_outputs(run.model, key, task, encoded, batch_size, device)
    if encoded.token_level:
        assert task.label_names is not None and encoded.word_ids is not None
        filler = task.label_names.index("O") if "O" in task.label_names else 0
        classes = outputs.argmax(-1)
        tagged = []
        for row, ex in enumerate(examples):
            positions = word_positions(encoded, row)
            tags = np.full(len(ex.words or ()), filler, dtype=np.int64)
            tags[encoded.word_ids[positions]] = classes[positions]
            tagged.append(tags)
        return tagged
    return to_predictions(task, outputs, run.decoders.get(key), encoded.group_ids())


def chosen_tasks(run: TrainedRun, tasks: Sequence[str] | None) -> list[str]:
    """The run's task keys to predict: all, or the named ones (each must be the run's)."""
    if tasks is None:
        return list(run.tasks)
    unknown = [key for key in tasks if key not in run.tasks]
    if unknown:
        raise KdnluError(
            f"--tasks: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a task "
            f"of {run.run_dir}; its tasks are {', '.join(run.tasks)}"
        )
    return list(dict.fromkeys(tasks))


def prediction_jobs(key: str, task: Task, split: str) -> list[tuple[str, list[Example]]]:
    """The files to write for one task and the examples of each (``write_predictions``)."""
    jobs: list[tuple[str, list[Example]]] = []
    splits = {"test": task.test_splits, "dev": task.eval_splits}.get(split, (split,))
    for name in splits:
        if name not in task.files or not task.files[name].is_file():
            log.warning("%s: no %s file (%s); skipped", key, name, task.files.get(name))
            continue
        file_name = (
            task.submission.get(name, f"{key}-{name}.tsv")
            if split == "test"
            else f"{key}-{name}.tsv"
        )
        jobs.append((file_name, task.read(name)))
    if split == "test":
        for file_name, path in task.extra_predictions.items():
            if path.is_file():
                jobs.append((file_name, task.read_file(path, "test")))
            else:
                log.warning("%s: no %s (%s); skipped", key, file_name, path)
    return jobs


def write_predictions(
    run: TrainedRun,
    split: str,
    out_dir: Path,
    batch_size: int = 64,
    device: str = "cpu",
    tasks: Sequence[str] | None = None,
) -> list[Path]:
    """Predict ``split`` for every task (or the task keys in ``tasks``); one TSV per file.

    "test" means each task's test splits and "dev" its evaluation splits (MNLI has two of each).

    Test predictions use each task's submission file names and also cover its extra prediction
    files (GLUE's AX is scored by the MNLI head); they are zipped into ``submission.zip``
    (the files of this call's tasks only).
    """
    from kdnlu.run_control import pick_device

    if out_dir.exists() and not out_dir.is_dir():
        raise KdnluError(f"--out {out_dir} is a file; give a folder (it is made if missing)")
    target_device = pick_device(device)
    run.model.to(target_device)
    written: list[Path] = []
    for key in chosen_tasks(run, tasks):
        task = run.tasks[key]
        with about_task(key, str(run.run_dir / "recipe.yaml")):
            jobs = prediction_jobs(key, task, split)
        for file_name, examples in jobs:
            predictions = predict_file(run, key, examples, batch_size, target_device)
            target = out_dir / file_name
            positive = getattr(run.losses.get(key), "positive_label", None)
            atomic_write_text(target, prediction_lines(task, examples, predictions, positive))
            written.append(target)
            log.info("wrote %s (%d rows)", target, len(examples))
    if split == "test" and written:
        zip_path = out_dir / "submission.zip"

        def write_zip(tmp: Path) -> None:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in written:
                    archive.write(path, arcname=path.name)

        atomic_write(zip_path, write_zip)
        written.append(zip_path)
    return written
