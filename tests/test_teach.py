"""kdnlu-teach: teacher runs -> logit stores; alignment, resume, refusals, and store inspect."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import GLUE_SAMPLE, TINY_RECIPE, write
from kdnlu.cli import main, teach_main
from kdnlu.data import encode_examples
from kdnlu.errors import KdnluError
from kdnlu.evaluation import predict_outputs
from kdnlu.recipe import load_recipe
from kdnlu.store import LogitStore, StoreWriter, fingerprint_examples
from kdnlu.teach import TeachOptions, teach
from kdnlu.trained import load_trained
from kdnlu.trainer import train


@pytest.fixture(scope="module")
def teachers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three tiny teachers: different seeds and dropout, trained a few steps on RTE and MRPC."""
    root = tmp_path_factory.mktemp("teachers")
    recipe_path = write(root / "teacher.yaml", TINY_RECIPE)
    runs = []
    for seed, dropout in ((1, 0.1), (2, 0.2), (3, 0.3)):
        overrides = [
            f"output_dir={root}/runs",
            f"name=teacher_{seed}",
            f"train.seed={seed}",
            f"encoder.dropout={dropout}",
            "train.max_steps=3",
        ]
        runs.append(train(load_recipe(recipe_path, overrides), progress=False).run_dir)
    return runs


def test_store_rows_are_each_teachers_outputs_in_example_order(
    teachers: list[Path], tmp_path: Path
) -> None:
    stores = teach(
        teachers, tmp_path / "store", options=TeachOptions(shard_rows=64), progress=False
    )
    assert [(s.spec.task, s.spec.split) for s in stores] == [
        ("rte", "train"),
        ("rte", "dev"),
        ("mrpc", "train"),
        ("mrpc", "dev"),
    ]
    store = LogitStore.open(tmp_path / "store" / "rte" / "train")
    run = load_trained(teachers[1])
    examples = run.tasks["rte"].read("train")
    # the whole training file (300 rows), though the teachers trained on its first 32
    assert store.spec.rows == len(examples) == 300 and store.spec.shards == 5
    assert store.spec.fingerprint == fingerprint_examples(examples)
    assert store.spec.teachers[1].startswith("teacher_2/best@")
    rows = [299, 0, 131, 64, 63]
    encoded = encode_examples("rte", run.model.encoder.tokenizer, [examples[i] for i in rows], 48)
    expected = predict_outputs(run.model, "rte", run.tasks["rte"], encoded, 8, torch.device("cpu"))
    np.testing.assert_allclose(store.logits(rows)[:, 1], expected, atol=2e-3, rtol=1e-3)  # fp16
    assert store.labels(rows).tolist() == [float(examples[i].label) for i in rows]


