"""A normal (non-editable) build ships the framework, the built-in plugins and the tasks."""

import zipfile
from pathlib import Path

from conftest import REPO, pip_offline


def test_wheel_contains_all_three_packages_and_scripts(tmp_path: Path) -> None:
    pip_offline("wheel", "-w", str(tmp_path), str(REPO))
    (wheel,) = tmp_path.glob("kdnlu-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "kdnlu/registry.py",
        "kdnlu/trainer.py",
        "kdnlu_plugins/__init__.py",
        "kdnlu_plugins/encoders.py",
        "kdnlu_tasks/__init__.py",
        "kdnlu_tasks/glue.py",
    ):
        assert module in names, module
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "kdnlu = kdnlu.cli:main" in text and "kdnlu-train = kdnlu.cli:train_main" in text
    assert "kdnlu-teach = kdnlu.cli:teach_main" in text
    (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    assert "Requires-Dist: torch==2.13.0" in zipfile.ZipFile(wheel).read(meta).decode()
