"""Shared test helpers: paths to the repository, its recipes and the real GLUE sample."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
GLUE_SAMPLE = REPO / "tests" / "fixtures" / "glue"
SHARED_GLUE = REPO.parent / "shared" / "data" / "glue"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# one token cache for the whole session, never the user's own
os.environ["KDNLU_CACHE_DIR"] = tempfile.mkdtemp(prefix="kdnlu-test-cache-")


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own empty directory, so runs/ never lands in the repository."""
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


TINY_RECIPE = f"""\
name: tiny_test
data_root: {GLUE_SAMPLE}
encoder: {{name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}}
tasks:
  rte: {{train_rows: 32, eval_rows: 16, max_length: 48}}
  mrpc: {{train_rows: 32, eval_rows: 16, max_length: 48}}
train: {{lr: 1.0e-3, batch_size: 16, epochs: 1, device: cpu}}
"""


def run_python(
    args: list[str], cwd: Path, extra_path: tuple[Path, ...] = (), **env: str
) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` in a child process that imports kdnlu from this checkout."""
    pythonpath = os.pathsep.join(str(p) for p in (*extra_path, REPO))
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONPATH": pythonpath, **env},
    )


def pip_offline(*args: str) -> None:
    """``pip ARGS`` that builds local sources only: no index, no isolated build env."""
    proc = run_python(
        ["-m", "pip", *args, "--quiet", "--no-deps", "--no-build-isolation", "--no-index"],
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
