"""Trainer options: accumulation, optimisers, precision, evaluation cadence, best, early stop."""

import json
import os
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from conftest import GLUE_SAMPLE, TINY_RECIPE, write
from kdnlu.callbacks import Callback
from kdnlu.errors import KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.trainer import train

NO_DROPOUT = ["encoder.dropout=0.0", "tasks.rte.head.dropout=0.0", "tasks.mrpc.head.dropout=0.0"]


def recipe_with(tmp_path: Path, *overrides: str, text: str = TINY_RECIPE):
    return load_recipe(write(tmp_path / "r.yaml", text), list(overrides))


RTE_ONLY = "\n".join(line for line in TINY_RECIPE.splitlines() if "mrpc" not in line) + "\n"


def test_gradient_accumulation_equals_one_big_batch(tmp_path: Path) -> None:
    """Two accumulated batches of 8 give the gradient of one batch of the same 16 rows."""
    common = [
        "encoder.dropout=0.0",
        "tasks.rte.head.dropout=0.0",
        "train.max_steps=1",
        "train.length_bucketing=false",
        "train.grad_clip=0",
        "train.warmup=0",
    ]
    grads: list[list[torch.Tensor]] = []

    def capture(optimizer, args, kwargs) -> None:
        grads.append(
            [
                p.grad.clone()
                for g in optimizer.param_groups
                for p in g["params"]
                if p.grad is not None
            ]
        )

    handle = register_optimizer_step_pre_hook(capture)
    try:
        big = train(
            recipe_with(
                tmp_path / "a", *common, "train.batch_size=16", "output_dir=a", text=RTE_ONLY
            ),
            progress=False,
        )
        small = train(
            recipe_with(
                tmp_path / "b",
                *common,
                "train.batch_size=8",
                "train.grad_accumulation=2",
                "output_dir=b",
                text=RTE_ONLY,
            ),
            progress=False,
        )
    finally:
        handle.remove()
    assert big.steps == small.steps == 1
    assert len(grads) == 2 and len(grads[0]) == len(grads[1]) > 10
    for g_big, g_small in zip(*grads, strict=True):
        assert torch.allclose(g_big, g_small, atol=1e-7, rtol=1e-4)


def test_adamax_and_bf16_autocast_train(tmp_path: Path) -> None:
    result = train(
        recipe_with(tmp_path, "train.optimizer=adamax", "train.amp=true", "train.max_steps=3"),
        progress=False,
    )
    assert result.steps == 3 and all(map(lambda x: x == x, result.train_loss))  # no NaN


def test_eval_every_writes_best_and_last(tmp_path: Path) -> None:
    result = train(
        recipe_with(tmp_path, "train.epochs=2", "train.eval_every=1", "train.best_metric=mrpc.f1"),
        progress=False,
    )
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    # 32 rows of each task in batches of 16: 4 steps an epoch, evaluated after every step
    assert [r["step"] for r in lines] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert all(r["train_loss"] is None for r in lines)
    best = max(lines, key=lambda r: (r["score"], -r["step"]))
    state = json.loads((result.run_dir / "checkpoints" / "best" / "trainer_state.json").read_text())
    assert state["step"] == best["step"] == result.best_step
    assert state["score"] == best["dev"]["mrpc"]["f1"] == result.best_score
    assert lines[-1]["best_score"] == result.best_score


def test_patience_stops_early(tmp_path: Path) -> None:
    class Flat(Callback):
        """Makes every evaluation after the first score no better."""

        def on_evaluate(self, state, results) -> None:
            self.seen = getattr(self, "seen", 0) + 1

    flat = Flat()
    result = train(
        recipe_with(
            tmp_path,
            "train.epochs=20",
            "train.eval_every=1",
            "train.patience=2",
            "train.lr=1e-9",
            "train.warmup=0",
        ),
        progress=False,
        callbacks=[flat],
    )
    # with a learning rate of 1e-9 nothing changes: the first evaluation stays the best
    assert result.best_step == 1
    assert result.steps == 3 and flat.seen == 3


