"""Distillation: the KD loss against a plain reference, exact alignment of teacher rows with
student examples, recipe checks, and a tiny teachers -> store -> student pipeline."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import GLUE_SAMPLE, TINY_RECIPE, write
from kdnlu.callbacks import Callback, TrainState
from kdnlu.data import Batch, encode_examples
from kdnlu.distill import Distiller
from kdnlu.errors import KdnluError, RecipeError
from kdnlu.recipe import load_recipe
from kdnlu.registry import TASKS
from kdnlu.store import StoreSpec, StoreWriter, fingerprint_examples
from kdnlu.teach import TeachOptions, teach
from kdnlu.trainer import train

TEACHERS = ("t1", "t2", "t3")


def write_store(folder: Path, key: str, logits: np.ndarray, labels: np.ndarray, fp: str) -> None:
    spec = StoreSpec(
        task=key,
        split="train",
        rows=len(logits),
        classes=logits.shape[-1],
        teachers=TEACHERS[: logits.shape[1]],
        fingerprint=fp,
        dtype="float32",
        shard_rows=64,
    )
    writer = StoreWriter(folder / key / "train", spec)
    for shard in writer.pending:
        r = spec.shard_range(shard)
        writer.write_shard(
            shard, {"logits": logits[r.start : r.stop], "labels": labels[r.start : r.stop]}
        )
    writer.finish()


def glue_train(key: str):
    task = TASKS.get(key).build(data_root=str(GLUE_SAMPLE))
    return task.read("train")


def random_store(root: Path, key: str, seed: int = 0) -> np.ndarray:
    examples = glue_train(key)
    logits = np.random.default_rng(seed).normal(size=(len(examples), 3, 2)).astype(np.float32)
    labels = np.array([ex.label for ex in examples], dtype=np.float32)
    write_store(root, key, logits, labels, fingerprint_examples(examples))
    return logits


def distill_recipe(tmp_path: Path, store: Path, extra: str = "") -> Path:
    text = TINY_RECIPE + f"distill: {{store: {store}{extra}}}\n"
    return write(tmp_path / "student.yaml", text)


def reference(logits, hard, teacher, alpha, temperature):
    """alpha * hard + (1 - alpha) * T^2 * CE(mean_t softmax(teacher / T), softmax(logits / T))."""
    target = torch.softmax(teacher / temperature, -1).mean(1)
    log_q = torch.log_softmax(logits / temperature, -1)
    soft = -(target * log_q).sum(-1).mean()
    return alpha * hard + (1 - alpha) * temperature**2 * soft


@pytest.mark.parametrize(("alpha", "temperature"), [(0.5, 1.0), (0.0, 2.0), (1.0, 3.0), (0.3, 0.5)])
def test_kd_loss_matches_the_reference(tmp_path: Path, alpha: float, temperature: float) -> None:
    teacher = random_store(tmp_path / "store", "rte")
    recipe = load_recipe(
        distill_recipe(
            tmp_path, tmp_path / "store", f", alpha: {alpha}, temperature: {temperature}"
        )
    )
    from kdnlu.store import LogitStore

    distiller = Distiller(recipe, {"rte": LogitStore.open(tmp_path / "store" / "rte" / "train")})
    rows = [7, 250, 3, 64]
    logits = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 1, 0])
    batch = Batch("rte", torch.tensor(rows), *(torch.zeros(4, 3, dtype=torch.long),) * 3, labels)
    state = TrainState(run_dir=tmp_path, total_steps=10)

    def ours(z):
        hard = torch.nn.functional.cross_entropy(z, labels)
        return distiller.on_loss(state, batch, z, hard)

    def theirs(z):
        hard = torch.nn.functional.cross_entropy(z, labels)
        return reference(z, hard, torch.from_numpy(teacher[rows]).double(), alpha, temperature)

    value = ours(logits)
    (grad,) = torch.autograd.grad(value, logits)
    expected = theirs(logits)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-6)
    assert set(state.window_scalars) == {"distill/rte/hard", "distill/rte/soft"}


@pytest.mark.parametrize("teachers", [[2], [1, 3]])
def test_a_subset_of_teachers_is_the_ensemble(tmp_path: Path, teachers: list[int]) -> None:
    teacher = random_store(tmp_path / "store", "rte")
    recipe = load_recipe(distill_recipe(tmp_path, tmp_path / "store", f", teachers: {teachers}"))
    from kdnlu.store import LogitStore

    distiller = Distiller(recipe, {"rte": LogitStore.open(tmp_path / "store" / "rte" / "train")})
    rows = [5, 9, 200]
    logits = torch.randn(3, 2, dtype=torch.float64)
    labels = torch.tensor([1, 0, 1])
    batch = Batch("rte", torch.tensor(rows), *(torch.zeros(3, 3, dtype=torch.long),) * 3, labels)
    hard = torch.nn.functional.cross_entropy(logits, labels)
    value = distiller.on_loss(TrainState(run_dir=tmp_path, total_steps=10), batch, logits, hard)
    members = torch.from_numpy(teacher[rows][:, [t - 1 for t in teachers]]).double()
    torch.testing.assert_close(value.double(), reference(logits, hard, members, 0.5, 1.0))


def test_teacher_numbers_beyond_the_store_are_refused(tmp_path: Path) -> None:
    random_store(tmp_path / "store", "rte")
    recipe = load_recipe(distill_recipe(tmp_path, tmp_path / "store", ", teachers: [1, 4]"))
    with pytest.raises(KdnluError) as err:
        train(recipe, progress=False)
    assert str(err.value) == (
        f"distill.teachers [1, 4]: the store of task rte ({tmp_path / 'store' / 'rte' / 'train'})"
        " holds 3 teacher(s), numbered from 1"
    )


def test_alpha_and_temperature_schedules(tmp_path: Path) -> None:
    random_store(tmp_path / "store", "rte")
    extra = ", alpha: 0.9, alpha_final: 0.5, temperature: 4.0, temperature_final: 1.0"
    config = load_recipe(distill_recipe(tmp_path, tmp_path / "store", extra)).distill
    assert config.at(0.0) == (0.9, 4.0)
    assert config.at(0.5) == pytest.approx((0.7, 2.5))
    assert config.at(1.0) == pytest.approx((0.5, 1.0))


def test_teacher_rows_follow_the_student_examples(tmp_path: Path) -> None:
    """Shuffling, length bucketing and the mtdnn sampler mix both tasks' batches; every batch's
    teacher rows must be those of its own examples."""
    for key in ("rte", "mrpc"):
        random_store(tmp_path / "store", key)
    seen = []
    examples = {key: glue_train(key) for key in ("rte", "mrpc")}

    class Probe(Callback):
        def on_train_start(self, state, model) -> None:
            self.tokenizer = model.encoder.tokenizer

        def on_loss(self, state, batch, logits, loss):
            rows = batch.indices.tolist()
            again = encode_examples(
                batch.task, self.tokenizer, [examples[batch.task][i] for i in rows], 48
            )
            for r in range(len(rows)):  # the batch's tokens are those of examples[rows]
                start, end = again.offsets[r], again.offsets[r + 1]
                assert batch.input_ids[r, : end - start].tolist() == again.ids[start:end].tolist()
            store = distiller_store[batch.task]
            assert store.labels(rows).tolist() == batch.labels.float().tolist()
            seen.append((batch.task, tuple(rows)))
            return loss

    from kdnlu.store import LogitStore

    distiller_store = {
        k: LogitStore.open(tmp_path / "store" / k / "train") for k in ("rte", "mrpc")
    }
    recipe = load_recipe(
        distill_recipe(tmp_path, tmp_path / "store"),
        [
            "tasks.rte.train_rows=64",
            "tasks.mrpc.train_rows=64",
            "train.epochs=2",
            "train.batch_size=8",
        ],
    )
    train(recipe, progress=False, callbacks=[Probe()])
    assert len(seen) == 32 and {task for task, _ in seen} == {"rte", "mrpc"}
    order = [task for task, _ in seen]
    assert order != sorted(order)  # the tasks' batches are interleaved
    assert sorted(i for task, rows in seen[:16] if task == "rte" for i in rows) == list(range(64))


def test_alpha_one_is_plain_training(tmp_path: Path) -> None:
    random_store(tmp_path / "store", "rte")
    plain = train(
        load_recipe(write(tmp_path / "p.yaml", TINY_RECIPE), ["train.max_steps=3"]), progress=False
    )
    student = train(
        load_recipe(
            distill_recipe(tmp_path, tmp_path / "store", ", alpha: 1.0"), ["train.max_steps=3"]
        ),
        progress=False,
    )
    a, b = (load_file(r.run_dir / "checkpoints/last/model.safetensors") for r in (plain, student))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((student.run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(record["train_scalars"]) == {"distill/rte/hard", "distill/rte/soft"}


def test_store_of_other_data_is_refused(tmp_path: Path) -> None:
    examples = glue_train("rte")
    logits = np.zeros((len(examples), 3, 2), np.float32)
    write_store(tmp_path / "store", "rte", logits, np.zeros(len(examples), np.float32), "0" * 64)
    recipe = load_recipe(distill_recipe(tmp_path, tmp_path / "store"))
    with pytest.raises(KdnluError) as err:
        train(recipe, progress=False)
    message = str(err.value)
    assert message.startswith(
        f"distill: task rte: {tmp_path / 'store' / 'rte' / 'train'} does not fit"
    )
    assert "its examples '0000000000" in message and "run kdnlu-teach on this data again" in message
    assert not (tmp_path / "runs").exists()  # refused before any run dir was made


def test_top_k_store_is_refused_before_training(tmp_path: Path) -> None:
    examples = glue_train("rte")
    spec = StoreSpec(
        task="rte",
        split="train",
        rows=len(examples),
        classes=2,
        teachers=("ensemble",),
        fingerprint=fingerprint_examples(examples),
        kind="topk",
        top_k=1,
    )
    writer = StoreWriter(tmp_path / "store" / "rte" / "train", spec)
    n = len(examples)
    ids = np.zeros((n, 1), np.int32)
    writer.write_shard(
        0,
        {
            "topk_ids": ids,
            "topk_probs": np.ones((n, 1)),
            "rest": np.zeros(n),
            "labels": np.zeros(n),
        },
    )
    writer.finish()
    with pytest.raises(KdnluError, match="is a top-1 store; students learn from dense stores"):
        train(load_recipe(distill_recipe(tmp_path, tmp_path / "store")), progress=False)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (", tasks: [qnli]", "distill.tasks: 'qnli' is not a task of this recipe (rte, mrpc)"),
        (", soft_loss: mse", "distill.soft_loss: loss 'mse' does not take soft targets"),
        (", alpha: 1.5", "alpha"),
        (", teachers: [0]", "distill.teachers: must be distinct teacher numbers from 1"),
    ],
)
def test_distill_section_is_checked(tmp_path: Path, extra: str, message: str) -> None:
    (tmp_path / "store").mkdir()
    with pytest.raises(RecipeError, match=re.escape(message)):
        load_recipe(distill_recipe(tmp_path, tmp_path / "store", extra))
    with pytest.raises(
        RecipeError, match=r"distill.store: .*missing does not exist; write it with"
    ):
        load_recipe(distill_recipe(tmp_path, tmp_path / "missing"))


def test_tiny_pipeline_teachers_store_student(tmp_path: Path) -> None:
    """Three tiny teachers, kdnlu-teach, then a student distilled on RTE with MRPC on gold."""
    recipe_path = write(tmp_path / "teacher.yaml", TINY_RECIPE)
    teachers = []
    for seed in (1, 2, 3):
        overrides = [f"name=teacher_{seed}", f"train.seed={seed}", "train.max_steps=4"]
        teachers.append(train(load_recipe(recipe_path, overrides), progress=False).run_dir)
    teach(
        teachers,
        tmp_path / "store",
        tasks=["rte"],
        options=TeachOptions(splits=("train",)),
        progress=False,
    )
    recipe = load_recipe(
        distill_recipe(tmp_path, tmp_path / "store", ", alpha: 0.0"),
        ["train.epochs=6", "train.lr=3e-3", "train.warmup=0.0"],
    )
    result = train(recipe, progress=False)
    records = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    soft = [r["train_scalars"]["distill/rte/soft"] for r in records]
    assert soft[-1] < soft[0], soft  # the student moves towards the ensemble
    assert "distill/mrpc/soft" not in records[-1]["train_scalars"]  # MRPC has no teacher
    assert set(records[-1]["dev"]) == {"rte", "mrpc"}
    resolved = load_recipe(result.run_dir / "recipe.yaml")
    assert resolved.distill == recipe.distill


KD_PLUGIN = '''\
import torch

from kdnlu.loss import Loss
from kdnlu.registry import LOSSES

CALLS = []


@LOSSES.register("squared_kd_for_test", target="soft")
def squared_kd(config):
    """Squared error between student and teacher probabilities."""

    def loss(logits, targets):
        CALLS.append(tuple(logits.shape))
        return ((torch.softmax(logits, -1) - targets) ** 2).sum(-1).mean()

    return Loss("soft", loss)
'''


def test_a_plugin_soft_loss_is_the_one_distillation_uses(tmp_path: Path) -> None:
    """distill.soft_loss names any registered soft loss, here one from a recipe's imports:."""
    import sys

    from kdnlu.registry import LOSSES

    teacher = random_store(tmp_path / "store", "rte")
    write(tmp_path / "kd_plugin.py", KD_PLUGIN)
    path = distill_recipe(tmp_path, tmp_path / "store", ", soft_loss: squared_kd_for_test")
    path.write_text("imports: [kd_plugin.py]\n" + path.read_text())
    try:
        recipe = load_recipe(path)
        calls = sys.modules[LOSSES.get("squared_kd_for_test").module].CALLS
        train(recipe, progress=False)
        assert calls == [(16, 2), (16, 2)]  # the two rte batches of 16 rows, 2 classes
        from kdnlu.store import LogitStore

        store = LogitStore.open(tmp_path / "store" / "rte" / "train")
        distiller = Distiller(recipe, {"rte": store})
        rows, logits = [3, 9], torch.randn(2, 2, dtype=torch.float64)
        tokens = (torch.zeros(2, 3, dtype=torch.long),) * 3
        batch = Batch("rte", torch.tensor(rows), *tokens, torch.tensor([0, 1]))
        hard = torch.tensor(0.0, dtype=torch.float64)
        value = distiller.on_loss(TrainState(run_dir=tmp_path, total_steps=10), batch, logits, hard)
        target = torch.softmax(torch.from_numpy(teacher[rows]).double(), -1).mean(1)
        expected = 0.5 * ((torch.softmax(logits, -1) - target) ** 2).sum(-1).mean()
        torch.testing.assert_close(value, expected)
    finally:
        LOSSES.unregister("squared_kd_for_test")
