"""Shared test helpers: paths to the repository, its recipes and the real GLUE sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
GLUE_SAMPLE = REPO / "tests" / "fixtures" / "glue"
SHARED_GLUE = REPO.parent / "shared" / "data" / "glue"

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own empty directory, so runs/ never lands in the repository."""
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


TINY_RECIPE = f"""\
name: tiny_test
data_root: {GLUE_SAMPLE}
encoder: {{name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}}
tasks:
  rte: {{train_rows: 32, eval_rows: 16, max_length: 48}}
  mrpc: {{train_rows: 32, eval_rows: 16, max_length: 48}}
train: {{lr: 1.0e-3, batch_size: 16, epochs: 1, device: cpu}}
"""
