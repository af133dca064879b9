"""Intermediate-layer distillation: the hidden-state losses against hand-computed values, the
teachers' hidden store (its rows are the mean of their states), a narrower student trained
through a learned projection, and the refusals of a store that does not fit the student."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import GLUE_SAMPLE, write
from kdnlu.errors import KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.registry import LOSSES
from kdnlu.store import LogitStore, StoreError
from kdnlu.teach import TeachOptions, teach
from kdnlu.trainer import train

TEACHER = f"""\
name: teacher
data_root: {GLUE_SAMPLE}
encoder: {{name: tiny, layers: 2, hidden_size: 32, heads: 2, intermediate_size: 64}}
tasks:
  rte: {{train_rows: 32, eval_rows: 16, max_length: 48}}
train: {{lr: 1.0e-3, batch_size: 16, epochs: 1, device: cpu, max_steps: 2}}
"""


def student_text(
    root: Path, data_root: Path = GLUE_SAMPLE, layers: str = "{1: 2}", extra: str = ""
) -> str:
    return f"""\
name: student
data_root: {data_root}
encoder: {{name: tiny, layers: 1, hidden_size: 16, heads: 2, intermediate_size: 32, seed: 3}}
tasks:
  rte:
    train_rows: 32
    eval_rows: 16
    max_length: 48
    objective:
      - {{loss: cross_entropy, weight: 0.5}}
      - {{loss: soft_cross_entropy, weight: 0.5}}
      - {{loss: hidden_mse, weight: 1.0, layers: {layers}{extra}}}
train: {{lr: 1.0e-3, batch_size: 16, epochs: 1, device: cpu, max_steps: 2}}
distill: {{store: {root / "store"}}}
"""


def test_hidden_mse_and_cosine_match_hand_computed_values() -> None:
    student = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    teacher = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    mse = LOSSES.get("hidden_mse").build(LOSSES.get("hidden_mse").config())
    cosine = LOSSES.get("hidden_cosine").build(LOSSES.get("hidden_cosine").config())
    # squared differences 1, 4, 0, 4: mean 9 / 4
    assert float(mse(student, teacher)) == pytest.approx(2.25)
    # cosines: (2 / (sqrt(5) * 2)) and -1
    assert float(cosine(student, teacher)) == pytest.approx(((1 - 1 / 5**0.5) + 2) / 2)
    with pytest.raises(ValueError, match=r"hidden_mse expects student and teacher states"):
        mse(student, teacher[:, :1])


@pytest.fixture(scope="module")
def hidden_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny teachers (width 32, 2 layers) and their logit and hidden stores."""
    root = tmp_path_factory.mktemp("hidden")
    recipe = write(root / "teacher.yaml", TEACHER)
    runs = [
        train(load_recipe(recipe, [f"output_dir={root}", f"name=t{s}", f"train.seed={s}"]),
              progress=False).run_dir
        for s in (1, 2)
    ]  # fmt: skip
    options = TeachOptions(
        splits=("train",), dtype="float32", hidden_layers=(0, 2), attention_layers=(1, 2),
        shard_rows=128,
    )  # fmt: skip
    teach(runs, root / "store", options=options, progress=False)
    (root / "runs.json").write_text(json.dumps([str(r) for r in runs]))
    return root


