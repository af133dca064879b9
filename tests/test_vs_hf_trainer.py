"""benchmarks/vs_hf_trainer.py runs both sides end to end (a tiny random checkpoint, two steps
each) and reports every arm; a rerun skips the finished runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from conftest import GLUE_SAMPLE, REPO
from kdnlu.hf import bundled_minilm_path

pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate (test extra)")


def load_script():
    spec = importlib.util.spec_from_file_location("vs_hf", REPO / "benchmarks" / "vs_hf_trainer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_checkpoint(folder: Path) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_minilm_path()))
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_both_sides_train_and_are_reported(tmp_path: Path, capsys) -> None:
    script = load_script()
    checkpoint = tiny_checkpoint(tmp_path / "tiny")
    args = [
        "--tasks", "rte", "--seeds", "1", "--poolings", "mean", "--train-rows", "32",
        "--max-steps", "2", "--batch-size", "8", "--max-length", "32", "--encoder",
        str(checkpoint), "--data-root", str(GLUE_SAMPLE), "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    assert script.main(args) == 0
    runs = [json.loads(x) for x in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert sorted(r["run"] for r in runs) == ["rte/hf-trainer/seed1", "rte/kdnlu-mean/seed1"]
    for run in runs:
        assert run["steps"] == 2 and set(run["dev"]) == {"accuracy"}, run
        assert run["examples_per_s"] > 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.splitlines()[0] == "| task | metric | hf-trainer | kdnlu-mean |"
    assert "| rte | train examples/s |" in report
    capsys.readouterr()
    assert script.main(args) == 0
    assert capsys.readouterr().out.startswith("0 of 2 runs to do")
