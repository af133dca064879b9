"""The registry contract, and the same contract tests for every registered component."""

import dataclasses
import random
from dataclasses import dataclass

import pytest
import torch

from conftest import GLUE_SAMPLE, REPO
from kdnlu import discovery
from kdnlu.errors import RegistryError
from kdnlu.registry import ENCODERS, HEADS, LOSSES, REGISTRIES, SAMPLERS, TASKS, Registry

discovery.load_builtins()


@dataclass(frozen=True)
class Cfg:
    """A test config."""

    width: int = 3


def make(name: str, module: str):
    def builder(config):
        """Builds a thing."""
        return config

    builder.__module__ = module
    return builder


def test_register_and_build_with_config() -> None:
    reg = Registry("widget", "widgets")
    reg.register("box", config=Cfg)(make("box", "pkg.a"))
    entry = reg.get("box")
    assert entry.description == "Builds a thing."
    assert entry.module == "pkg.a"
    assert entry.build() == Cfg()
    assert entry.build(Cfg(width=5)) == Cfg(width=5)
    assert reg.names() == ["box"] and "box" in reg and len(reg) == 1


def test_description_is_the_docstrings_first_sentence_on_one_line() -> None:
    def wrapped(config):
        """Scores each candidate (the QNLI head); with the ranking loss
        every head gives one output. Later sentences and paragraphs are left out.

        Details."""

    def no_sentence_end(config):
        """Reads e.g. rows
        of a file"""

    reg = Registry("widget", "widgets")
    reg.register("a")(wrapped)
    reg.register("b")(no_sentence_end)
    assert reg.get("a").description == (
        "Scores each candidate (the QNLI head); with the ranking loss every head gives one output."
    )
    assert reg.get("b").description == "Reads e.g. rows of a file"


def test_duplicate_name_names_both_modules() -> None:
    reg = Registry("head", "heads")
    reg.register("san", config=Cfg)(make("san", "pkg.first"))
    with pytest.raises(RegistryError) as err:
        reg.register("san", config=Cfg)(make("san", "pkg.second"))
    assert str(err.value) == (
        "head 'san' is registered twice: first by module 'pkg.first', again by module "
        "'pkg.second'. Rename one of them."
    )


def test_re_registering_the_same_builder_is_harmless() -> None:
    reg = Registry("head", "heads")
    builder = make("san", "pkg.first")
    reg.register("san", config=Cfg)(builder)
    reg.register("san", config=Cfg)(builder)
    assert reg.names() == ["san"]


def test_unknown_name_suggests_close_matches() -> None:
    reg = Registry("head", "heads")
    reg.register("san", config=Cfg)(make("san", "m"))
    with pytest.raises(RegistryError) as err:
        reg.get("sann", "tasks.rte.head.name")
    assert str(err.value) == (
        "unknown head 'sann' at tasks.rte.head.name; did you mean 'san'? "
        "(`kdnlu list heads` shows every registered head)"
    )


def test_unknown_name_without_close_match_lists_known() -> None:
    reg = Registry("loss", "losses")
    reg.register("mse", config=Cfg)(make("mse", "m"))
    reg.register("ranking", config=Cfg)(make("ranking", "m"))
    with pytest.raises(RegistryError) as err:
        reg.get("zzz")
    assert str(err.value) == (
        "unknown loss 'zzz'; known losses: mse, ranking "
        "(`kdnlu list losses` shows every registered loss)"
    )


def test_config_must_be_a_frozen_dataclass() -> None:
    @dataclass
    class Mutable:
        x: int = 1

    with pytest.raises(RegistryError, match="config must be a frozen dataclass"):
        Registry("head", "heads").register("x", config=Mutable)


ALL_ENTRIES = [(kind, entry) for kind, reg in REGISTRIES.items() for entry in reg]


def test_every_kind_has_a_builtin() -> None:
    assert {kind for kind, _ in ALL_ENTRIES} == set(REGISTRIES)


@pytest.mark.parametrize(
    ("kind", "entry"), ALL_ENTRIES, ids=[f"{k}:{e.name}" for k, e in ALL_ENTRIES]
)
def test_component_contract(kind: str, entry) -> None:
    """Every component: a description, a frozen config whose defaults construct, and types."""
    assert entry.description, f"{kind} '{entry.name}' needs a one-line docstring"
    assert dataclasses.is_dataclass(entry.config) and entry.config.__dataclass_params__.frozen
    config = entry.config()  # every built-in is usable with its defaults
    assert dataclasses.replace(config) == config
    assert entry.module.startswith(("kdnlu_plugins.", "kdnlu_tasks."))


HEAD_OUTPUT_SHAPES = {"sequence": (4, 3), "token": (4, 7, 3)}


@pytest.mark.parametrize("entry", list(HEADS), ids=lambda e: e.name)
def test_head_contract(entry) -> None:
    """Every head: [B, 3] (sequence) or [B, L, 3] (token) outputs, gradients, eval determinism."""
    torch.manual_seed(0)
    head = entry.build(hidden_size=16, num_outputs=3)
    assert head.level in HEAD_OUTPUT_SHAPES
    hidden = torch.randn(4, 7, 16, requires_grad=True)
    mask = torch.ones(4, 7, dtype=torch.long)
    mask[1, 5:] = 0  # one padded row
    out = head(hidden, mask)
    assert out.shape == HEAD_OUTPUT_SHAPES[head.level]
    out.sum().backward()
    assert hidden.grad is not None and torch.isfinite(hidden.grad).all()
    head.eval()
    with torch.no_grad():
        assert torch.equal(head(hidden, mask), head(hidden, mask))