def test_the_hidden_store_holds_the_teachers_mean_cls_states(hidden_store: Path) -> None:
    from kdnlu.data import encode_examples
    from kdnlu.trained import load_trained

    store = LogitStore.open(hidden_store / "store" / "rte" / "train-hidden")
    assert (store.spec.kind, store.spec.layers, store.spec.tokens, store.spec.classes) == (
        "hidden",
        (0, 2),
        "cls",
        32,
    )
    from kdnlu.store import describe_store

    assert "the teachers' mean hidden states at layers [0, 2], [CLS], width 32, float32" in (
        describe_store(store)
    )
    rows = [0, 7, 299]
    states = []
    for run_dir in json.loads((hidden_store / "runs.json").read_text()):
        run = load_trained(run_dir)
        examples = run.tasks["rte"].read("train")
        split = encode_examples("rte", run.model.encoder.tokenizer, [examples[i] for i in rows], 48)
        from kdnlu.data import collate

        batch = collate(split, list(range(len(rows))), torch.long)
        run.model.eval()
        with torch.no_grad():
            hidden = run.model.encoder.hidden_states(
                batch.input_ids, batch.attention_mask, batch.token_type_ids
            )
        states.append(torch.stack([hidden[0][:, 0], hidden[2][:, 0]], 1).numpy())
    np.testing.assert_allclose(store.states(rows, [0, 2]), np.mean(states, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        store.states(rows, [2]), np.mean(states, 0)[:, 1:], rtol=1e-5, atol=1e-6
    )


def test_a_narrower_student_learns_the_states_through_a_projection(
    hidden_store: Path, tmp_path: Path
) -> None:
    recipe = load_recipe(
        write(tmp_path / "student.yaml", student_text(hidden_store)), [f"output_dir={tmp_path}"]
    )
    run = train(recipe, progress=False).run_dir
    weights = load_file(str(run / "checkpoints" / "last" / "model.safetensors"))
    assert weights["projections.rte__2.weight"].shape == (32, 16)
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(record["train_scalars"]) == {
        "distill/rte/cross_entropy", "distill/rte/soft_cross_entropy", "distill/rte/hidden_mse",
    }  # fmt: skip
    assert record["train_scalars"]["distill/rte/hidden_mse"] > 0
    # the projection is for training only: the run still predicts and exports
    from kdnlu.export import export_run
    from kdnlu.trained import load_trained

    assert "projections.rte__2.weight" in load_trained(run).model.state_dict()
    export_run(load_trained(run), tmp_path / "exported")
    from transformers import AutoModel

    assert AutoModel.from_pretrained(str(tmp_path / "exported")).config.hidden_size == 16


def student_batch(tmp_path: Path, text: str, rows: int) -> tuple:
    """The student of recipe ``text`` (heads from seed 0), its objective started, a training
    state and a batch of the first ``rows`` RTE training rows."""
    from kdnlu.build import build_losses, build_model
    from kdnlu.callbacks import TrainState
    from kdnlu.data import collate, encode_examples
    from kdnlu.distill import build_objective

    recipe = load_recipe(write(tmp_path / "values.yaml", text))
    tasks = recipe.build_tasks()
    torch.manual_seed(0)  # the same heads
    model = build_model(recipe, tasks)
    objective = build_objective(recipe, tasks, {}, build_losses(recipe), model)
    assert objective is not None
    state = TrainState(run_dir=tmp_path, total_steps=4)
    objective.on_train_start(state, model)
    model.train()
    examples = tasks["rte"].read("train")[:rows]
    split = encode_examples("rte", model.encoder.tokenizer, examples, 48)
    return objective, model, state, collate(split, list(range(rows)), torch.long)


def test_the_projection_changes_the_hidden_term_only(hidden_store: Path, tmp_path: Path) -> None:
    """The hidden term's gradient reaches the projection and the encoder, not the head."""
    objective, model, _, batch = student_batch(tmp_path, student_text(hidden_store), 4)
    hidden_term = objective.terms["rte"][2]
    model(batch)
    value = objective.hidden_value(hidden_term, batch)
    value.backward()
    assert model.projections["rte__2"].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.heads["rte"].parameters())
    # by hand: the projected [CLS] state of layer 1 against the teachers' layer-2 mean
    store = LogitStore.open(hidden_store / "store" / "rte" / "train-hidden")
    with torch.no_grad():
        student = model.projections["rte__2"](model.encoder.captured[1][:, 0])
        target = torch.from_numpy(store.states([0, 1, 2, 3], [2]))[:, 0]
        torch.testing.assert_close(value.detach(), ((student - target) ** 2).mean())


def test_a_store_that_does_not_fit_the_student_is_refused(
    hidden_store: Path, tmp_path: Path
) -> None:
    def refused(text: str) -> str:
        recipe = load_recipe(write(tmp_path / "s.yaml", text), [f"output_dir={tmp_path}"])
        with pytest.raises(KdnluError) as err:
            train(recipe, progress=False)
        return str(err.value)

    folder = hidden_store / "store" / "rte" / "train-hidden"
    assert refused(student_text(hidden_store, layers="{1: 1}")) == (
        f"tasks.rte.objective: term 'hidden_mse' maps to teacher layer 1, but {folder} holds "
        "layers [0, 2]; write it with kdnlu-teach --hidden-layers covering 1"
    )
    assert refused(student_text(hidden_store, layers="{2: 2}")) == (
        "tasks.rte.objective: term 'hidden_mse' maps student layer 2, but the student has 1 "
        "layers (0 is the embeddings)"
    )
    assert refused(student_text(hidden_store, extra=", project: false")) == (
        "tasks.rte.objective: term 'hidden_mse' compares the student's 16-wide hidden states "
        f"with the teachers' 32-wide ones in {folder}, and `project: false` allows no "
        "projection; drop it (a learned projection is added when widths differ)"
    )
    # other data: one training row changed
    data = tmp_path / "glue"
    shutil.copytree(GLUE_SAMPLE, data)
    rows = (data / "RTE" / "train.tsv").read_text().splitlines()
    rows[5] = rows[5].replace("a", "o", 1)
    (data / "RTE" / "train.tsv").write_text("\n".join(rows) + "\n")
    message = refused(
        student_text(hidden_store, data_root=data).replace(
            "soft_cross_entropy, weight: 0.5}", "cross_entropy, name: again, weight: 0.5}"
        )
    )
    assert message.startswith(f"tasks.rte.objective: {folder} does not fit this data: its examples")


