"""Objectives composed in YAML: the distill: shorthand and its objective train identically,
terms are logged one by one, weights follow their ramps, and recipe mistakes are named."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_distill import random_store

from conftest import TINY_RECIPE, write
from kdnlu.errors import RecipeError
from kdnlu.recipe import load_recipe
from kdnlu.schema_distill import ObjectiveTermConfig
from kdnlu.trainer import train


def records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_objective_and_the_distill_shorthand_train_the_same_weights(tmp_path: Path) -> None:
    """Three steps of each, from the same seed: the same weights, to float rounding."""
    random_store(tmp_path / "store", "rte")
    shorthand = TINY_RECIPE + (
        f"distill: {{store: {tmp_path / 'store'}, tasks: [rte], alpha: 0.25, temperature: 2.0}}\n"
    )
    objective = (
        TINY_RECIPE.replace(
            "  rte: {train_rows: 32, eval_rows: 16, max_length: 48}",
            "  rte:\n    train_rows: 32\n    eval_rows: 16\n    max_length: 48\n    objective:\n"
            "      - {loss: cross_entropy, weight: 0.25}\n"
            "      - {loss: soft_cross_entropy, weight: 0.75, temperature: 2.0}\n",
        )
        + f"distill: {{store: {tmp_path / 'store'}}}\n"
    )
    runs = []
    for name, text in (("shorthand", shorthand), ("objective", objective)):
        recipe = load_recipe(write(tmp_path / f"{name}.yaml", text), [f"output_dir={tmp_path}"])
        assert recipe.distill is not None
        runs.append(train(recipe, progress=False).run_dir)
    weights = [load_file(str(r / "checkpoints" / "last" / "model.safetensors")) for r in runs]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=1e-6, atol=1e-7)
    scalars = [records(r)[-1]["train_scalars"] for r in runs]
    assert set(scalars[0]) == {"distill/rte/hard", "distill/rte/soft"}
    assert set(scalars[1]) == {"distill/rte/cross_entropy", "distill/rte/soft_cross_entropy"}
    assert scalars[0]["distill/rte/hard"] == pytest.approx(scalars[1]["distill/rte/cross_entropy"])
    assert scalars[0]["distill/rte/soft"] == pytest.approx(
        scalars[1]["distill/rte/soft_cross_entropy"]
    )


def test_a_gold_only_objective_is_the_sum_of_its_weighted_terms(tmp_path: Path) -> None:
    """Without teachers: 0.5 x cross-entropy + 0.5 x smoothed cross-entropy, logged per term."""
    from kdnlu.callbacks import TrainState
    from kdnlu.data import Batch
    from kdnlu.distill import build_objective

    text = TINY_RECIPE.replace(
        "  mrpc: {train_rows: 32, eval_rows: 16, max_length: 48}",
        "  mrpc:\n    train_rows: 32\n    objective:\n"
        "      - {loss: cross_entropy, weight: 0.5, weight_final: 0.0}\n"
        "      - {loss: cross_entropy, name: smooth, weight: 0.5, label_smoothing: 0.2}\n",
    )
    recipe = load_recipe(write(tmp_path / "gold.yaml", text))
    assert recipe.tasks["mrpc"].objective[1].to_dict() == {
        "loss": "cross_entropy", "name": "smooth", "weight": 0.5, "weight_final": None,
        "targets": "auto", "temperature": 1.0, "temperature_final": None, "layers": None,
        "project": None, "label_smoothing": 0.2,
    }  # fmt: skip
    tasks = recipe.build_tasks()
    from kdnlu.build import build_losses, build_model

    model = build_model(recipe, tasks)
    objective = build_objective(recipe, tasks, {}, build_losses(recipe), model)
    assert objective is not None and set(objective.terms) == {"mrpc"}
    logits = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 1, 0])
    batch = Batch("mrpc", torch.arange(4), *(torch.zeros(4, 3, dtype=torch.long),) * 3, labels)
    state = TrainState(run_dir=tmp_path, total_steps=10)
    state.loop.step = 5  # halfway: the first weight has ramped from 0.5 to 0.25
    hard = torch.nn.functional.cross_entropy(logits, labels)
    value = objective.on_loss(state, batch, logits, hard)
    smooth = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.2)
    torch.testing.assert_close(value, 0.25 * hard + 0.5 * smooth)
    assert set(state.window_scalars) == {"distill/mrpc/cross_entropy", "distill/mrpc/smooth"}
    # rte has no objective: its loss passes through untouched
    other = Batch("rte", torch.arange(4), *(torch.zeros(4, 3, dtype=torch.long),) * 3, labels)
    assert objective.on_loss(state, other, logits, hard) is hard


def test_weights_and_temperatures_ramp_linearly() -> None:
    term = ObjectiveTermConfig(
        loss="soft_cross_entropy", weight=1.0, weight_final=0.0, temperature=4.0,
        temperature_final=1.0,
    )  # fmt: skip
    assert term.at(0.0) == (1.0, 4.0)
    assert term.at(0.5) == (0.5, 2.5)
    assert term.at(1.0) == (0.0, 1.0)
    assert ObjectiveTermConfig(loss="mse", weight=0.3).at(0.7) == (0.3, 1.0)


def objective_recipe(tmp_path: Path, task: str, terms: str, distill: bool = True) -> Path:
    lines = "".join(f"      - {t}\n" for t in terms.split(";"))
    entry = f"  {task}:\n    train_rows: 32\n    objective:\n{lines}"
    old = f"  {task}: {{train_rows: 32, eval_rows: 16, max_length: 48}}\n"
    if old in TINY_RECIPE:
        text = TINY_RECIPE.replace(old, entry)
    else:
        text = TINY_RECIPE.replace("train: {", entry + "train: {")
    if distill:
        (tmp_path / "store").mkdir(exist_ok=True)
        text += f"distill: {{store: {tmp_path / 'store'}}}\n"
    return write(tmp_path / "objective.yaml", text)


@pytest.mark.parametrize(
    ("task", "terms", "distill", "message"),
    [
        (
            "stsb", "{loss: soft_cross_entropy}", True,
            "tasks.stsb.objective[0] (loss 'soft_cross_entropy'): a soft loss needs class outputs, "
            "but task 'stsb' has regression scores; use {loss: mse, targets: teacher}",
        ),
        (
            "rte", "{loss: soft_cross_entropy}", False,
            "tasks.rte.objective[0]: term 'soft_cross_entropy' learns from teachers; say where "
            "their outputs are with distill: {store: FOLDER} (kdnlu-teach --out)",
        ),
        (
            "rte", "{loss: hidden_mse}", True,
            "tasks.rte.objective[0] (loss 'hidden_mse'): give `layers`, student layer -> teacher "
            "layer, e.g. {2: 4}",
        ),
        (
            "rte", "{loss: cross_entropy, layers: {1: 2}}", True,
            "tasks.rte.objective[0] (loss 'cross_entropy'): `layers` is for hidden and attention "
            "losses (kdnlu list losses)",
        ),
        (
            "rte", "{loss: cross_entropy, targets: teacher}", True,
            "tasks.rte.objective[0] (loss 'cross_entropy'): `targets: teacher` takes a regression "
            "loss (the teachers' mean score); class outputs learn from teachers through a soft "
            "loss (e.g. soft_cross_entropy)",
        ),
        (
            "rte", "{loss: mse}", True,
            "tasks.rte.objective[0]: loss 'mse' takes regression scores, but task 'rte' has class "
            "labels; use e.g. 'cross_entropy'",
        ),
        (
            "rte", "{loss: cross_entropy};{loss: cross_entropy, weight: 0.1}", True,
            "tasks.rte.objective[1]: a second term named 'cross_entropy'; give one of them a "
            "`name:` (the name its value is logged under)",
        ),
        (
            "rte", "{loss: cross_entropy, smoothing: 0.1}", True,
            "unknown key 'smoothing'",
        ),
        (
            "rte", "{loss: cross_entropy, weight: -1}", True,
            "weight: must be >= 0, got -1.0",
        ),
    ],
)  # fmt: skip
def test_objective_mistakes_are_named(
    tmp_path: Path, task: str, terms: str, distill: bool, message: str
) -> None:
    with pytest.raises(RecipeError) as err:
        load_recipe(objective_recipe(tmp_path, task, terms, distill))
    assert message in str(err.value)
    assert "objective.yaml:" in str(err.value)  # located in the file


def test_a_shorthand_task_with_its_own_objective_is_refused(tmp_path: Path) -> None:
    path = objective_recipe(tmp_path, "rte", "{loss: cross_entropy}")
    path.write_text(path.read_text().replace("distill: {store:", "distill: {tasks: [rte], store:"))
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert "distill.tasks: task rte has its own objective (tasks.rte.objective)" in str(err.value)


def test_the_objective_round_trips_through_the_run_recipe(tmp_path: Path) -> None:
    path = objective_recipe(
        tmp_path, "rte", "{loss: cross_entropy, weight: 0.5, label_smoothing: 0.1}", False
    )
    recipe = load_recipe(path, [f"output_dir={tmp_path}", "train.max_steps=1"])
    run = train(recipe, progress=False).run_dir
    again = load_recipe(run / "recipe.yaml")
    assert again.tasks["rte"].objective == recipe.tasks["rte"].objective
    assert "distill/rte/cross_entropy" in records(run)[-1]["train_scalars"]
