"""Head pooling ``pooler``: the checkpoint's pretrained pooler is loaded into the head, read
straight from the safetensors weights (BERT and ALBERT key layouts); without one, a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from conftest import TINY_RECIPE, write
from kdnlu.build import build_model
from kdnlu.hf import bundled_minilm_path
from kdnlu.recipe import load_recipe
from kdnlu_plugins.encoders import read_pooler

POOLED = "rte: {train_rows: 32, eval_rows: 16, max_length: 48, head: {pooling: pooler}}"


def pooled_recipe(tmp_path: Path, encoder: str):
    text = TINY_RECIPE.replace(
        "rte: {train_rows: 32, eval_rows: 16, max_length: 48}", POOLED
    ).replace(
        "encoder: {name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}",
        f"encoder: {encoder}",
    )
    recipe = load_recipe(write(tmp_path / "r.yaml", text))
    return recipe, recipe.build_tasks()


def test_the_bundled_checkpoints_pooler_starts_the_head(tmp_path: Path) -> None:
    recipe, tasks = pooled_recipe(tmp_path, "{name: hf, path: minilm}")
    model = build_model(recipe, tasks)
    expected = read_pooler(bundled_minilm_path())
    assert expected is not None and expected["weight"].shape == (384, 384)
    assert torch.equal(model.heads["rte"].pooler.dense.weight, expected["weight"])
    assert torch.equal(model.heads["rte"].pooler.dense.bias, expected["bias"])
    assert model.heads["mrpc"].pooler is None  # the other task keeps [CLS]


def test_an_encoder_without_a_pooler_warns_and_starts_random(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recipe, tasks = pooled_recipe(
        tmp_path, "{name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}"
    )
    with caplog.at_level(logging.WARNING, logger="kdnlu.train"):
        model = build_model(recipe, tasks)
    assert model.heads["rte"].pooler.dense.weight.shape == (32, 32)
    assert caplog.messages == [
        "tasks.rte.head: pooling 'pooler' but the encoder has no pretrained pooler; its pooler "
        "layer starts from random weights"
    ]


@pytest.mark.parametrize(
    ("prefix", "found"),
    [("bert.pooler.dense.", True), ("albert.pooler.", True), ("encoder.layer.0.", False)],
)
def test_pooler_weights_are_found_by_their_key_layout(
    tmp_path: Path, prefix: str, found: bool
) -> None:
    weights = {f"{prefix}weight": torch.randn(4, 4), f"{prefix}bias": torch.randn(4)}
    save_file({**weights, "embeddings.word_embeddings.weight": torch.zeros(2, 4)},
              str(tmp_path / "model.safetensors"))  # fmt: skip
    pooler = read_pooler(tmp_path)
    if not found:
        assert pooler is None
        return
    assert torch.equal(pooler["weight"], weights[f"{prefix}weight"])
    assert torch.equal(pooler["bias"], weights[f"{prefix}bias"])
    assert read_pooler(tmp_path / "nothing") is None