def test_an_all_token_store_lines_up_positions(hidden_store: Path, tmp_path: Path) -> None:
    runs = json.loads((hidden_store / "runs.json").read_text())
    options = TeachOptions(splits=("train",), hidden_layers=(1,), hidden_tokens="all")
    teach(runs, tmp_path / "store", options=options, progress=False)
    store = LogitStore.open(tmp_path / "store" / "rte" / "train-hidden")
    assert store.states([0, 1], [1]).shape == (2, 1, 48, 32)
    assert store.spec.dtype == "float16" and store.spec.length == 48
    text = student_text(tmp_path, layers="{1: 1}")
    recipe = load_recipe(write(tmp_path / "s.yaml", text), [f"output_dir={tmp_path}"])
    assert train(recipe, progress=False).steps == 2
    shorter = text.replace("max_length: 48", "max_length: 40")
    with pytest.raises(KdnluError, match="must be equal so that positions line up"):
        train(
            load_recipe(write(tmp_path / "s2.yaml", shorter), [f"output_dir={tmp_path}"]),
            progress=False,
        )


def test_hidden_layers_outside_the_teachers_are_refused(hidden_store: Path, tmp_path: Path) -> None:
    runs = json.loads((hidden_store / "runs.json").read_text())
    with pytest.raises(KdnluError) as err:
        teach(
            runs,
            tmp_path / "s",
            options=TeachOptions(splits=("train",), hidden_layers=(3,)),
            progress=False,
        )
    assert str(err.value) == (
        "--hidden-layers [3]: give distinct layers from 0 (the embeddings) to 2 (the teachers' "
        "last layer)"
    )
    with pytest.raises(StoreError):
        LogitStore.open(tmp_path / "s" / "rte" / "train-hidden")


def online_recipe(hidden_store: Path, offline: str) -> str:
    """``offline`` with its store replaced by the two teachers run online."""
    runs = json.loads((hidden_store / "runs.json").read_text())
    return offline.replace(
        f"distill: {{store: {hidden_store / 'store'}}}",
        f"distill: {{online: [{runs[0]}, {runs[1]}]}}",
    )


def term_values(tmp_path: Path, text: str) -> tuple[dict, torch.nn.Module]:
    """The logged term values of one training batch of 5 RTE rows (fixed dropout), and the
    student after it."""
    objective, model, state, batch = student_batch(tmp_path, text, 5)
    torch.manual_seed(1)  # the same dropout
    logits = model(batch)
    objective.on_loss(state, batch, logits, torch.nn.functional.cross_entropy(logits, batch.labels))
    return dict(state.window_scalars), model


def test_online_teachers_give_what_the_store_holds(hidden_store: Path, tmp_path: Path) -> None:
    """The same student batch through store-read and online teachers: the same term values."""
    offline = student_text(hidden_store)
    online = online_recipe(hidden_store, offline)
    (stored, _), (live, _) = term_values(tmp_path, offline), term_values(tmp_path, online)
    assert stored.keys() == live.keys()
    for key in stored:
        assert stored[key] == pytest.approx(live[key], rel=1e-5), key
    # and a run trains with them
    recipe = load_recipe(write(tmp_path / "online.yaml", online), [f"output_dir={tmp_path}"])
    assert train(recipe, progress=False).steps == 2


def test_online_teachers_must_have_the_students_tasks(hidden_store: Path, tmp_path: Path) -> None:
    runs = json.loads((hidden_store / "runs.json").read_text())
    text = (
        student_text(hidden_store)
        .replace("  rte:\n", "  mrpc:\n")
        .replace(
            f"distill: {{store: {hidden_store / 'store'}}}", f"distill: {{online: [{runs[0]}]}}"
        )
    )
    recipe = load_recipe(write(tmp_path / "s.yaml", text), [f"output_dir={tmp_path}"])
    with pytest.raises(KdnluError) as err:
        train(recipe, progress=False)
    assert str(err.value) == f"distill.online: teacher {runs[0]} has no task mrpc (rte)"


