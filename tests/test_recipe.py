"""Recipes that load: defaults, base inheritance, --set overrides, resolved round trip."""

from pathlib import Path

import pytest

from conftest import GLUE_SAMPLE, TINY_RECIPE, write
from kdnlu.recipe import load_recipe


def test_defaults_are_filled_in(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE))
    assert recipe.name == "tiny_test"
    assert recipe.data_root == str(GLUE_SAMPLE)
    assert list(recipe.tasks) == ["rte", "mrpc"]
    rte = recipe.tasks["rte"]
    assert (rte.name, rte.head.name, rte.loss.name) == ("rte", "classification", "cross_entropy")
    assert rte.head.config.dropout == 0.1
    assert rte.options.train_rows == 32 and rte.options.max_length == 48
    assert recipe.sampler.name == "mtdnn"
    assert recipe.train.lr == 1e-3 and recipe.train.epochs == 1 and recipe.train.seed == 13


def test_name_defaults_to_file_stem(tmp_path: Path) -> None:
    text = TINY_RECIPE.replace("name: tiny_test\n", "")
    assert load_recipe(write(tmp_path / "my_run.yaml", text)).name == "my_run"


def test_base_is_merged_and_its_paths_stay_relative_to_it(tmp_path: Path) -> None:
    write(
        tmp_path / "data" / "glue" / "RTE" / "train.tsv",
        (GLUE_SAMPLE / "RTE" / "train.tsv").read_text(),
    )
    write(
        tmp_path / "data" / "glue" / "RTE" / "dev.tsv",
        (GLUE_SAMPLE / "RTE" / "dev.tsv").read_text(),
    )
    write(
        tmp_path / "base" / "base.yaml",
        "data_root: ../data/glue\nencoder: {name: tiny}\ntasks: {rte: {}}\n"
        "train: {lr: 2.0e-5, epochs: 4}\n",
    )
    child = write(
        tmp_path / "exp" / "child.yaml",
        "base: ../base/base.yaml\ntrain: {epochs: 2}\ntasks: {rte: {max_length: 64}}\n",
    )
    recipe = load_recipe(child)
    assert recipe.data_root == str((tmp_path / "data" / "glue").resolve())
    assert recipe.train.lr == 2e-5 and recipe.train.epochs == 2
    assert recipe.tasks["rte"].options.max_length == 64
    assert recipe.name == "child"


def test_set_overrides_are_typed_by_the_config(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE)
    recipe = load_recipe(
        path,
        [
            "train.lr=3e-5",
            "train.epochs=5",
            "train.max_steps=null",
            "tasks.rte.head.dropout=0.2",
            "encoder.layers=3",
            "name=renamed",
            "tasks.mrpc.loss.label_smoothing=0.1",
            "imports=[]",
            f"distill.store={tmp_path}",
            "distill.tasks=[rte, mrpc]",
            "distill.teachers=[2]",
        ],
    )
    assert recipe.train.lr == 3e-5 and isinstance(recipe.train.lr, float)
    assert recipe.train.epochs == 5 and recipe.train.max_steps is None
    assert recipe.tasks["rte"].head.config.dropout == 0.2
    assert recipe.encoder.config.layers == 3
    assert recipe.name == "renamed"
    assert recipe.tasks["mrpc"].loss.config.label_smoothing == 0.1
    assert recipe.imports == ()
    assert recipe.distill.tasks == ("rte", "mrpc") and recipe.distill.teachers == (2,)


def test_set_path_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    path = write(tmp_path / "sub" / "r.yaml", TINY_RECIPE)
    recipe = load_recipe(path, [f"data_root={GLUE_SAMPLE}"])
    assert recipe.data_root == str(GLUE_SAMPLE)


def test_component_name_shorthand(tmp_path: Path) -> None:
    text = TINY_RECIPE.replace("rte: {train_rows: 32", "rte: {head: classification, train_rows: 32")
    recipe = load_recipe(write(tmp_path / "r.yaml", text))
    assert recipe.tasks["rte"].head.name == "classification"


def test_resolved_recipe_reloads_to_an_identical_recipe(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), ["train.seed=99"])
    resolved = write(tmp_path / "elsewhere" / "recipe.yaml", recipe.to_yaml())
    again = load_recipe(resolved)
    assert again == recipe
    assert again.to_yaml() == recipe.to_yaml()


def test_yaml_exponent_without_dot_is_a_number(tmp_path: Path) -> None:
    text = TINY_RECIPE.replace("lr: 1.0e-3", "lr: 5e-5")
    assert load_recipe(write(tmp_path / "r.yaml", text)).train.lr == pytest.approx(5e-5)


def test_optional_task_without_data_is_left_out(tmp_path: Path) -> None:
    text = TINY_RECIPE.replace("tasks:\n", "tasks:\n  qqp: {optional: true, data: nowhere}\n")
    recipe = load_recipe(write(tmp_path / "r.yaml", text))
    assert list(recipe.tasks) == ["rte", "mrpc"]
    assert load_recipe(write(tmp_path / "again.yaml", recipe.to_yaml())) == recipe


def test_set_into_a_component_given_by_name_and_null_paths(tmp_path: Path) -> None:
    text = (
        TINY_RECIPE.replace(
            "encoder: {name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}",
            "encoder: tiny",
        )
        + "sampler: uniform\n"
    )
    recipe = load_recipe(
        write(tmp_path / "r.yaml", text),
        [
            "encoder.layers=1",
            "sampler.steps_per_epoch=3",
            "tasks.rte.data=null",
        ],
    )
    assert recipe.encoder.name == "tiny" and recipe.encoder.config.layers == 1
    assert recipe.sampler.config.steps_per_epoch == 3
    assert recipe.tasks["rte"].config.data is None
