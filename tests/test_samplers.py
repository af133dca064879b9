"""Samplers: exact probabilities, MT-DNN's epoch layouts, and i.i.d. draws against their odds."""

import random
from collections import Counter
from pathlib import Path

import pytest

from conftest import TINY_RECIPE, write
from kdnlu import discovery
from kdnlu.config import FieldError
from kdnlu.errors import RecipeError
from kdnlu.recipe import load_recipe
from kdnlu.registry import SAMPLERS
from kdnlu_plugins.samplers import MtdnnConfig, TemperatureConfig, WeightsConfig

discovery.load_builtins()

COUNTS = {"main": 4, "b": 6, "c": 2}


def build(name: str, **options):
    entry = SAMPLERS.get(name)
    return entry.build(entry.config(**options))


def epochs(sampler, counts, seeds=range(50)) -> list[list[str]]:
    return [sampler.epoch(counts, random.Random(seed)) for seed in seeds]


# --- mtdnn ---


def test_mtdnn_default_is_every_batch_once_shuffled_together() -> None:
    sampler = build("mtdnn")
    assert sampler.probabilities(COUNTS) == {"main": 4 / 12, "b": 6 / 12, "c": 2 / 12}
    orders = epochs(sampler, COUNTS)
    assert all(Counter(order) == Counter(COUNTS) for order in orders)
    assert any(order[-4:] != ["main"] * 4 for order in orders)  # main is mixed in
    assert len({tuple(order) for order in orders}) > 40


def test_mtdnn_mix_opt_puts_shuffled_auxiliary_batches_before_the_main_task() -> None:
    orders = epochs(build("mtdnn", mix_opt=1), COUNTS)
    for order in orders:
        assert order[-4:] == ["main"] * 4 and "main" not in order[:-4]
        assert Counter(order[:-4]) == {"b": 6, "c": 2}
    assert len({tuple(order[:-4]) for order in orders}) > 10  # the auxiliary block is shuffled


def test_mtdnn_ratio_with_mix_opt() -> None:
    sampler = build("mtdnn", ratio=0.5, mix_opt=1)
    # min(0.5 * 4, 8) = 2 auxiliary batches, drawn from a pool of 6 b and 2 c
    assert sampler.probabilities(COUNTS) == pytest.approx(
        {"main": 4 / 6, "b": 2 * 6 / 8 / 6, "c": 2 * 2 / 8 / 6}
    )
    orders = epochs(sampler, COUNTS, range(2000))
    for order in orders:
        assert len(order) == 6 and order[-4:] == ["main"] * 4
        assert set(order[:2]) <= {"b", "c"}
    picked = Counter(task for order in orders for task in order[:2])
    assert picked["b"] / (2 * len(orders)) == pytest.approx(0.75, abs=0.02)


def test_mtdnn_ratio_without_mix_opt_shuffles_everything() -> None:
    orders = epochs(build("mtdnn", ratio=0.5), COUNTS)
    for order in orders:
        counts = Counter(order)
        assert len(order) == 6 and counts["main"] == 4 and counts["b"] + counts["c"] == 2
    assert any(order[-4:] != ["main"] * 4 for order in orders)


def test_mtdnn_ratio_draws_without_replacement() -> None:
    counts = {"main": 4, "b": 1, "c": 1}
    for order in epochs(build("mtdnn", ratio=0.5, mix_opt=1), counts):
        assert sorted(order[:2]) == ["b", "c"] and order[2:] == ["main"] * 4


def test_mtdnn_ratio_rounds_down_and_is_capped_by_the_auxiliary_pool() -> None:
    counts = {"main": 3, "b": 6, "c": 2}
    # 3 * 0.7 = 2.0999... -> 2 auxiliary batches
    assert all(len(order) == 5 for order in epochs(build("mtdnn", ratio=0.7), counts))
    # 10 * 4 = 40 > 8: every auxiliary batch once
    for order in epochs(build("mtdnn", ratio=10.0), COUNTS):
        assert Counter(order) == Counter(COUNTS)
    assert build("mtdnn", ratio=10.0).probabilities(COUNTS) == pytest.approx(
        {"main": 4 / 12, "b": 6 / 12, "c": 2 / 12}
    )


