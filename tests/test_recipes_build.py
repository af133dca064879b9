"""Every recipe shipped in recipes/ loads, reads its data and builds its model."""

import pytest

from conftest import RECIPES
from kdnlu.cli import dry_build
from kdnlu.recipe import load_recipe

ALL_RECIPES = sorted(RECIPES.glob("**/*.yaml"))


def test_there_are_recipes() -> None:
    assert len(ALL_RECIPES) >= 2


@pytest.mark.parametrize("path", ALL_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_dry_builds(path) -> None:
    recipe = load_recipe(path)
    report = dry_build(recipe)
    assert report.startswith(f"recipe '{recipe.name}' is valid\n")
    assert f"encoder {recipe.encoder.name}" in report