ATTENTION_TERM = "      - {loss: attention_kl, weight: 1.0, layers: {1: 2}}\n"


def with_attention(text: str) -> str:
    return text.replace("train: {lr", ATTENTION_TERM + "train: {lr")


def test_attention_kl_matches_a_hand_computed_value() -> None:
    student = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    teacher = torch.tensor([[0.25, 0.75, 0.0], [0.2, 0.3, 0.5]])
    kl = LOSSES.get("attention_kl").build(LOSSES.get("attention_kl").config())
    # row 1: 0.25 ln(0.5) + 0.75 ln(1.5); a masked key (0 in both) adds nothing; row 2: 0
    expected = (0.25 * np.log(0.5) + 0.75 * np.log(1.5)) / 2
    assert float(kl(student, teacher)) == pytest.approx(expected)


def test_the_attention_store_holds_the_teachers_mean_cls_attention(hidden_store: Path) -> None:
    from kdnlu.data import collate, encode_examples
    from kdnlu.store import describe_store
    from kdnlu.trained import load_trained

    store = LogitStore.open(hidden_store / "store" / "rte" / "train-attention")
    spec = store.spec
    assert (spec.kind, spec.layers, spec.classes, spec.length) == ("attention", (1, 2), 2, 48)
    assert "mean attention of the [CLS] query at layers [1, 2], 2 heads over 48" in (
        describe_store(store)
    )
    rows, maps = [3, 120], []
    for run_dir in json.loads((hidden_store / "runs.json").read_text()):
        run = load_trained(run_dir)
        run.model.eval()
        examples = run.tasks["rte"].read("train")
        split = encode_examples("rte", run.model.encoder.tokenizer, [examples[i] for i in rows], 48)
        batch = collate(split, [0, 1], torch.long)
        with torch.no_grad():
            _, attentions = run.model.encoder.layer_outputs(
                batch.input_ids, batch.attention_mask, batch.token_type_ids, attentions=True
            )
        width = batch.input_ids.shape[1]
        padded = np.zeros((2, 2, 2, 48), np.float32)
        padded[..., :width] = torch.stack([a[:, :, 0] for a in attentions], 1).numpy()
        maps.append(padded)
    stored = store.states(rows, [1, 2])
    np.testing.assert_allclose(stored, np.mean(maps, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stored.sum(-1), 1.0, rtol=1e-5)  # distributions over the keys


def test_an_attention_term_trains_and_matches_online_teachers(
    hidden_store: Path, tmp_path: Path
) -> None:
    offline = with_attention(student_text(hidden_store))
    stored, model = term_values(tmp_path, offline)
    # the student's attention rows sum to one: attention dropout is off for the term
    sums = model.encoder.captured_attentions[0].sum(-1)  # [B, heads, T]
    torch.testing.assert_close(sums, torch.ones_like(sums))
    live, _ = term_values(tmp_path, online_recipe(hidden_store, offline))
    assert stored["distill/rte/attention_kl"][0] > 0
    assert stored["distill/rte/attention_kl"] == pytest.approx(
        live["distill/rte/attention_kl"], rel=1e-5
    )
    recipe = load_recipe(write(tmp_path / "train.yaml", offline), [f"output_dir={tmp_path}"])
    record = json.loads(
        (train(recipe, progress=False).run_dir / "metrics.jsonl").read_text().splitlines()[-1]
    )
    assert "distill/rte/attention_kl" in record["train_scalars"]


def test_an_attention_term_needs_the_teachers_head_count(
    hidden_store: Path, tmp_path: Path
) -> None:
    text = with_attention(student_text(hidden_store)).replace(
        "hidden_size: 16, heads: 2", "hidden_size: 16, heads: 4"
    )
    recipe = load_recipe(write(tmp_path / "s.yaml", text), [f"output_dir={tmp_path}"])
    with pytest.raises(KdnluError) as err:
        train(recipe, progress=False)
    folder = hidden_store / "store" / "rte" / "train-attention"
    assert str(err.value) == (
        f"tasks.rte.objective: the student's layers have 4 attention heads, the teachers' in "
        f"{folder} 2; attention terms compare head by head"
    )
