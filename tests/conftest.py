"""Shared test helpers: paths to the repository, its recipes, the real GLUE sample and the
full GLUE copy (found by the data-location rule; tests marked ``full_data`` need it)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kdnlu.callbacks import Callback
from kdnlu.datadir import DATA_ENV, glue_dir

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
GLUE_SAMPLE = REPO / "tests" / "fixtures" / "glue"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get(DATA_ENV):  # tests run in temporary folders: a relative value must not move
    os.environ[DATA_ENV] = str(Path(os.environ[DATA_ENV]).resolve())
FULL_GLUE = glue_dir()  # $KDNLU_DATA/glue, else ~/.cache/kdnlu/data/glue
# the tasks whose complete files the full-data tests read
FULL_DATA_TASKS = ("CoLA", "SST-2", "MRPC", "STS-B", "RTE", "WNLI")
# set in CI's full-data pass: a missing copy fails those tests instead of skipping them
REQUIRE_FULL_DATA = os.environ.get("KDNLU_REQUIRE_FULL_DATA") == "1"


def full_glue_absent() -> str | None:
    """Why the full GLUE copy cannot be used, or ``None`` when its files are there."""
    missing = [t for t in FULL_DATA_TASKS if not (FULL_GLUE.path / t / "train.tsv").is_file()]
    if not missing:
        return None
    return (
        f"needs the full GLUE files, absent from {FULL_GLUE.path} (from {FULL_GLUE.source}): "
        f"no {', '.join(missing)}; `kdnlu data glue` fetches them"
    )


@pytest.fixture(autouse=True)
def _full_data_gate(request: pytest.FixtureRequest) -> None:
    """Tests marked ``full_data`` skip with the reason where the full GLUE copy is absent."""
    if request.node.get_closest_marker("full_data") is None:
        return
    reason = full_glue_absent()
    if reason is not None and REQUIRE_FULL_DATA:
        pytest.fail(f"KDNLU_REQUIRE_FULL_DATA=1 but this test {reason}")
    if reason is not None:
        pytest.skip(reason)


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


def tiny_bert_checkpoint(folder: Path, layers: int = 1) -> Path:
    """A small random BERT saved in Hugging Face format, with the bundled MiniLM's real vocabulary
    (a local checkpoint folder, as a user's would be)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from kdnlu.hf import bundled_minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_minilm_path()))
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class CrashAt(Callback):
    """Crashes the run (RuntimeError) right after step ``step``, as a kill would: whatever
    checkpoints were written by then stay on disk."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, state, task, loss) -> None:
        if state.step == self.step:
            raise RuntimeError("crash")


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
