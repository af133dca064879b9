"""Any local Hugging Face checkpoint is an encoder, sentencepiece ones included: a sentencepiece
model trained here on GLUE sentences, small random ALBERT, XLM-R and DeBERTa-v2 checkpoints
saved with only the ``.model`` file as their tokenizer, trained, predicted and exported."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import GLUE_SAMPLE, TINY_RECIPE, write
from kdnlu.cli import main
from kdnlu.recipe import load_recipe
from kdnlu.trained import load_trained
from kdnlu.trainer import train

VOCAB = 800
PAIR = ("The cat sat on the mat.", "A cat was sitting on a mat.")
# model family -> (the vocabulary file name its tokenizer loads, vocabulary size it ends with)
FAMILIES = {
    "albert": ("spiece.model", VOCAB),
    "xlm-roberta": ("sentencepiece.bpe.model", VOCAB + 2),  # fairseq's offset adds two ids
    "deberta-v2": ("spm.model", VOCAB + 2),  # its own [UNK] and [PAD] are added
}


def glue_sentences() -> list[str]:
    sentences = []
    for task, columns in (("RTE", (1, 2)), ("MRPC", (3, 4))):
        lines = (GLUE_SAMPLE / task / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
        for line in lines:
            fields = line.split("\t")
            sentences += [fields[c] for c in columns]
    return sentences


@pytest.fixture(scope="module")
def spm_model() -> bytes:
    """A unigram sentencepiece model trained on the sample's RTE and MRPC sentences."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(glue_sentences()),
        model_writer=out,
        vocab_size=VOCAB,
        model_type="unigram",
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        minloglevel=2,
    )
    return out.getvalue()


def make_checkpoint(family: str, spm_bytes: bytes, folder: Path) -> Path:
    """A small random checkpoint of ``family`` whose tokenizer is the sentencepiece file alone."""
    from transformers import CONFIG_MAPPING, AutoConfig, AutoModel, AutoTokenizer

    vocab_file, _ = FAMILIES[family]
    folder.mkdir(parents=True)
    (folder / vocab_file).write_bytes(spm_bytes)
    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    config = CONFIG_MAPPING[family](vocab_size=VOCAB + 2, max_position_embeddings=130, **shape)
    if family == "albert":
        config.embedding_size = 32
    if family == "xlm-roberta":
        config.type_vocab_size, config.pad_token_id = 1, 1
    config.save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))  # converted from the .model file
    config = AutoConfig.from_pretrained(str(folder))
    config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(folder)
    assert not (folder / "tokenizer.json").exists()
    return folder


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_sentencepiece_checkpoint_trains_predicts_and_exports(
    family: str, spm_model: bytes, tmp_path: Path
) -> None:
    from transformers import AutoModel, AutoTokenizer

    checkpoint = make_checkpoint(family, spm_model, tmp_path / "checkpoint")
    text = TINY_RECIPE.replace(
        "encoder: {name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}",
        f"encoder: {{name: hf, path: {checkpoint}, dropout: 0.0}}",
    )
    recipe = load_recipe(write(tmp_path / "r.yaml", text), [f"output_dir={tmp_path / 'runs'}"])
    result = train(recipe, progress=False)
    assert result.steps == 4 and set(result.metrics) == {"rte", "mrpc"}

    run = load_trained(result.run_dir)
    tokenizer = run.model.encoder.tokenizer
    assert len(tokenizer) == FAMILIES[family][1]
    pieces = tokenizer(*PAIR)["input_ids"]
    words = tokenizer.decode(pieces, skip_special_tokens=True).lower().split()
    assert words == " ".join(PAIR).lower().split()  # no unknown pieces: the vocabulary is real
    assert run.model.encoder.uses_token_types == (family == "albert")

    assert main(["predict", str(result.run_dir), "--split", "dev", "--quiet"]) == 0
    with open(result.run_dir / "predictions" / "rte-dev.tsv", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert len(rows) == 1 + 100  # every dev row of the sample

    out = tmp_path / "exported"
    assert main(["export", str(result.run_dir), str(out)]) == 0
    exported = AutoModel.from_pretrained(str(out)).eval()
    exported_tokenizer = AutoTokenizer.from_pretrained(str(out))
    enc = exported_tokenizer(*PAIR, return_tensors="pt")
    assert enc["input_ids"][0].tolist() == pieces
    with torch.no_grad():
        ours = run.model.encoder(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
        theirs = exported(**enc).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_dropout_is_set_by_the_keys_the_checkpoint_config_has(
    spm_model: bytes, tmp_path: Path
) -> None:
    from transformers import AutoConfig

    from kdnlu.errors import KdnluError
    from kdnlu_plugins.encoders import dropout_overrides

    folder = make_checkpoint("albert", spm_model, tmp_path / "checkpoint")
    config = AutoConfig.from_pretrained(str(folder))
    assert dropout_overrides(config, 0.2, folder) == {
        "hidden_dropout_prob": 0.2,
        "attention_probs_dropout_prob": 0.2,
    }
    with pytest.raises(KdnluError) as err:
        dropout_overrides(SimpleNamespace(model_type="custom", hidden_size=64), 0.2, folder)
    assert str(err.value) == (
        f"encoder.dropout: the checkpoint {folder} (model type custom) has none of the dropout "
        "settings kdnlu knows (hidden_dropout_prob, attention_probs_dropout_prob, dropout, "
        "attention_dropout); leave encoder.dropout unset to keep the checkpoint's own"
    )
