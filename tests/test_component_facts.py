"""Component facts (a loss's target, a head's level) are declared where a component is
registered; building and checking a recipe read them from the registry, building nothing."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import TINY_RECIPE, write
from kdnlu.build import build_losses, check_head_level, head_outputs
from kdnlu.errors import KdnluError, RegistryError
from kdnlu.loss import Loss
from kdnlu.recipe import load_recipe
from kdnlu.registry import HEADS, LOSSES, Registry


def built_in(registry) -> list:
    return [e for e in registry if e.module.startswith("kdnlu_plugins.")]


@pytest.mark.parametrize("entry", built_in(LOSSES), ids=lambda e: e.name)
def test_a_built_loss_takes_the_labels_it_was_registered_with(entry) -> None:
    assert entry.build().target == entry.facts["target"]


@pytest.mark.parametrize("entry", built_in(HEADS), ids=lambda e: e.name)
def test_a_built_head_has_the_level_it_was_registered_with(entry) -> None:
    assert entry.build(hidden_size=8, num_outputs=2).level == entry.facts["level"]


def test_built_in_facts() -> None:
    targets = {e.name: e.facts["target"] for e in built_in(LOSSES)}
    assert targets == {
        "cross_entropy": "class",
        "mse": "score",
        "multiple_choice": "group",
        "ranking": "group",
        "soft_cross_entropy": "soft",
        "hidden_mse": "hidden",
        "hidden_cosine": "hidden",
        "attention_kl": "attention",
        "token_cross_entropy": "token",
    }
    assert {e.name: e.facts["level"] for e in built_in(HEADS)} == {
        "classification": "sequence",
        "ranking": "sequence",
        "regression": "sequence",
        "san": "sequence",
        "token": "token",
    }


@dataclass(frozen=True)
class GroupConfig:
    group_size: int = 2


@pytest.fixture
def unbuildable():
    """A loss and a head whose builders fail: whatever reads their facts must not build them."""

    def refuse(*args, **kwargs):
        raise AssertionError("built, but only its facts were needed")

    LOSSES.register("rank_unbuilt", config=GroupConfig, target="group")(refuse)
    HEADS.register("tags_unbuilt", level="token")(refuse)
    yield
    LOSSES.unregister("rank_unbuilt")
    HEADS.unregister("tags_unbuilt")


def test_checks_read_facts_without_building(tmp_path: Path, unbuildable) -> None:
    text = TINY_RECIPE.replace("rte: {", "rte: {loss: rank_unbuilt, ")
    recipe = load_recipe(write(tmp_path / "r.yaml", text))  # the loss fits: rte has 2 classes
    tasks = recipe.build_tasks()
    assert head_outputs(tasks["rte"], "rank_unbuilt") == 1
    assert head_outputs(tasks["mrpc"], "cross_entropy") == 2
    with pytest.raises(KdnluError) as err:
        check_head_level("rte", "tags_unbuilt", tasks["rte"])
    assert str(err.value) == (
        "tasks.rte.head: head 'tags_unbuilt' gives one output per token, but task 'rte' has one "
        "label per row; use e.g. head: classification"
    )


def test_a_soft_loss_is_known_by_its_registration(tmp_path: Path, unbuildable) -> None:
    text = TINY_RECIPE + "distill: {store: s, soft_loss: rank_unbuilt}\n"
    with pytest.raises(KdnluError, match="loss 'rank_unbuilt' does not take soft targets"):
        load_recipe(write(tmp_path / "r.yaml", text), check_files=False)


def test_facts_are_checked_at_registration() -> None:
    reg = Registry("loss", "losses", facts=LOSSES.facts)
    with pytest.raises(RegistryError) as err:
        reg.register("x", target="groups")(lambda config: None)
    assert str(err.value) == (
        "loss 'x': target takes one of class, score, group, token, soft, hidden, attention; "
        "got 'groups'"
    )
    reg = Registry("head", "heads", facts=HEADS.facts)
    with pytest.raises(RegistryError, match="head 'y': level takes one of sequence, token"):
        reg.register("y", level="tokens")(lambda config: None)


def test_a_loss_built_with_other_labels_than_registered_is_refused(tmp_path: Path) -> None:
    @LOSSES.register("says_class_gives_score", target="class")
    def mislabelled(config) -> Loss:
        """A loss whose registration and Loss disagree."""
        return Loss("score", lambda logits, labels: logits.sum())

    try:
        text = TINY_RECIPE.replace("rte: {", "rte: {loss: says_class_gives_score, ")
        recipe = load_recipe(write(tmp_path / "r.yaml", text))
        with pytest.raises(KdnluError) as err:
            build_losses(recipe)
        message = str(err.value)
        assert message.startswith("tasks.rte.loss: loss 'says_class_gives_score' (")
        assert message.endswith(
            "returns a loss with target 'score' but is registered with target 'class'; register "
            'it with LOSSES.register("says_class_gives_score", target="score")'
        )
    finally:
        LOSSES.unregister("says_class_gives_score")
