"""The data-location rule: --set data_root > the recipe's data_root > $KDNLU_DATA/glue > the
default folder; errors about missing files say which rule chose the folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import GLUE_SAMPLE, REPO, TINY_RECIPE, write
from kdnlu.cli import main
from kdnlu.datadir import GET_GLUE_HINT, default_data_dir
from kdnlu.errors import RecipeError
from kdnlu.recipe import load_recipe

NO_ROOT = TINY_RECIPE.replace(f"data_root: {GLUE_SAMPLE}\n", "")


@pytest.fixture
def no_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No KDNLU_DATA, and a per-user cache that is this test's own."""
    monkeypatch.delenv("KDNLU_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "kdnlu" / "data" / "glue"


def sample_copy(parent: Path) -> Path:
    """A data folder holding glue/RTE and glue/MRPC from the sample."""
    for task in ("RTE", "MRPC"):
        write(parent / "glue" / task / "x", "")
        for split in ("train", "dev", "test"):
            src = GLUE_SAMPLE / task / f"{split}.tsv"
            (parent / "glue" / task / src.name).write_bytes(src.read_bytes())
    return parent


def test_without_data_root_or_env_the_default_folder_is_used(no_env: Path, tmp_path: Path) -> None:
    assert default_data_dir() / "glue" == no_env
    sample_copy(no_env.parent)
    recipe = load_recipe(write(tmp_path / "r.yaml", NO_ROOT))
    assert recipe.data_root == str(no_env)
    assert recipe.data_root_source == (
        "the default folder; KDNLU_DATA is not set and the recipe has none"
    )


def test_kdnlu_data_beats_the_default_and_a_recipe_beats_both(
    no_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = sample_copy(tmp_path / "mydata")
    monkeypatch.setenv("KDNLU_DATA", str(data))
    recipe = load_recipe(write(tmp_path / "r.yaml", NO_ROOT))
    assert (recipe.data_root, recipe.data_root_source) == (
        str(data / "glue"),
        f"KDNLU_DATA={data}",
    )
    own = load_recipe(write(tmp_path / "own.yaml", TINY_RECIPE))
    assert (own.data_root, own.data_root_source) == (str(GLUE_SAMPLE), "the recipe's data_root")
    other = sample_copy(tmp_path / "other") / "glue"
    cli = load_recipe(tmp_path / "own.yaml", [f"data_root={other}"])
    assert (cli.data_root, cli.data_root_source) == (str(other), "the recipe's data_root")


def test_a_relative_kdnlu_data_is_relative_to_the_working_directory(
    no_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample_copy(tmp_path / "rel")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDNLU_DATA", "rel")
    recipe = load_recipe(write(tmp_path / "sub" / "r.yaml", NO_ROOT))
    assert recipe.data_root == str(tmp_path / "rel" / "glue")


def test_a_missing_file_names_the_rule_that_chose_the_folder(
    no_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "r.yaml", NO_ROOT)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value) == (
        f"{path}:4: tasks.rte: missing data file {no_env / 'RTE' / 'train.tsv'} (data_root "
        f"{no_env}, from the default folder; KDNLU_DATA is not set and the recipe has none). "
        f"{GET_GLUE_HINT}"
    )
    monkeypatch.setenv("KDNLU_DATA", str(tmp_path / "empty"))
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    glue = tmp_path / "empty" / "glue"
    assert str(err.value) == (
        f"{path}:4: tasks.rte: missing data file {glue / 'RTE' / 'train.tsv'} (data_root "
        f"{glue}, from KDNLU_DATA={tmp_path / 'empty'}). {GET_GLUE_HINT}"
    )
    with pytest.raises(RecipeError) as err:
        load_recipe(path, [f"data_root={tmp_path}"])
    assert str(err.value).startswith(
        f"--set data_root={tmp_path}: tasks.rte: missing data file "
        f"{tmp_path / 'RTE' / 'train.tsv'} (data_root {tmp_path}, from the recipe's data_root)."
    )


def test_check_and_train_say_where_data_comes_from(
    no_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    data = sample_copy(tmp_path / "d")
    monkeypatch.setenv("KDNLU_DATA", str(data))
    path = write(tmp_path / "r.yaml", NO_ROOT)
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        f"  data_root: {data / 'glue'} (from KDNLU_DATA={data})"
    )
    monkeypatch.delenv("KDNLU_DATA")
    assert main(["check", str(path)]) == 2
    assert "from the default folder; KDNLU_DATA is not set" in capsys.readouterr().err


def test_nothing_in_the_repository_names_a_folder_beside_it() -> None:
    needle = "shared" + "/"  # spelled apart so this file does not find itself
    folders = ["recipes", "tests", "benchmarks", "kdnlu", "plugins", "tasks", ".ci"]
    found = subprocess.run(
        ["git", "grep", "-n", "-I", needle, "--", *folders],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if found.returncode == 128:
        pytest.skip("not a git checkout")
    allowed = ("../" + needle + "data",)  # .ci/run points KDNLU_DATA at the CI copy
    lines = [
        line
        for line in found.stdout.splitlines()
        if not (line.startswith(".ci/") and any(a in line for a in allowed))
    ]
    assert lines == []