def test_an_interrupted_teach_resumes(
    teachers: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = TeachOptions(splits=("train",), shard_rows=50, dtype="float32")
    written: list[int] = []
    original = StoreWriter.write_shard

    def stop_after_two(self, shard, arrays):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(shard)
        original(self, shard, arrays)

    monkeypatch.setattr(StoreWriter, "write_shard", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        teach(teachers, tmp_path / "s", tasks=["rte"], options=options, progress=False)
    with pytest.raises(KdnluError, match="is an unfinished logit store"):
        LogitStore.open(tmp_path / "s" / "rte" / "train")
    monkeypatch.setattr(StoreWriter, "write_shard", original)
    resumed_shards: list[int] = []
    monkeypatch.setattr(
        StoreWriter,
        "write_shard",
        lambda self, shard, arrays: (resumed_shards.append(shard), original(self, shard, arrays)),
    )
    (store,) = teach(teachers, tmp_path / "s", tasks=["rte"], options=options, progress=False)
    assert written == [0, 1] and resumed_shards == [2, 3, 4, 5]
    monkeypatch.setattr(StoreWriter, "write_shard", original)
    (clean,) = teach(teachers, tmp_path / "c", tasks=["rte"], options=options, progress=False)
    np.testing.assert_array_equal(store.logits(range(300)), clean.logits(range(300)))


def test_teachers_must_read_the_same_examples(teachers: list[Path], tmp_path: Path) -> None:
    data = tmp_path / "glue"
    shutil.copytree(GLUE_SAMPLE / "RTE", data / "RTE")
    shutil.copytree(GLUE_SAMPLE / "MRPC", data / "MRPC")
    train_file = data / "RTE" / "train.tsv"
    lines = train_file.read_text().split("\n")
    lines[5] = lines[5].replace(" ", "  ", 1)  # one row's text differs by one space
    train_file.write_text("\n".join(lines))
    recipe = load_recipe(
        write(tmp_path / "t.yaml", TINY_RECIPE),
        [f"data_root={data}", f"output_dir={tmp_path}/runs", "train.max_steps=1"],
    )
    other = train(recipe, progress=False).run_dir
    with pytest.raises(KdnluError) as err:
        teach([teachers[0], other], tmp_path / "s", tasks=["rte"], progress=False)
    assert str(err.value) == (
        f"teachers {teachers[0]} and {other} read different rte train examples (is their "
        "data_root the same?); a store needs one set of examples"
    )
    with pytest.raises(KdnluError, match=r"has no task qnli; it has rte, mrpc"):
        teach(teachers, tmp_path / "s", tasks=["qnli"], progress=False)
    with pytest.raises(KdnluError, match="the same teacher checkpoint is given twice"):
        teach([teachers[0], teachers[0]], tmp_path / "s", progress=False)


def test_cli_teach_and_inspect(teachers: list[Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "store"
    args = [*map(str, teachers), "--out", str(out), "--tasks", "mrpc", "--quiet"]
    assert teach_main(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"2 logit store(s) under {out}:")
    assert main(["store", "inspect", str(out / "mrpc" / "dev")]) == 0
    report = capsys.readouterr().out
    store = LogitStore.open(out / "mrpc" / "dev")
    logits, gold = store.logits(range(100)), store.labels(range(100))
    accuracy = [100 * np.mean(logits[:, t].argmax(-1) == gold) for t in range(3)]
    ensemble = 100 * np.mean(store.ensemble_probs(range(100)).argmax(-1) == gold)
    lines = report.splitlines()
    assert lines[1] == (
        "  task mrpc, split dev: 100 rows (100 labelled), 2 outputs, dense float16, 1 shard(s)"
    )
    for t in range(3):
        assert lines[4 + t].endswith(f"accuracy {accuracy[t]:.2f}"), lines[4 + t]
    assert lines[7].startswith(f"  ensemble accuracy {ensemble:.2f}, teachers agree on ")
    # a folder of stores: every store under it
    assert main(["store", "inspect", str(out)]) == 0
    assert capsys.readouterr().out.count("store: ") == 2
    assert main(["store", "inspect", str(tmp_path)]) == 0  # found below, recursively
    capsys.readouterr()
    assert main(["store", "inspect", str(tmp_path / "nothing")]) == 2
    assert "is not a logit store: it has no header.json" in capsys.readouterr().err


def test_top_k_store(teachers: list[Path], tmp_path: Path) -> None:
    options = TeachOptions(splits=("dev",), top_k=1)
    (store,) = teach(teachers, tmp_path / "k", tasks=["rte"], options=options, progress=False)
    dense = teach(teachers, tmp_path / "d", tasks=["rte"], options=TeachOptions(splits=("dev",)))[0]
    ids, probs, rest = store.topk(range(100))
    ensemble = dense.ensemble_probs(range(100))
    assert ids[:, 0].tolist() == ensemble.argmax(-1).tolist()
    np.testing.assert_allclose(probs[:, 0] + rest, 1.0, atol=1e-3)


def scored_copies(teachers: list[Path], root: Path, rte: list[float], mrpc: list[float]):
    """Copies of the teachers whose stored checkpoints record the given dev scores."""
    import json

    copies = []
    for teacher, rte_acc, mrpc_f1 in zip(teachers, rte, mrpc, strict=True):
        copy = shutil.copytree(teacher, root / teacher.name)
        state_file = load_trained(copy).checkpoint / "trainer_state.json"
        state = json.loads(state_file.read_text())
        state["dev"] = {"rte": {"accuracy": rte_acc}, "mrpc": {"f1": mrpc_f1, "accuracy": 50.0}}
        state_file.write_text(json.dumps(state))
        copies.append(copy)
    return copies


def test_keep_best_stores_each_tasks_best_teachers_by_dev_score(
    teachers: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runs = scored_copies(teachers, tmp_path / "t", rte=[50.0, 70.0, 60.0], mrpc=[90.0, 10.0, 80.0])
    with caplog.at_level("INFO", logger="kdnlu.teach"):
        stores = teach(
            runs, tmp_path / "store", options=TeachOptions(keep_best=2, splits=("dev",)),
            progress=False,
        )  # fmt: skip
    names = {s.spec.task: [t.split("/")[0] for t in s.spec.teachers] for s in stores}
    assert names == {"rte": ["teacher_2", "teacher_3"], "mrpc": ["teacher_1", "teacher_3"]}
    assert (
        "rte: keeping the 2 best teachers by dev score: teacher_2 (70.00), teacher_3 (60.00); "
        "leaving out teacher_1 (50.00)"
    ) in caplog.messages


def test_keep_best_refuses_an_impossible_count_and_teachers_without_scores(
    teachers: list[Path], tmp_path: Path
) -> None:
    with pytest.raises(KdnluError, match=r"^--keep-best 4: give a number from 1 to 3"):
        teach(teachers, tmp_path / "s", options=TeachOptions(keep_best=4), progress=False)
    runs = scored_copies(teachers, tmp_path / "t", rte=[1.0, 2.0, 3.0], mrpc=[1.0, 2.0, 3.0])
    state_file = load_trained(runs[0]).checkpoint / "trainer_state.json"
    state_file.write_text('{"step": 3}')
    with pytest.raises(KdnluError) as err:
        teach(runs, tmp_path / "s", options=TeachOptions(keep_best=2), progress=False)
    assert str(err.value) == (
        f"--keep-best ranks teachers by their dev score on rte at the checkpoint stored, but "
        f"{runs[0]} recorded none there (trained without evaluation?)"
    )
    assert not (tmp_path / "s").exists()


def test_keep_best_keeps_the_lowest_errors_of_an_error_metric_task(tmp_path: Path) -> None:
    """A task scored by an error (mae) ranks its teachers lowest first."""
    import json
    from types import SimpleNamespace

    from kdnlu.task import Task
    from kdnlu.teach import best_teachers

    task = Task("sts", {}, reader=lambda path, split: [], label_names=None, metrics=("mae",))
    runs = []
    for name, error in (("a", 0.9), ("b", 0.4), ("c", 0.6)):
        checkpoint = tmp_path / name / "checkpoints" / "best"
        checkpoint.mkdir(parents=True)
        (checkpoint / "trainer_state.json").write_text(json.dumps({"dev": {"sts": {"mae": error}}}))
        runs.append(
            SimpleNamespace(run_dir=tmp_path / name, checkpoint=checkpoint, tasks={"sts": task})
        )
    assert best_teachers(runs, "sts", 2) == [1, 2]