def loss_inputs(target: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (requiring grad) and labels of the kind a loss with ``target`` takes."""
    if target == "class":
        return torch.randn(5, 3, requires_grad=True), torch.tensor([0, 1, 2, 1, 0])
    if target == "score":
        return torch.randn(5, 1, requires_grad=True), torch.tensor([0.5, 4.0, 2.5, 1.0, 3.0])
    if target == "group":  # three groups of the default group_size 2
        return torch.randn(6, 1, requires_grad=True), torch.tensor([0, 1, 1, 0, 0, 1])
    if target == "soft":
        return torch.randn(5, 3, requires_grad=True), torch.softmax(torch.randn(5, 3), -1)
    if target == "hidden":  # student and teacher states [N, H]
        return torch.randn(5, 8, requires_grad=True), torch.randn(5, 8)
    if target == "attention":  # attention rows over 4 keys [N, K]
        student = torch.softmax(torch.randn(5, 4), -1).requires_grad_()
        return student, torch.softmax(torch.randn(5, 4), -1)
    assert target == "token"
    labels = torch.tensor([[0, 2, 1, -100], [1, 1, -100, -100]])
    return torch.randn(2, 4, 3, requires_grad=True), labels


@pytest.mark.parametrize("entry", list(LOSSES), ids=lambda e: e.name)
def test_loss_contract(entry) -> None:
    loss_fn = entry.build()
    assert loss_fn.target in ("class", "score", "group", "token", "soft", "hidden", "attention")
    logits, labels = loss_inputs(loss_fn.target)
    loss = loss_fn(logits, labels)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


# samplers whose defaults cannot sample the contract's tasks get these options
SAMPLER_OPTIONS = {"weights": {"weights": {"a": 1.0, "b": 2.0, "c": 1.0}}}


@pytest.mark.parametrize("entry", list(SAMPLERS), ids=lambda e: e.name)
def test_sampler_contract(entry) -> None:
    sampler = entry.build(entry.config(**SAMPLER_OPTIONS.get(entry.name, {})))
    counts = {"a": 5, "b": 2, "c": 1, "empty": 0}
    first = sampler.epoch(counts, random.Random(7))
    assert first == sampler.epoch(counts, random.Random(7))  # deterministic for a seed
    assert first and set(first) <= {"a", "b", "c"}  # a task without batches is never named
    probs = sampler.probabilities(counts)
    assert list(probs) == list(counts) and sum(probs.values()) == pytest.approx(1.0)
    assert probs["empty"] == 0.0 and all(p >= 0 for p in probs.values())
    assert sampler.probabilities(counts) == probs  # pure
    assert counts == {"a": 5, "b": 2, "c": 1, "empty": 0}  # inputs untouched


def sample_task(entry, tmp_path):
    """The task built on the shipped GLUE sample, or on a one-row file for the generic tasks."""
    if entry.name in ("tsv", "jsonl"):
        text = "text\tlabel\nfine\t1\n" if entry.name == "tsv" else '{"text": "fine", "label": 1}\n'
        train = tmp_path / f"train.{entry.name}"
        train.write_text(text)
        return entry.build(entry.config(train=str(train), labels=("0", "1")))
    if entry.name == "conll":
        tags = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
        return entry.build(entry.config(data=str(REPO / "tests/fixtures/conll"), labels=tags))
    return entry.build(data_root=str(GLUE_SAMPLE))


@pytest.mark.parametrize("entry", list(TASKS), ids=lambda e: e.name)
def test_task_contract(entry, tmp_path) -> None:
    task = sample_task(entry, tmp_path)
    assert task.name == entry.name and task.metrics and task.num_outputs >= 1
    assert task.default_head in HEADS and task.default_loss in LOSSES
    labelled = [
        s for s in ("train", *task.eval_splits) if s in task.files and task.files[s].is_file()
    ]
    split = labelled[0] if labelled else task.test_splits[0]
    examples = task.read(split)
    assert examples
    if task.level == "token":  # one tag per word instead of a row label
        assert all(ex.label is None and ex.words for ex in examples)
        if labelled:
            assert all(len(ex.tags) == len(ex.words) for ex in examples)
            assert {t for ex in examples for t in ex.tags} <= set(range(task.num_outputs))
    elif labelled:
        assert all(ex.label is not None for ex in examples)
        if task.label_names is not None:
            assert {ex.label for ex in examples} <= set(range(task.num_outputs))
    else:
        assert all(ex.label is None for ex in examples)


@pytest.mark.parametrize("entry", list(ENCODERS), ids=lambda e: e.name)
def test_encoder_contract(entry) -> None:
    encoder = entry.build()
    enc = encoder.tokenizer(["a short sentence"], ["and its pair"], return_tensors="pt")
    hidden = encoder(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    assert hidden.shape == (1, enc["input_ids"].shape[1], encoder.hidden_size)
    assert len(encoder.tokenizer) == 30522