def test_unknown_best_metric_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(KdnluError) as err:
        train(recipe_with(tmp_path, "train.best_metric=rte.f1"), progress=False)
    assert str(err.value) == (
        "train.best_metric 'rte.f1' names no evaluation; choose 'average' or one of: "
        "rte.accuracy, mrpc.f1, mrpc.accuracy"
    )
    assert not (tmp_path / "runs").exists()


def test_callback_can_replace_the_loss(tmp_path: Path) -> None:
    class Doubler(Callback):
        def on_loss(self, state, batch, logits, loss):
            return loss * 0.0

    result = train(
        recipe_with(tmp_path, "train.max_steps=2", *NO_DROPOUT),
        progress=False,
        callbacks=[Doubler()],
    )
    assert result.train_loss == [0.0]


def test_tasks_without_evaluation_split_train_and_save(tmp_path: Path) -> None:
    lines = ["text\tlabel"] + [f"sentence number {i}\t{i % 2}" for i in range(20)]
    write(tmp_path / "train.tsv", "\n".join(lines) + "\n")
    text = (
        "encoder: {name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}\n"
        "tasks: {mine: {name: tsv, train: train.tsv, labels: ['0', '1']}}\n"
        "train: {batch_size: 8, epochs: 2, device: cpu}\n"
    )
    result = train(load_recipe(write(tmp_path / "r.yaml", text)), progress=False)
    assert result.steps == 6 and result.metrics == {} and result.best_score is None
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["dev"], r["score"]) for r in lines] == [(1, {}, None), (2, {}, None)]
    assert (result.run_dir / "checkpoints" / "last" / "model.safetensors").is_file()
    assert not (result.run_dir / "checkpoints" / "best").exists()


