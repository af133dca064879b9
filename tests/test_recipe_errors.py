"""Every bad recipe fails with one clear paragraph naming file:line (or --set) and key path."""

import dataclasses
from pathlib import Path

import pytest

from conftest import GLUE_SAMPLE, TINY_RECIPE, write
from kdnlu.datadir import GET_GLUE_HINT
from kdnlu.errors import KdnluError
from kdnlu.recipe import load_recipe
from kdnlu.schema import TaskOptions, TrainConfig

TRAIN_KEYS = ", ".join(f.name for f in dataclasses.fields(TrainConfig)) + "."
TASK_KEYS = ", ".join(["name", *(f.name for f in dataclasses.fields(TaskOptions)), "data"])
TASK_KEYS += ", head, loss, objective."


def error_of(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(KdnluError) as err:
        load_recipe(path, list(overrides))
    return str(err.value)


def test_malformed_yaml(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", "encoder: {name: tiny}\ntasks:\n  rte: {\n train: x\n")
    assert error_of(path) == (
        f"{path}:5:1: malformed YAML: expected ',' or '}}', but got '<stream end>'. "
        "Check indentation, colons and quotes there."
    )


def test_duplicate_key(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE + "name: again\n")
    assert error_of(path) == (
        f"{path}:8: key 'name' appears twice (first at line 1); keep one of them"
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE + "trian: {epochs: 1}\n")
    assert error_of(path) == (
        f"{path}:8: unknown key 'trian' at trian; did you mean 'train'? Valid keys here: name, "
        "imports, data_root, output_dir, cache_dir, encoder, tasks, sampler, train, distill."
    )


def test_unknown_nested_key(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("epochs: 1", "epochs: 1, lrr: 2"))
    assert error_of(path) == (
        f"{path}:7: unknown key 'lrr' at train.lrr; did you mean 'lr'? Valid keys here: "
        + TRAIN_KEYS
    )


def test_unknown_task_key(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("max_length: 48}", "max_len: 48}", 1))
    assert error_of(path) == (
        f"{path}:5: unknown key 'max_len' at tasks.rte.max_len; did you mean 'max_length'? "
        "Valid keys here: " + TASK_KEYS
    )


def test_task_option_out_of_range_names_its_key(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("max_length: 48}", "max_length: 4}", 1))
    assert error_of(path) == f"{path}:5: tasks.rte.max_length: must be at least 8, got 4"
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("train_rows: 32", "train_rows: 0", 1))
    assert error_of(path) == (
        f"{path}:5: tasks.rte.train_rows: must be a positive number of rows, got 0"
    )


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("epochs: 1", "epochs: three"))
    assert error_of(path) == f"{path}:7: train.epochs: expected an integer, got 'three' (a string)"


def test_wrong_type_in_plugin_config(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("layers: 1", "layers: [1]"))
    assert error_of(path) == f"{path}:3: encoder.layers: expected an integer, got a list"


def test_out_of_range_value(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("epochs: 1", "epochs: 1, warmup: 1.5"))
    assert error_of(path) == f"{path}:7: train.warmup: must be a fraction in [0, 1), got 1.5"


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("encoder: {name: tiny, ", "encoder: {"))
    assert error_of(path) == (
        f"{path}:3: missing required key 'name' at encoder: which encoder? (`kdnlu list encoders`)"
    )


def test_missing_encoder_section(tmp_path: Path) -> None:
    text = "\n".join(line for line in TINY_RECIPE.splitlines() if not line.startswith("encoder"))
    path = write(tmp_path / "r.yaml", text)
    assert error_of(path) == (
        f"{path}:1: missing required key 'encoder' (e.g. encoder: {{name: hf, path: minilm}}); "
        "`kdnlu list encoders` shows the choices"
    )


def test_unknown_component(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.yaml",
        TINY_RECIPE.replace("rte: {train_rows", "rte: {head: {name: clasification}, train_rows"),
    )
    assert error_of(path) == (
        f"{path}:5: unknown head 'clasification' at tasks.rte.head.name; did you mean "
        "'classification'? (`kdnlu list heads` shows every registered head)"
    )


def test_unknown_task(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("  rte:", "  rte2:"))
    assert error_of(path) == (
        f"{path}:5: unknown task 'rte2' at tasks.rte2.name; did you mean 'rte'? "
        "(`kdnlu list tasks` shows every registered task)"
    )


def test_cyclic_base(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "base: b.yaml\nname: a\n")
    b = write(tmp_path / "b.yaml", "name: b\nbase: a.yaml\n")
    assert error_of(a) == (
        f"{b}:2: cyclic base: {a} -> {b} -> {a}. "
        "A recipe may not inherit from itself, directly or through its bases."
    )