def test_mtdnn_ratio_with_one_task_is_its_batches() -> None:
    sampler = build("mtdnn", ratio=2.0, mix_opt=1)
    assert sampler.epoch({"main": 3}, random.Random(0)) == ["main"] * 3
    assert sampler.probabilities({"main": 3}) == {"main": 1.0}


def test_mtdnn_ratio_needs_main_batches() -> None:
    sampler = build("mtdnn", ratio=1.0)
    message = (
        "sampler 'mtdnn': the main task 'main' (the first task of the recipe) has no batches, "
        "and with ratio 1.0 the epoch is sized by the main task"
    )
    with pytest.raises(ValueError) as err:
        sampler.epoch({"main": 0, "b": 3}, random.Random(0))
    assert str(err.value) == message
    with pytest.raises(ValueError) as err:
        sampler.probabilities({"main": 0, "b": 3})
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"mix_opt": -1}, "mix_opt", "must be 0 (mix all) or positive, got -1"),
        ({"ratio": -0.5}, "ratio", "must be a finite number >= 0, got -0.5"),
    ],
)
def test_mtdnn_config_is_checked(options: dict, field: str, message: str) -> None:
    with pytest.raises(FieldError) as err:
        MtdnnConfig(**options)
    assert (err.value.field_name, str(err.value)) == (field, message)


# --- i.i.d. samplers ---

IID_CASES = [
    ("proportional", {}, {"main": 4 / 12, "b": 6 / 12, "c": 2 / 12, "none": 0.0}),
    ("temperature", {"temperature": 1.0}, {"main": 4 / 12, "b": 6 / 12, "c": 2 / 12, "none": 0.0}),
    (
        "temperature",
        {},  # T = 2: p ~ sqrt(n)
        {
            "main": 2 / (2 + 6**0.5 + 2**0.5),
            "b": 6**0.5 / (2 + 6**0.5 + 2**0.5),
            "c": 2**0.5 / (2 + 6**0.5 + 2**0.5),
            "none": 0.0,
        },
    ),
    ("uniform", {}, {"main": 1 / 3, "b": 1 / 3, "c": 1 / 3, "none": 0.0}),
    ("weights", {"weights": {"main": 1.0, "b": 3.0}}, {"main": 0.25, "b": 0.75, "c": 0, "none": 0}),
    ("weights", {"weights": {"c": 2.0, "none": 5.0}}, {"main": 0, "b": 0, "c": 1.0, "none": 0}),
]
IID_COUNTS = {**COUNTS, "none": 0}


@pytest.mark.parametrize(("name", "options", "expected"), IID_CASES)
def test_iid_probabilities(name: str, options: dict, expected: dict) -> None:
    probs = build(name, **options).probabilities(IID_COUNTS)
    assert list(probs) == list(IID_COUNTS)
    assert probs == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("name", "options", "expected"), IID_CASES)
def test_iid_frequencies_follow_the_probabilities(name: str, options: dict, expected: dict):
    sampler = build(name, steps_per_epoch=40_000, **options)
    order = sampler.epoch(IID_COUNTS, random.Random(1234))
    assert len(order) == 40_000
    frequencies = Counter(order)
    for task, p in expected.items():
        assert frequencies[task] / len(order) == pytest.approx(p, abs=0.01)
        if p == 0:
            assert frequencies[task] == 0


