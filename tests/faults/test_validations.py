"""Values that used to pass validation and fail later (or never): non-finite numbers, seeds out
of range, run names that are not one folder, regression targets out of the task's range, a
max_length the encoder cannot take, CR-only files, YAML alias bombs; and valid YAML (merge keys,
a child recipe that switches its encoder) that used to be refused."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from conftest import GLUE_SAMPLE, TINY_RECIPE, write
from kdnlu.errors import DataError, KdnluError, RecipeError
from kdnlu.recipe import load_recipe
from kdnlu.registry import TASKS
from kdnlu.trainer import train


def recipe_error(tmp_path: Path, overrides: list[str], text: str = TINY_RECIPE) -> str:
    with pytest.raises(RecipeError) as err:
        load_recipe(write(tmp_path / "r.yaml", text), overrides)
    return str(err.value)


def test_numbers_must_be_finite(tmp_path: Path) -> None:
    assert recipe_error(tmp_path, ["train.lr=.nan"]) == (
        "--set train.lr=.nan: train.lr: expected a finite number, got nan"
    )
    text = TINY_RECIPE + "distill: {store: store, tasks: [rte], temperature: .inf}\n"
    assert recipe_error(tmp_path, [], text) == (
        f"{tmp_path / 'r.yaml'}:8: distill.temperature: expected a finite number, got inf"
    )


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seeds_lie_in_what_the_generators_take(tmp_path: Path, seed: int) -> None:
    assert recipe_error(tmp_path, [f"train.seed={seed}"]) == (
        f"--set train.seed={seed}: train.seed: must be in [0, 2**32), got {seed}"
    )
    assert recipe_error(tmp_path, [f"tasks.rte.sample_seed={seed}"]) == (
        f"--set tasks.rte.sample_seed={seed}: tasks.rte.sample_seed: must be in [0, 2**32), "
        f"got {seed}"
    )


@pytest.mark.parametrize("name", ["../escaped", "", "a/b", ".."])
def test_a_run_name_is_one_folder_name(tmp_path: Path, name: str) -> None:
    assert recipe_error(tmp_path, [f"name={name}"]) == (
        f"--set name={name}: name: must be one folder name (the run directory is "
        "output_dir/name): not empty, '.' or '..', and without '/' or '\\'; "
        f"got {name!r}"
    )


@pytest.mark.parametrize(
    ("score", "reason"),
    [
        ("700", "score 700 is outside task stsb's range 0 to 5"),
        ("-0.5", "score -0.5 is outside task stsb's range 0 to 5"),
        ("1e39", "label '1e39' is not a finite number (in float32, as trained)"),
    ],
)
def test_regression_targets_outside_the_tasks_range_are_bad_rows(
    tmp_path: Path, score: str, reason: str
) -> None:
    shutil.copytree(GLUE_SAMPLE / "STS-B", tmp_path / "STS-B")
    path = tmp_path / "STS-B" / "train.tsv"
    lines = path.read_text().splitlines()
    fields = lines[3].split("\t")
    lines[3] = "\t".join([*fields[:-1], score])
    path.write_text("\n".join(lines) + "\n")
    task = TASKS.get("stsb").build(TASKS.get("stsb").config(), data_root=str(tmp_path))
    with pytest.raises(DataError) as err:
        task.read("train")
    assert str(err.value) == (
        f"{path}:4: {reason}. Fix or remove this row (or set on_bad_row: skip for the task to "
        "skip such rows)."
    )


def test_a_max_length_beyond_the_encoders_positions_stops_before_the_run_dir(
    tmp_path: Path,
) -> None:
    recipe = load_recipe(write(tmp_path / "r.yaml", TINY_RECIPE), ["tasks.mrpc.max_length=600"])
    with pytest.raises(KdnluError) as err:
        train(recipe, progress=False)
    assert str(err.value) == (
        "tasks.mrpc.max_length is 600, but encoder 'tiny' has position embeddings for 512 "
        "tokens; set it to at most 512"
    )
    assert not (tmp_path / "runs").exists()


def test_a_file_with_cr_only_line_endings_gets_a_short_message(tmp_path: Path) -> None:
    shutil.copytree(GLUE_SAMPLE / "RTE", tmp_path / "RTE")
    path = tmp_path / "RTE" / "train.tsv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r"))
    task = TASKS.get("rte").build(TASKS.get("rte").config(), data_root=str(tmp_path))
    with pytest.raises(DataError) as err:
        task.read("train")
    assert str(err.value) == (
        f"{path}: its lines end in a carriage return alone (CR, old Mac style), so it reads as "
        "one line; save it with LF (or CRLF) line endings"
    )


ALIAS_BOMB = """\
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


MERGE_BOMB = "a: &a {x: 1, y: 2}\n" + "".join(
    f"{b}: &{b} {{<<: [{', '.join(['*' + a] * 9)}]}}\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize("bomb", [ALIAS_BOMB, MERGE_BOMB], ids=["aliases", "merge keys"])
def test_a_yaml_alias_bomb_stops_at_once(tmp_path: Path, bomb: str) -> None:
    started = time.time()
    message = recipe_error(tmp_path, [], bomb)
    assert time.time() - started < 10
    assert message.startswith(f"{tmp_path / 'r.yaml'}:")
    assert message.endswith(
        ": the recipe expands to more than 100000 values (aliases of aliases?); a recipe is "
        "far smaller"
    )


def test_yaml_merge_keys_with_overrides_are_accepted(tmp_path: Path) -> None:
    text = TINY_RECIPE.replace(
        "  mrpc: {train_rows: 32, eval_rows: 16, max_length: 48}",
        "  mrpc: {<<: *rte_options, max_length: 64}",
    ).replace("  rte: {", "  rte: &rte_options {")
    recipe = load_recipe(write(tmp_path / "r.yaml", text))
    assert recipe.tasks["mrpc"].options.max_length == 64
    assert recipe.tasks["mrpc"].options.train_rows == 32
    assert recipe.tasks["rte"].options.max_length == 48


def test_a_child_recipe_that_switches_its_encoder_does_not_inherit_its_settings(
    tmp_path: Path,
) -> None:
    write(tmp_path / "base.yaml", TINY_RECIPE)
    child = write(tmp_path / "child.yaml", "base: base.yaml\nencoder: {name: hf, path: minilm}\n")
    recipe = load_recipe(child)
    assert recipe.encoder.name == "hf" and recipe.encoder.config.path == "minilm"
    assert recipe.tasks["rte"].options.max_length == 48  # the rest is still inherited