def test_more_than_one_base(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", "base: [a.yaml, b.yaml]\n")
    assert error_of(path) == (
        f"{path}:1: base must be one relative path to another recipe (a recipe has at most one "
        "base), got ['a.yaml', 'b.yaml']"
    )


def test_missing_base_file(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", "base: nowhere.yaml\n")
    assert error_of(path) == f"{path}:1: base recipe {tmp_path / 'nowhere.yaml'} does not exist"


def test_missing_data_file(tmp_path: Path) -> None:
    (tmp_path / "glue" / "RTE").mkdir(parents=True)
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace(str(GLUE_SAMPLE), "glue"))
    assert error_of(path) == (
        f"{path}:2: tasks.rte: missing data file {tmp_path / 'glue' / 'RTE' / 'train.tsv'} "
        f"(data_root {tmp_path / 'glue'}, from the recipe's data_root). {GET_GLUE_HINT}"
    )


def test_nonexistent_encoder_path(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.yaml",
        TINY_RECIPE.replace(
            "encoder: {name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}",
            "encoder: {name: hf, path: models/nowhere}",
        ),
    )
    assert error_of(path) == (
        f"{path}:3: encoder.path: no Hugging Face checkpoint at {tmp_path / 'models' / 'nowhere'}"
        ": the directory does not exist. Give a local folder with config.json and weights, or "
        "'minilm' for the bundled MiniLM-L6"
    )


def test_encoder_path_without_config(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    path = write(
        tmp_path / "r.yaml",
        TINY_RECIPE.replace(
            "encoder: {name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}",
            "encoder: {name: hf, path: empty}",
        ),
    )
    assert error_of(path) == (
        f"{path}:3: encoder.path: {tmp_path / 'empty'} is not a Hugging Face checkpoint: "
        "it has no config.json"
    )


def test_missing_recipe_file(tmp_path: Path) -> None:
    assert (
        error_of(tmp_path / "nope.yaml") == f"recipe file {tmp_path / 'nope.yaml'} does not exist"
    )


def test_set_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE)
    assert error_of(path, ("train.batch_size=big",)) == (
        "--set train.batch_size=big: train.batch_size: expected an integer, got 'big' (a string)"
    )


def test_set_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE)
    assert error_of(path, ("train.bach_size=8",)) == (
        "--set train.bach_size=8: unknown key 'bach_size' at train.bach_size; did you mean "
        "'batch_size'? Valid keys here: " + TRAIN_KEYS
    )


def test_set_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE)
    assert error_of(path, ("train.batch_size=0",)) == (
        "--set train.batch_size=0: train.batch_size: must be >= 1, got 0"
    )


def test_set_without_equals(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE)
    assert error_of(path, ("train.lr",)) == (
        "--set train.lr: expected KEY.PATH=VALUE, e.g. --set train.lr=3e-5"
    )


def test_set_into_a_scalar(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE)
    assert error_of(path, ("name.x=1",)) == (
        "--set name.x=1: name is 'tiny_test', not a mapping, so it has no sub-keys"
    )


def test_bad_literal(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("device: cpu", "device: tpu"))
    assert error_of(path) == (
        f"{path}:7: train.device: expected one of 'auto', 'cpu', 'cuda', got 'tpu' (a string)"
    )


def test_plugin_field_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE)
    assert error_of(path, ("tasks.rte.head.dropout=1.5",)) == (
        "--set tasks.rte.head.dropout=1.5: tasks.rte.head.dropout: must be in [0, 1), got 1.5"
    )


def test_task_without_a_training_split(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("tasks:\n", "tasks:\n  ax: {}\n"))
    assert error_of(path) == (
        f"{path}:5: tasks.ax: task 'ax' has no training split, so it cannot be trained; AX is "
        "GLUE's diagnostic test set, with no training or dev data. Train the mnli task instead: "
        "`kdnlu predict` writes AX.tsv with the MNLI head (from <data_root>/AX/test.tsv)"
    )


def test_every_task_optional_and_missing(tmp_path: Path) -> None:
    text = TINY_RECIPE.replace("rte: {", "rte: {optional: true, data: x, ").replace(
        "mrpc: {", "mrpc: {optional: true, data: y, "
    )
    path = write(tmp_path / "r.yaml", text)
    assert error_of(path) == (
        f"{path}:4: every task is optional and none has its data files under data_root "
        f"{GLUE_SAMPLE} (from the recipe's data_root); nothing to train. {GET_GLUE_HINT}"
    )


def test_loss_that_does_not_fit_the_labels(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("rte: {", "rte: {loss: mse, "))
    assert error_of(path) == (
        f"{path}:5: tasks.rte.loss: loss 'mse' takes regression scores, but task 'rte' has "
        "class labels; use e.g. 'cross_entropy'"
    )


def test_loss_of_another_label_level(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.yaml", TINY_RECIPE.replace("rte: {", "rte: {loss: token_cross_entropy, ")
    )
    assert error_of(path) == (
        f"{path}:5: tasks.rte.loss: loss 'token_cross_entropy' takes one class label per word "
        "(token labelling), but task 'rte' has class labels; use e.g. 'cross_entropy'"
    )


def test_set_cannot_change_the_base(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE)
    assert error_of(path, ("base=other.yaml",)) == (
        "--set base=other.yaml: base cannot be overridden; edit the recipe's base: line"
    )