@pytest.mark.parametrize("name", ["proportional", "temperature", "uniform"])
def test_iid_epoch_length_and_determinism(name: str) -> None:
    sampler = build(name)
    first = sampler.epoch(COUNTS, random.Random(5))
    assert len(first) == 12  # as many steps as batches by default
    assert first == sampler.epoch(COUNTS, random.Random(5))
    assert first != sampler.epoch(COUNTS, random.Random(6))
    assert len(build(name, steps_per_epoch=7).epoch(COUNTS, random.Random(5))) == 7


def test_iid_epoch_continues_the_rng_stream() -> None:
    sampler, rng = build("uniform"), random.Random(0)
    assert sampler.epoch(COUNTS, rng) != sampler.epoch(COUNTS, rng)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {},
            "sampler 'weights' has no weights: set sampler.weights to a mapping of task name to "
            "weight, e.g. {rte: 1.0, mrpc: 2.0}",
        ),
        (
            {"weights": {"main": 1.0, "qnli": 2.0}},
            "sampler 'weights' names unknown task(s) 'qnli'; the recipe's tasks are main, b, c",
        ),
        (
            {"weights": {"main": 0.0, "b": 0.0}},
            "sampler 'weights': every task with batches has weight 0 (main 0, b 0, c 0)",
        ),
    ],
)
def test_weights_errors(options: dict, message: str) -> None:
    sampler = build("weights", **options)
    with pytest.raises(ValueError) as err:
        sampler.probabilities(COUNTS)
    assert str(err.value) == message
    with pytest.raises(ValueError) as err:
        sampler.epoch(COUNTS, random.Random(0))
    assert str(err.value) == message


def test_weights_of_tasks_without_batches_do_not_count() -> None:
    with pytest.raises(ValueError, match="every task with batches has weight 0"):
        build("weights", weights={"none": 1.0}).probabilities(IID_COUNTS)


@pytest.mark.parametrize(
    ("make", "field", "message"),
    [
        (lambda: TemperatureConfig(temperature=0.0), "temperature", "must be a finite number > 0"),
        (lambda: TemperatureConfig(steps_per_epoch=0), "steps_per_epoch", "must be at least 1"),
        (lambda: WeightsConfig(weights={"a": -1.0}), "weights", "weight of 'a' must be >= 0"),
    ],
)
def test_iid_configs_are_checked(make, field: str, message: str) -> None:
    with pytest.raises(FieldError, match=message) as err:
        make()
    assert err.value.field_name == field


@pytest.mark.parametrize("name", ["mtdnn", "proportional", "temperature", "uniform"])
def test_every_sampler_rejects_nothing_to_sample(name: str) -> None:
    sampler = build(name)
    with pytest.raises(ValueError) as err:
        sampler.epoch({"a": 0, "b": 0}, random.Random(0))
    assert str(err.value) == f"sampler '{name}': no task has any batches to sample"
    with pytest.raises(ValueError) as err:
        sampler.probabilities({})
    assert str(err.value) == f"sampler '{name}': there are no tasks to sample from"


def test_weights_from_a_recipe(tmp_path: Path) -> None:
    text = TINY_RECIPE + "sampler: {name: weights, weights: {rte: 1, mrpc: 3}}\n"
    recipe = load_recipe(write(tmp_path / "r.yaml", text))
    assert recipe.sampler.config == WeightsConfig(weights={"rte": 1.0, "mrpc": 3.0})
    sampler = SAMPLERS.get("weights").build(recipe.sampler.config)
    assert sampler.probabilities({"rte": 10, "mrpc": 10}) == {"rte": 0.25, "mrpc": 0.75}
    assert "weights:\n    rte: 1.0\n    mrpc: 3.0" in recipe.to_yaml()


def test_negative_weight_in_a_recipe_names_the_key(tmp_path: Path) -> None:
    text = TINY_RECIPE + "sampler: {name: weights, weights: {rte: -1}}\n"
    with pytest.raises(RecipeError) as err:
        load_recipe(write(tmp_path / "r.yaml", text))
    assert str(err.value).endswith("sampler.weights: weight of 'rte' must be >= 0, got -1.0")
