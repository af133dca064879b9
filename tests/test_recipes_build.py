"""Every recipe shipped in recipes/ loads, reads its data and builds its model: on the GLUE
sample in tests/fixtures (any clone), and on the full GLUE copy the data-location rule finds."""

import pytest

from conftest import GLUE_SAMPLE, RECIPES
from kdnlu.cli import dry_build
from kdnlu.recipe import load_recipe, raw_recipe

# files named _*.yaml are partial recipes (bases), complete only through a recipe's `base:`
# recipes/bench/ holds bench files for kdnlu-bench (tests/test_bench.py loads them)
ALL_RECIPES = sorted(
    p for p in RECIPES.glob("**/*.yaml") if not p.name.startswith("_") and p.parent.name != "bench"
)
BASES = sorted(p for p in RECIPES.glob("**/_*.yaml"))


def test_there_are_recipes() -> None:
    assert len(ALL_RECIPES) >= 10 and len(BASES) >= 2


@pytest.mark.parametrize("path", BASES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_every_base_is_used(path) -> None:
    users = [r for r in RECIPES.glob("**/*.yaml") if f"{path.name}" in r.read_text()]
    assert users, f"{path} is not the base of any recipe"


def stand_ins(path, tmp_path) -> list[str]:
    """The distillation recipes read what earlier steps write (the exported MT-DNN encoder, the
    teachers' store); for a dry build, the bundled MiniLM and an empty folder stand in."""
    if path.parent.name not in ("kd", "lowres", "small"):
        return []
    if "distill" in path.read_text():
        return [f"distill.store={tmp_path}"]
    if "encoder" in path.read_text():
        return ["encoder.path=minilm"]
    return []


def check_dry_build(path, overrides: list[str]) -> None:
    recipe = load_recipe(path, overrides)
    report = dry_build(recipe)
    assert report.startswith(f"recipe '{recipe.name}' is valid\n")
    assert f"encoder {recipe.encoder.name}" in report


@pytest.mark.parametrize("path", ALL_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_dry_builds_on_the_glue_sample(path, tmp_path) -> None:
    check_dry_build(path, [*stand_ins(path, tmp_path), f"data_root={GLUE_SAMPLE}"])


# the recipes that find GLUE by the data-location rule (the others read the sample)
FULL_DATA_RECIPES = [p for p in ALL_RECIPES if raw_recipe(p).get("data_root") is None]


def test_shipped_recipes_name_no_data_folder_but_the_samples() -> None:
    # where data lives is the data-location rule's business, not a recipe's
    for path in ALL_RECIPES + BASES:
        for line in path.read_text().splitlines():
            if line.startswith("data_root:"):
                assert line.split(":", 1)[1].strip() in ("../tests/fixtures/glue", "null"), path


@pytest.mark.full_data
@pytest.mark.parametrize("path", FULL_DATA_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_dry_builds_on_the_full_glue_copy(path, tmp_path) -> None:
    check_dry_build(path, stand_ins(path, tmp_path))
