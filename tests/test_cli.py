"""The command lines: list, check, and how errors reach the user."""

from pathlib import Path

import pytest

from conftest import GLUE_SAMPLE, RECIPES, TINY_RECIPE, write
from kdnlu.cli import main, train_main
from kdnlu.registry import REGISTRIES


def test_list_shows_every_component_with_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind, registry in REGISTRIES.items():
        assert f"{kind}:" in out
        for entry in registry:
            assert f"  {entry.name}  -  {entry.description}  [{entry.module}]" in out
    assert "      path: str = 'minilm'" in out
    assert "      dropout: float | None = None" in out
    assert "      max_length: int = 128" in out


def test_list_shows_field_help_wrapped_under_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("      max_length: int = 128")
    help_indent = " " * 10
    assert lines[at + 1 : at + 3] == [
        help_indent + "tokens per example; pairs are truncated longest-first; at most what the "
        "encoder has",
        help_indent + "position embeddings for (512 for BERT and MiniLM)",
    ]
    assert lines[at + 3] == "      train_rows: int | None = None"


def test_list_one_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "heads"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("heads:\n  classification  -  ")
    assert "encoders:" not in out and "      dropout: float = 0.1" in out


def test_list_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["list", "optimizers"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'optimizers'" in capsys.readouterr().err


def test_check_builds_without_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:4] == [
        "recipe 'tiny_test' is valid",
        f"  data_root: {GLUE_SAMPLE} (from the recipe's data_root)",
        "  rte: 32 train / 16 dev rows, head classification, loss cross_entropy, metrics accuracy",
        "  mrpc: 32 train / 16 dev rows, head classification, loss cross_entropy, "
        "metrics f1, accuracy",
    ]
    assert not (tmp_path / "runs").exists()


def test_user_error_is_one_paragraph_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("epochs: 1", "epochs: many"))
    assert train_main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}:7: train.epochs: expected an integer, got 'many' (a string)\n"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    from kdnlu.errors import RecipeError

    path = write(tmp_path / "r.yaml", TINY_RECIPE.replace("epochs: 1", "epochs: many"))
    with pytest.raises(RecipeError):
        train_main([str(path), "--debug"])


def test_dry_run_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main([str(RECIPES / "tiny.yaml"), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("recipe 'tiny' is valid\n")


def test_list_metrics_shows_their_direction(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "metrics"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("metrics:\n  accuracy  -  Percentage of predictions equal to the gold")
    assert "  mae  -  Mean absolute error of scores" in out
    mae = out.split("  mae  -  ", 1)[1].splitlines()
    assert mae[1:3] == ["      greater_is_better: False", "      targets: ('score',)"]


METRIC_PLUGIN = '''\
import numpy as np

from kdnlu.registry import METRICS


@METRICS.register("max_error", greater_is_better=False, targets=("score",))
def max_error(pred, gold):
    """Largest absolute error of any row."""
    return float(np.abs(pred - gold).max())
'''


def test_list_imports_shows_what_a_plugin_adds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kdnlu.registry import METRICS

    write(tmp_path / "max_error.py", METRIC_PLUGIN)
    try:
        assert main(["list", "--imports", "max_error.py"]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[:3] == [
            "metrics:",
            "  max_error  -  Largest absolute error of any row.  "
            f"[kdnlu_recipe_import_max_error_{out.split('max_error_')[1].split(']')[0]}]",
            "      greater_is_better: False",
        ]
        assert "accuracy" not in out and "heads:" not in out
        recipe = write(tmp_path / "sub" / "r.yaml", "imports: [../max_error.py]\n")
        assert main(["list", "--recipe", str(recipe)]) == 0
        assert "  max_error  -  Largest absolute error" in capsys.readouterr().out
        assert main(["list", "heads", "--recipe", str(recipe)]) == 0
        assert capsys.readouterr().out == "../max_error.py add(s) no heads\n"
    finally:
        METRICS.unregister("max_error")
