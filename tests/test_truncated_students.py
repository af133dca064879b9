"""Students cut from a checkpoint's layers (encoder.layers): the kept layers are the
checkpoint's own, a run trains and exports at the new depth, and AutoModel loads the export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import TINY_RECIPE, write
from kdnlu.cli import main
from kdnlu.errors import KdnluError, RecipeError
from kdnlu.hf import bundled_minilm_path
from kdnlu.recipe import load_recipe
from kdnlu.registry import ENCODERS
from kdnlu.trained import load_trained
from kdnlu.trainer import train

TINY = "encoder: {name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 4-layer BERT checkpoint with the real vocabulary."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("bert4")
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_minilm_path()))
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build(checkpoint: Path, layers):
    entry = ENCODERS.get("hf")
    return entry.build(entry.config(path=str(checkpoint), layers=layers))


def test_the_kept_layers_are_the_checkpoints_own_in_order(checkpoint: Path) -> None:
    full = build(checkpoint, None).model
    cut = build(checkpoint, (3, 0)).model
    assert cut.config.num_hidden_layers == 2 and len(cut.encoder.layer) == 2
    for mine, theirs in ((0, 3), (1, 0)):
        ours = cut.encoder.layer[mine].state_dict()
        reference = full.encoder.layer[theirs].state_dict()
        assert ours.keys() == reference.keys()
        assert all(torch.equal(ours[k], reference[k]) for k in ours)
    assert torch.equal(
        cut.embeddings.word_embeddings.weight, full.embeddings.word_embeddings.weight
    )


def test_a_cut_student_trains_predicts_and_exports_at_its_depth(
    checkpoint: Path, tmp_path: Path
) -> None:
    from transformers import AutoModel, AutoTokenizer

    text = TINY_RECIPE.replace(TINY, f"encoder: {{name: hf, path: {checkpoint}, layers: [0, 2]}}")
    recipe = load_recipe(write(tmp_path / "r.yaml", text), [f"output_dir={tmp_path}/runs"])
    result = train(recipe, progress=False)
    run = load_trained(result.run_dir)
    assert len(run.model.encoder.model.encoder.layer) == 2
    out = tmp_path / "exported"
    assert main(["export", str(result.run_dir), str(out)]) == 0
    exported = AutoModel.from_pretrained(str(out)).eval()
    assert exported.config.num_hidden_layers == 2
    enc = AutoTokenizer.from_pretrained(str(out))(
        "The cat sat.", "A cat was sitting.", return_tensors="pt"
    )
    with torch.no_grad():
        ours = run.model.encoder(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
        assert torch.allclose(ours, exported(**enc).last_hidden_state, atol=1e-5)


def test_layers_that_do_not_exist_or_repeat_are_refused(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(KdnluError) as err:
        build(checkpoint, (0, 4))
    assert str(err.value) == (
        "encoder.layers: layers [4] do not exist: the checkpoint has layers 0-3"
    )
    path = write(
        tmp_path / "r.yaml",
        TINY_RECIPE.replace(TINY, f"encoder: {{name: hf, path: {checkpoint}, layers: [1, 1]}}"),
    )
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value) == (
        f"{path}:3: encoder.layers: must be distinct layer numbers, at least one, got [1, 1]"
    )
