"""Vocabulary-level distillation, its models: teachers, top-k stores, students, the command."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_mlm_corpus import SENTENCES

from conftest import GLUE_SAMPLE
from kdnlu.errors import KdnluError
from kdnlu.hf import load_tokenizer
from kdnlu.mlm.cli import main as mlm_main
from kdnlu.mlm.corpus import MaskedCorpus, Masking, mask_corpus, task_sentences
from kdnlu.mlm.distil import DistilOptions, distil_mlm, partial_path
from kdnlu.mlm.models import cut_student, fit_head, load_mlm, ready_teacher
from kdnlu.mlm.teach import teach_mlm
from kdnlu.store import LogitStore


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


def tiny_mlm_folder(folder: Path, tokenizer, layers: int = 4, with_head: bool = True) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertModel

    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    model = BertForMaskedLM(config) if with_head else BertModel(config)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_cut_student_keeps_the_chosen_layers(tokenizer, tmp_path: Path) -> None:
    teacher = load_mlm(str(tiny_mlm_folder(tmp_path / "t", tokenizer)))
    assert teacher.head_trained and teacher.layers == 4
    student = cut_student(teacher, [0, 3])
    assert student.layers == 2
    t_state, s_state = teacher.model.state_dict(), student.model.state_dict()
    for key, value in s_state.items():
        source = key.replace("encoder.layer.1.", "encoder.layer.3.")
        torch.testing.assert_close(value, t_state[source], rtol=0, atol=0)
    decoder = student.model.cls.predictions.decoder.weight
    assert decoder.data_ptr() == student.model.bert.embeddings.word_embeddings.weight.data_ptr()
    with pytest.raises(
        KdnluError, match=r"^student: layers \[4\] do not exist: the checkpoint has layers 0-3$"
    ):
        cut_student(teacher, [0, 4])


def test_head_fitting_trains_only_the_head(tokenizer, tmp_path: Path) -> None:
    folder = tiny_mlm_folder(tmp_path / "enc", tokenizer, with_head=False)
    with pytest.raises(KdnluError, match="fit one first"):
        ready_teacher(str(folder))
    mlm = load_mlm(str(folder))
    assert not mlm.head_trained
    encoder_before = {k: v.clone() for k, v in mlm.model.bert.state_dict().items()}
    head_before = mlm.model.cls.predictions.transform.dense.weight.clone()
    corpus = mask_corpus(SENTENCES * 8, tokenizer, Masking(seed=0))
    losses = fit_head(mlm, corpus, steps=30, batch_size=8, lr=1e-2, progress=False)
    assert mlm.head_trained and len(losses) == 30
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.25
    for key, value in mlm.model.bert.state_dict().items():
        torch.testing.assert_close(value, encoder_before[key], rtol=0, atol=0)
    assert not torch.equal(mlm.model.cls.predictions.transform.dense.weight, head_before)


def test_head_fitting_can_train_the_top_layers(tokenizer, tmp_path: Path) -> None:
    folder = tiny_mlm_folder(tmp_path / "enc", tokenizer, layers=3, with_head=False)
    mlm = load_mlm(str(folder))
    before = {k: v.clone() for k, v in mlm.model.bert.state_dict().items()}
    corpus = mask_corpus(SENTENCES * 8, tokenizer, Masking(seed=0))
    with pytest.raises(KdnluError, match="between 0 and the model's 3 layers, got 4"):
        fit_head(mlm, corpus, steps=2, batch_size=8, train_layers=4, progress=False)
    fit_head(mlm, corpus, steps=10, batch_size=8, lr=1e-2, train_layers=1, progress=False)
    changed = {k for k, v in mlm.model.bert.state_dict().items() if not torch.equal(v, before[k])}
    top = {k for k in before if k.startswith("encoder.layer.2.")}
    assert changed == top
    assert all(p.requires_grad for p in mlm.model.parameters())


def test_teach_and_distil_end_to_end(tokenizer, tmp_path: Path) -> None:
    teacher = ready_teacher(str(tiny_mlm_folder(tmp_path / "teacher", tokenizer)))
    sentences, _ = task_sentences(["rte"], GLUE_SAMPLE, limit=12)
    corpus = mask_corpus(sentences, tokenizer, Masking(max_length=48, seed=0))
    report = teach_mlm(
        teacher, corpus, tmp_path / "stores", ks=(1, 4), batch_size=5, shard_rows=16, progress=False
    )
    assert report["rows"] == report["rows_measured"] == corpus.rows and not report["partial"]
    store = LogitStore.open(tmp_path / "stores" / "k4")
    assert store.spec.rows == corpus.rows and store.spec.shards > 2
    rows = np.arange(corpus.rows)
    np.testing.assert_array_equal(store.labels(rows), corpus.targets.astype(np.float32))
    with torch.no_grad():
        logits = teacher.masked_logits(corpus.batch(np.arange(corpus.sentences)))
    ids, probs, rest = store.topk(rows)
    np.testing.assert_array_equal(ids, logits.topk(4, -1)[1].numpy())
    np.testing.assert_allclose(probs, torch.softmax(logits, -1).topk(4, -1)[0], atol=1e-3)
    np.testing.assert_allclose(rest, 1 - probs.sum(1), atol=2e-3)
    k1 = LogitStore.open(tmp_path / "stores" / "k1")
    np.testing.assert_array_equal(k1.topk(rows)[0][:, 0], ids[:, 0])
    assert report["k"]["1"]["store_bytes"] < report["k"]["4"]["store_bytes"]
    assert report["k"]["4"]["mass_outside"] < report["k"]["1"]["mass_outside"]
    saved = json.loads((tmp_path / "stores" / "fidelity.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert "| 4 |" in (tmp_path / "stores" / "fidelity.md").read_text()
    # a second write finds every shard done and keeps the report of the full pass
    again = teach_mlm(
        teacher, corpus, tmp_path / "stores", ks=(1, 4), batch_size=5, shard_rows=16, progress=False
    )
    assert again == saved

    options = DistilOptions(
        layers=(0, 2), steps=40, batch_size=4, lr=3e-3, holdout=4, eval_every=20, backend="torch"
    )
    result = distil_mlm(
        teacher, corpus, tmp_path / "stores" / "k4", tmp_path / "student", options, progress=False
    )
    evals = result["evaluations"]
    assert [e["step"] for e in evals] == [0, 20, 40]
    assert evals[-1]["soft_ce"] < evals[0]["soft_ce"]
    student = load_mlm(str(tmp_path / "student"))
    assert student.layers == 2 and student.head_trained
    info = json.loads((tmp_path / "student" / "kdnlu_mlm.json").read_text())
    assert info["distillation"]["top_k"] == 4 and info["layers"] == 2
    with pytest.raises(KdnluError, match="already exists"):
        distil_mlm(teacher, corpus, tmp_path / "stores" / "k4", tmp_path / "student", options)
    other = mask_corpus(sentences, tokenizer, Masking(max_length=48, seed=1))
    with pytest.raises(KdnluError, match="written for another corpus"):
        distil_mlm(teacher, other, tmp_path / "stores" / "k4", tmp_path / "s2", options)


def test_interrupted_distillation_resumes_to_the_same_student(
    tokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    teacher = ready_teacher(str(tiny_mlm_folder(tmp_path / "teacher", tokenizer)))
    sentences, _ = task_sentences(["rte"], GLUE_SAMPLE, limit=8)
    corpus = mask_corpus(sentences, tokenizer, Masking(max_length=32, seed=0))
    teach_mlm(teacher, corpus, tmp_path / "stores", ks=(4,), batch_size=8, progress=False)
    store = tmp_path / "stores" / "k4"
    options = DistilOptions(
        layers=(1, 3), steps=7, batch_size=3, lr=3e-3, holdout=4, eval_every=3,
        checkpoint_every=2, backend="torch",
    )  # fmt: skip

    def distil(out: str, opts: DistilOptions = options) -> dict:
        return distil_mlm(teacher, corpus, store, tmp_path / out, opts, progress=False)

    whole = distil("whole")
    assert not partial_path(tmp_path / "whole").exists()

    clip = torch.nn.utils.clip_grad_norm_
    calls = []

    def stop_at_step_6(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return clip(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", stop_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        distil("cut")
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    partial = partial_path(tmp_path / "cut")
    assert not (tmp_path / "cut").exists() and partial.is_file()
    with pytest.raises(KdnluError, match="another teacher, corpus, store or options"):
        distil("cut", dataclasses.replace(options, lr=1e-3))
    resumed = distil("cut")  # goes on from step 4
    assert resumed == whole and not partial.exists()
    from transformers import AutoModelForMaskedLM

    a = AutoModelForMaskedLM.from_pretrained(str(tmp_path / "whole")).state_dict()
    b = AutoModelForMaskedLM.from_pretrained(str(tmp_path / "cut")).state_dict()
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=0)
    partial_path(tmp_path / "fresh").write_bytes(b"not a state")
    with pytest.raises(KdnluError, match="fresh.partial.pt holds objects other than tensors"):
        distil("fresh")


def test_student_fine_tunes_as_an_encoder(tokenizer, tmp_path: Path) -> None:
    from kdnlu.recipe import load_recipe

    folder = tiny_mlm_folder(tmp_path / "mlm", tokenizer, layers=2)
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(
        f"name: ft\ndata_root: {GLUE_SAMPLE}\nencoder: {{name: hf, path: {folder}}}\n"
        "tasks:\n  rte: {train_rows: 8, eval_rows: 8, max_length: 32}\n"
        "train: {batch_size: 4, epochs: 1, device: cpu}\n"
    )
    from kdnlu.build import build_model

    recipe = load_recipe(recipe_path)
    model = build_model(recipe, recipe.build_tasks())
    assert model.encoder.model.config.num_hidden_layers == 2


def test_cli_stages_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = [
        "corpus",
        "--tasks",
        "rte",
        "--data-root",
        str(GLUE_SAMPLE),
        "--limit",
        "6",
        "--out",
        str(tmp_path / "c"),
        "--max-length",
        "40",
    ]
    assert mlm_main(argv) == 0
    assert "masked positions" in capsys.readouterr().out
    assert MaskedCorpus.load(tmp_path / "c").masking.max_length == 40
    assert mlm_main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert (
        mlm_main(
            [
                "teach",
                "minilm",
                "--corpus",
                str(tmp_path / "c"),
                "--out",
                str(tmp_path / "s"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "has no trained masked-LM output layer" in capsys.readouterr().err
    tiny = str(tiny_mlm_folder(tmp_path / "tiny", load_tokenizer("minilm"), with_head=False))
    head = ["head", tiny, "--corpus", str(tmp_path / "c"), "--steps", "2", "--batch-size", "2"]
    assert mlm_main([*head, "--out", str(tmp_path / "t9"), "--train-layers", "9"]) == 2
    assert "between 0 and the model's 4 layers, got 9" in capsys.readouterr().err
    assert not (tmp_path / "t9").exists()
    assert mlm_main([*head, "--out", str(tmp_path / "t"), "--train-layers", "1", "--quiet"]) == 0
    about = json.loads((tmp_path / "t" / "kdnlu_mlm.json").read_text())
    assert about["head_trained"] is True
    assert {k: about["head"][k] for k in ("steps", "train_layers", "remask")} == {
        "steps": 2,
        "train_layers": 1,
        "remask": True,
    }
    ready_teacher(str(tmp_path / "t"))
    capsys.readouterr()
    assert mlm_main(["teach", "x", "--corpus", "c", "--out", "o", "--top-k", "1,a"]) == 2
    assert capsys.readouterr().err == (
        "error: --top-k 1,a: top_k[1]: expected an integer, got 'a' (a string)\n"
    )
