"""kdnlu predict (submission files) and kdnlu export (Hugging Face encoder + heads)."""

import json
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import TINY_RECIPE, write
from kdnlu.cli import main
from kdnlu.errors import KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.registry import HEADS
from kdnlu.trained import load_trained
from kdnlu.trainer import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    recipe = load_recipe(
        write(tmp / "r.yaml", TINY_RECIPE), [f"output_dir={tmp / 'runs'}", "train.max_steps=2"]
    )
    return train(recipe, progress=False).run_dir


def test_predict_test_writes_submission_files_and_zip(run_dir: Path, capsys) -> None:
    assert main(["predict", str(run_dir), "--split", "test", "--quiet"]) == 0
    run = load_trained(run_dir)
    out = run_dir / "submission"
    expected = []
    for key, task in run.tasks.items():
        for split in task.test_splits:
            name = task.submission.get(split, f"{key}-{split}.tsv")
            expected.append(name)
            lines = (out / name).read_text().splitlines()
            examples = task.read(split)
            assert lines[0] == "index\tprediction" and len(lines) == len(examples) + 1
            assert [line.split("\t")[0] for line in lines[1:]] == [ex.uid for ex in examples]
            assert {line.split("\t")[1] for line in lines[1:]} <= set(task.label_names)
    assert sorted(zipfile.ZipFile(out / "submission.zip").namelist()) == sorted(expected)
    assert f"predicted with {run_dir / 'checkpoints' / 'best'}:" in capsys.readouterr().out


def test_predict_only_the_named_tasks(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sub"
    assert main(["predict", str(run_dir), "--tasks", "mrpc", "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["MRPC.tsv", "submission.zip"]
    assert zipfile.ZipFile(out / "submission.zip").namelist() == ["MRPC.tsv"]
    capsys.readouterr()
    assert main(["predict", str(run_dir), "--tasks", "mrpc,qqp", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"error: --tasks: qqp is not a task of {run_dir}; its tasks are rte, mrpc\n"
    )


def test_predict_dev_matches_the_recorded_evaluation(run_dir: Path, tmp_path: Path) -> None:
    assert main(["predict", str(run_dir), "--split", "dev", "--out", str(tmp_path), "--quiet"]) == 0
    run = load_trained(run_dir)
    task = run.tasks["rte"]
    gold = [task.label_names[ex.label] for ex in task.read("dev", 16)]
    predicted = [
        line.split("\t")[1] for line in (tmp_path / "rte-dev.tsv").read_text().splitlines()[1:17]
    ]
    best = json.loads((run_dir / "checkpoints" / "best" / "trainer_state.json").read_text())
    accuracy = 100 * sum(p == g for p, g in zip(predicted, gold, strict=True)) / 16
    assert accuracy == pytest.approx(best["dev"]["rte"]["accuracy"])


def test_export_loads_with_transformers_offline(run_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path / "exported"
    assert main(["export", str(run_dir), str(out)]) == 0
    run = load_trained(run_dir)
    model = AutoModel.from_pretrained(str(out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    enc = tokenizer(["The cat sat."], ["A cat was sitting."], return_tensors="pt")
    assert (
        enc["input_ids"].tolist()
        == run.model.encoder.tokenizer(
            ["The cat sat."], ["A cat was sitting."], return_tensors="pt"
        )["input_ids"].tolist()
    )
    with torch.no_grad():
        ours = run.model.encoder(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
        theirs = model(**enc).last_hidden_state
        assert torch.allclose(ours, theirs, atol=1e-5)
        spec = run.recipe.tasks["mrpc"]
        head = HEADS.get(spec.head.name).build(spec.head.config, hidden_size=32, num_outputs=2)
        head.load_state_dict(load_file(out / "heads" / "mrpc.safetensors"))
        head.eval()
        assert torch.allclose(
            head(theirs, enc["attention_mask"]),
            run.model.heads["mrpc"](ours, enc["attention_mask"]),
            atol=1e-5,
        )
    readme = (out / "README.md").read_text()
    assert "| mrpc | classification |" in readme and "AutoModel.from_pretrained" in readme


def test_export_refuses_an_existing_folder(run_dir: Path, tmp_path: Path) -> None:
    from kdnlu.export import export_run

    (tmp_path / "taken").mkdir()
    with pytest.raises(KdnluError, match="already exists"):
        export_run(load_trained(run_dir), tmp_path / "taken")


def test_not_a_run_dir(tmp_path: Path, capsys) -> None:
    assert main(["predict", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err
        == f"error: {tmp_path} is not a run directory: it has no recipe.yaml\n"
    )


def test_export_after_the_training_data_is_gone(tmp_path: Path) -> None:
    import shutil

    from conftest import GLUE_SAMPLE

    shutil.copytree(GLUE_SAMPLE, tmp_path / "glue")
    text = TINY_RECIPE.replace(str(GLUE_SAMPLE), str(tmp_path / "glue"))
    recipe = load_recipe(write(tmp_path / "r.yaml", text), ["train.max_steps=1"])
    run_dir = train(recipe, progress=False).run_dir
    shutil.rmtree(tmp_path / "glue")
    assert main(["export", str(run_dir), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "heads" / "rte.safetensors").is_file()


def test_loading_a_run_builds_its_losses_once(run_dir: Path, monkeypatch) -> None:
    import kdnlu.build

    built = []
    real = kdnlu.build.build_loss

    def counted(key, spec):
        built.append(key)
        return real(key, spec)

    monkeypatch.setattr(kdnlu.build, "build_loss", counted)
    run = load_trained(run_dir)
    assert sorted(built) == ["mrpc", "rte"] and set(run.losses) == {"mrpc", "rte"}
