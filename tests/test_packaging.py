"""A normal (non-editable) build ships the framework, the built-in plugins and the tasks."""

import shutil
import zipfile
from pathlib import Path

from conftest import REPO, pip_offline


def test_wheel_contains_all_three_packages_and_scripts(tmp_path: Path) -> None:
    # a copy without build/: setuptools would pack stale files left there by an earlier build
    source = tmp_path / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "build", "*.egg-info", ".venv", ".ci-venv", "runs", "__pycache__", ".cache"
        ),
    )
    pip_offline("wheel", "-w", str(tmp_path), str(source))
    (wheel,) = tmp_path.glob("kdnlu-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {"kdnlu": "kdnlu", "plugins": "kdnlu_plugins", "tasks": "kdnlu_tasks"}
    expected = {
        f"{package}/{path.relative_to(REPO / folder).as_posix()}"
        for folder, package in sources.items()
        for path in (REPO / folder).rglob("*.py")
    }
    assert "kdnlu/kernels/triton_backend.py" in expected and "kdnlu/bench/grid.py" in expected
    assert expected <= names, sorted(expected - names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "kdnlu = kdnlu.cli:main" in text and "kdnlu-train = kdnlu.cli:train_main" in text
    assert "kdnlu-teach = kdnlu.cli:teach_main" in text
    assert "kdnlu-bench = kdnlu.bench.cli:main" in text
    (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    assert "Requires-Dist: torch==2.13.0" in zipfile.ZipFile(wheel).read(meta).decode()