def test_last_steps_are_evaluated_when_epochs_are_not(tmp_path: Path) -> None:
    result = train(
        recipe_with(
            tmp_path, "train.eval_each_epoch=false", "train.eval_every=3", "train.max_steps=4"
        ),
        progress=False,
    )
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [3, 4]
    state = json.loads((result.run_dir / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert state["step"] == 4


def test_non_finite_loss_stops_with_a_clear_error(tmp_path: Path) -> None:
    class Explode(Callback):
        def on_loss(self, state, batch, logits, loss):
            return loss * float("nan") if state.step == 1 else loss

    with pytest.raises(KdnluError) as err:
        train(
            recipe_with(tmp_path, "train.max_steps=3", *NO_DROPOUT),
            progress=False,
            callbacks=[Explode()],
        )
    assert str(err.value).startswith("the ")
    assert "loss is nan at step 2 (epoch 1); lower train.lr, set train.grad_clip" in str(err.value)


def test_bad_data_leaves_no_run_dir(tmp_path: Path) -> None:
    from conftest import GLUE_SAMPLE

    (tmp_path / "glue" / "RTE").mkdir(parents=True)
    write(tmp_path / "glue" / "RTE" / "train.tsv", (GLUE_SAMPLE / "RTE" / "train.tsv").read_text())
    write(tmp_path / "glue" / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\n")
    text = RTE_ONLY.replace(str(GLUE_SAMPLE), str(tmp_path / "glue"))
    with pytest.raises(KdnluError, match="expected 4 tab-separated columns, found 3"):
        train(recipe_with(tmp_path, text=text), progress=False)
    assert not (tmp_path / "runs").exists()


def test_deterministic_mode_holds_for_the_run_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []

    class Probe(Callback):
        def on_step_end(self, state, task, loss) -> None:
            seen.append(torch.are_deterministic_algorithms_enabled())

    recipe = load_recipe(
        write(tmp_path / "r.yaml", TINY_RECIPE), ["train.max_steps=2", "train.deterministic=true"]
    )
    assert not torch.are_deterministic_algorithms_enabled()
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    first = train(recipe, progress=False, callbacks=[Probe()])
    assert seen == [True, True]
    assert not torch.are_deterministic_algorithms_enabled()  # restored afterwards
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        train(recipe, progress=False)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()  # the caller's setting
    finally:
        torch.use_deterministic_algorithms(False)
    second = train(recipe, progress=False)
    weights = [
        (r.run_dir / "checkpoints/last/model.safetensors").read_bytes() for r in (first, second)
    ]
    assert weights[0] == weights[1]


ERROR_METRIC_RECIPE = f"""\
name: error_metric
encoder: {{name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}}
tasks:
  sts:
    name: tsv
    data: {GLUE_SAMPLE / "STS-B"}
    text_a: sentence1
    text_b: sentence2
    label: score
    regression: true
    metrics: [mae, pearson]
    max_length: 48
train: {{lr: 3.0e-3, batch_size: 8, epochs: 2, device: cpu, eval_every: 1, warmup: 0,
         best_metric: sts.mae}}
"""


def test_an_error_metric_keeps_the_lowest_error_checkpoint(tmp_path: Path) -> None:
    result = train(recipe_with(tmp_path, text=ERROR_METRIC_RECIPE), progress=False)
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    errors = [r["dev"]["sts"]["mae"] for r in lines]
    lowest = lines[errors.index(min(errors))]
    assert errors.index(min(errors)) != errors.index(max(errors))
    state = json.loads((result.run_dir / "checkpoints" / "best" / "trainer_state.json").read_text())
    assert state["step"] == lowest["step"] == result.best_step
    assert state["score"] == min(errors) == result.best_score == lines[-1]["best_score"]


def test_patience_follows_an_error_metric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error that keeps falling is improving: no early stop while it does."""
    from kdnlu import trainer

    falling, real = iter([5.0, 4.0, 3.0, 2.0, 1.0]), trainer.evaluate

    def evaluate(*args, **kwargs):
        results = real(*args, **kwargs)
        results["sts"]["mae"] = next(falling)
        return results

    monkeypatch.setattr(trainer, "evaluate", evaluate)
    recipe = recipe_with(
        tmp_path, "train.patience=1", "train.max_steps=5", text=ERROR_METRIC_RECIPE
    )
    result = train(recipe, progress=False)
    assert (result.steps, result.best_step, result.best_score) == (5, 5, 1.0)


def test_average_of_error_metrics_only_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KdnluError) as err:
        train(
            recipe_with(
                tmp_path,
                "train.best_metric=average",
                "tasks.sts.metrics=[mae]",
                text=ERROR_METRIC_RECIPE,
            ),
            progress=False,
        )
    assert str(err.value) == (
        "train.best_metric is 'average', but every metric of the evaluated tasks is "
        "lower-is-better and the average takes higher-is-better metrics only; name one "
        "instead, e.g. train.best_metric: sts.mae"
    )


def test_callbacks_see_the_loop_in_the_documented_order(tmp_path: Path) -> None:
    class Watch(Callback):
        """At an evaluation the record is written and the checkpoints are not yet; a value
        logged at a step's end is in that step's scalars; stopping from on_evaluate ends the
        run and is saved."""

        def __init__(self) -> None:
            self.epochs: list[tuple[int, int]] = []
            self.evaluations: list[tuple[int, int, int]] = []

        def on_step_end(self, state, task, loss) -> None:
            state.log_scalar("watch/step", float(state.step))

        def on_epoch_end(self, state) -> None:
            self.epochs.append((state.epoch, len(state.loop.epoch_losses)))

        def on_evaluate(self, state, results) -> None:
            lines = (state.run_dir / "metrics.jsonl").read_text().splitlines()
            saved = state.run_dir / "checkpoints" / "last" / "trainer_state.json"
            saved_step = json.loads(saved.read_text())["step"] if saved.is_file() else 0
            self.evaluations.append((state.step, json.loads(lines[-1])["step"], saved_step))
            if state.step == 6:
                state.should_stop = True

    watch = Watch()
    result = train(
        recipe_with(tmp_path, "train.epochs=3", "train.eval_every=3"), progress=False,
        callbacks=[watch],
    )  # fmt: skip
    # 4 steps an epoch: evaluations at 3, 4 (end of epoch 1) and 6, where the callback stops it
    assert watch.evaluations == [(3, 3, 0), (4, 4, 3), (6, 6, 4)]
    assert watch.epochs == [(1, 1), (2, 2)]  # epoch 2 ends early, then has its mean loss
    assert result.steps == 6
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_scalars"]["watch/step"] for r in lines] == [2.0, 4.0, 5.5]
    # the stop is saved with the checkpoint: the run cannot be resumed
    saved = torch.load(result.run_dir / "checkpoints/last/training.pt", weights_only=True)
    assert saved["loop"]["should_stop"] is True
