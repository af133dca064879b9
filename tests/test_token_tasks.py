"""Token labelling: CoNLL reading, sub-word alignment, span metrics, recipe checks and a run."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, TINY_RECIPE, write
from kdnlu import discovery
from kdnlu.data import IGNORE, UNKNOWN_TAG, collate, encode_examples
from kdnlu.errors import DataError, KdnluError, RecipeError
from kdnlu.predict import write_predictions
from kdnlu.recipe import load_recipe
from kdnlu.registry import ENCODERS, TASKS
from kdnlu.trained import load_trained
from kdnlu.trainer import train
from kdnlu_plugins.metrics import span_f1, tag_spans, token_accuracy

discovery.load_builtins()

CONLL = REPO / "tests" / "fixtures" / "conll"
TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")

NER_RECIPE = f"""\
name: ner
encoder: {{name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64, dropout: 0.0}}
tasks:
  ner:
    name: conll
    data: {CONLL}
    labels: [{", ".join(TAGS)}]
    max_length: 32
    head: {{name: token, dropout: 0.0}}
train: {{lr: 3.0e-3, batch_size: 4, epochs: 15, warmup: 0.0, device: cpu}}
"""


def conll_task(**options):
    entry = TASKS.get("conll")
    return entry.build(entry.config(**{"data": str(CONLL), "labels": TAGS, **options}))


@pytest.fixture(scope="module")
def tokenizer():
    entry = ENCODERS.get("tiny")
    return entry.build(entry.config(layers=1, hidden_size=16, heads=2)).tokenizer


def test_reader_gives_sentences_of_words_and_tags() -> None:
    train_rows = conll_task().read("train")
    assert len(train_rows) == 14  # the -DOCSTART- line is no sentence
    first = train_rows[0]
    assert first.words == ("Anna", "Kowalczyk", "lives", "in", "Warsaw", ".")
    assert first.tags == (1, 2, 0, 0, 3, 0) and first.uid == "3"  # its first line
    test_rows = conll_task().read("test")
    assert [len(r.words or ()) for r in test_rows] == [5, 7, 7, 4]
    assert all(r.tags is None for r in test_rows)


def test_bad_lines_name_file_and_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = write(tmp_path / "train.txt", "Anna\tB-PER\nlives\tX\n\nPeter\tB-PER\n.\tO\n")
    task = conll_task(train=str(bad))
    with pytest.raises(DataError) as err:
        task.read("train")
    assert str(err.value) == (
        f"{bad}:2: unknown tag 'X' for task conll; expected one of {', '.join(TAGS)}. Fix or "
        "remove this row (or set on_bad_row: skip for the task to skip such rows)."
    )
    with caplog.at_level(logging.WARNING, logger="kdnlu.data"):
        rows = task.read("train", on_bad_row="skip")
    assert [r.words for r in rows] == [("Peter", ".")]  # the broken sentence is left out whole
    assert f"skipped 1 bad row in {bad} (first at line 2: unknown tag 'X'" in caplog.text
    missing = write(tmp_path / "dev.txt", "Anna\n")
    with pytest.raises(DataError, match=r"dev.txt:1: the line has 1 column\(s\); the tag is"):
        conll_task(dev=str(missing)).read("dev")


def test_each_words_tag_goes_to_its_first_sub_word(tokenizer) -> None:
    rows = conll_task().read("train")[:2]
    split = encode_examples("ner", tokenizer, rows, 64)
    tokens = tokenizer.convert_ids_to_tokens(split.ids[: split.offsets[1]].tolist())
    assert tokens == ["[CLS]", "anna", "ko", "##wal", "##cz", "##yk", "lives", "in", "warsaw"] + [
        ".",
        "[SEP]",
    ]
    first = split.token_labels[: split.offsets[1]].tolist()
    assert first == [IGNORE, 1, 2, IGNORE, IGNORE, IGNORE, 0, 0, 3, 0, IGNORE]
    batch = collate(split, [1, 0], torch.long)
    assert batch.labels.shape == batch.input_ids.shape
    assert batch.labels[1].tolist() == first + [IGNORE] * (batch.labels.shape[1] - len(first))
    hidden = encode_examples("ner", tokenizer, conll_task().read("test")[:1], 64)
    assert hidden.token_labels.tolist() == [IGNORE, *[UNKNOWN_TAG] * 5, IGNORE]


def test_words_beyond_max_length_are_counted(tokenizer, caplog) -> None:
    rows = conll_task().read("train")[:1]
    with caplog.at_level(logging.WARNING, logger="kdnlu.data"):
        split = encode_examples("ner", tokenizer, rows, 5)  # [CLS] anna ko ##wal [SEP]
    assert split.token_labels.tolist() == [IGNORE, 1, 2, IGNORE, IGNORE]
    assert "ner: 4 of 6 words lie beyond max_length 5 tokens" in caplog.text


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], {(0, 2, "PER"), (3, 4, "LOC")}),
        (["I-PER", "I-PER", "B-PER"], {(0, 2, "PER"), (2, 3, "PER")}),  # IOB1 start
        (["B-PER", "I-LOC", "I-LOC"], {(0, 1, "PER"), (1, 3, "LOC")}),
        (["PER", "PER", "O", "LOC"], {(0, 2, "PER"), (3, 4, "LOC")}),  # plain tags
        (["O", "O"], set()),
    ],
)
def test_tag_spans(tags: list, spans: set) -> None:
    assert tag_spans(tags) == spans


def test_span_f1_and_token_accuracy() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]
    # spans: gold 3, predicted 3, right 2 (LOC, ORG): P = R = 2/3
    assert span_f1(pred, gold) == pytest.approx(200 / 3)
    assert token_accuracy(pred, gold) == pytest.approx(500 / 6)
    assert span_f1([["O"]], [["O"]]) == 0.0


def test_losses_and_heads_must_fit_the_level(tmp_path: Path) -> None:
    wrong_loss = write(
        tmp_path / "a.yaml", NER_RECIPE.replace("    max_length: 32", "    loss: cross_entropy")
    )
    with pytest.raises(RecipeError) as err:
        load_recipe(wrong_loss)
    assert str(err.value).endswith(
        "tasks.ner.loss: loss 'cross_entropy' takes class labels, but task 'conll' has one "
        "class label per word (token labelling); use e.g. 'token_cross_entropy'"
    )
    on_rte = write(
        tmp_path / "b.yaml", TINY_RECIPE.replace("rte: {", "rte: {loss: token_cross_entropy, ")
    )
    with pytest.raises(RecipeError, match="loss 'token_cross_entropy' takes one class label per"):
        load_recipe(on_rte)
    wrong_head = load_recipe(
        write(tmp_path / "c.yaml", NER_RECIPE.replace("name: token,", "name: classification,"))
    )
    with pytest.raises(KdnluError) as err:
        train(wrong_head, progress=False)
    assert str(err.value) == (
        "tasks.ner.head: head 'classification' gives one output per row, but task 'conll' "
        "labels every word; use e.g. head: token"
    )


def test_training_tags_words(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path / "r.yaml", NER_RECIPE), [f"output_dir={tmp_path}/runs"])
    result = train(recipe, progress=False)
    assert result.steps == 15 * 4  # 14 sentences, 4 per batch
    assert result.train_loss[-1] < 0.2 * result.train_loss[0], result.train_loss
    last = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(last["dev"]["ner"]) == {"span_f1", "token_accuracy"}

    run = load_trained(result.run_dir, "last")
    dev_file = write_predictions(run, "dev", tmp_path / "pred")[0]
    sentences = [s.splitlines() for s in dev_file.read_text().split("\n\n") if s.strip()]
    gold = [s.splitlines() for s in (CONLL / "dev.txt").read_text().split("\n\n") if s.strip()]
    assert [[w.split("\t")[0] for w in s] for s in sentences] == [
        [w.split("\t")[0] for w in s] for s in gold
    ]
    pred_tags = [[w.split("\t")[1] for w in s] for s in sentences]
    gold_tags = [[w.split("\t")[1] for w in s] for s in gold]
    assert last["dev"]["ner"]["span_f1"] == pytest.approx(span_f1(pred_tags, gold_tags))
    assert last["dev"]["ner"]["token_accuracy"] == pytest.approx(
        token_accuracy(pred_tags, gold_tags)
    )
    test_file = write_predictions(run, "test", tmp_path / "sub")[0]
    assert test_file.name == "ner-test.tsv"
    words = [line.split("\t")[0] for line in test_file.read_text().splitlines() if line]
    assert words[:5] == ["Peter", "lives", "in", "Lisbon", "."] and len(words) == 23
    assert np.isin(
        [line.split("\t")[1] for line in test_file.read_text().splitlines() if line], TAGS
    ).all()


def test_a_word_without_tokens_keeps_the_others_in_place(tokenizer, caplog) -> None:
    from kdnlu.data import word_positions
    from kdnlu.task import Example

    words = ("Anna", "\u00ad", "lives", "in", "Warsaw")  # a soft hyphen gives no token
    row = Example("1", " ".join(words), None, None, words=words, tags=(1, 0, 0, 0, 3))
    with caplog.at_level(logging.WARNING, logger="kdnlu.data"):
        split = encode_examples("ner", tokenizer, [row], 64)
    assert "ner: 1 of 5 words give no token at all" in caplog.text
    assert "beyond max_length" not in caplog.text
    positions = word_positions(split, 0)
    assert split.word_ids[positions].tolist() == [0, 2, 3, 4]
    assert split.token_labels[positions].tolist() == [1, 0, 0, 3]


def test_cut_words_are_warned_about_again_on_a_cache_hit(tokenizer, tmp_path, caplog) -> None:
    from kdnlu.token_cache import TokenCache

    task = conll_task()
    rows = task.read("train")

    def build():
        return encode_examples("ner", tokenizer, rows, 6)

    cache = TokenCache(tmp_path)
    path = task.path("train")
    with caplog.at_level(logging.WARNING, logger="kdnlu.data"):
        first = cache.get_or_build("ner", tokenizer, path, 6, {}, build)
        caplog.clear()
        second = TokenCache(tmp_path).get_or_build("ner", tokenizer, path, 6, {}, build)
    assert first.notes and second.notes == first.notes
    assert first.notes[0] in caplog.text  # repeated from the cache entry
    assert np.array_equal(second.token_labels, first.token_labels)
