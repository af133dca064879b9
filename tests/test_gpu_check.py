"""benchmarks/gpu_check.py in its CPU mode: every stage runs or says why it is skipped, and the
JSON file and the summary are written (so the script is known to work before a GPU is lent)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from conftest import REPO, run_python


def test_the_cpu_mode_runs_every_stage_or_says_why_not(tmp_path: Path) -> None:
    out = tmp_path / "check"
    proc = run_python(
        [str(REPO / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(out)], tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "gpu_check.json").read_text())
    stages = report["stages"]
    assert list(stages) == ["kernel_tests", "soft_ce", "training", "distill_step", "vs_hf_trainer"]
    assert all(s["status"] == "ok" for n, s in stages.items() if n in ("soft_ce", "training"))
    assert stages["distill_step"]["status"] == "ok"
    assert stages["distill_step"]["kd_step_vs_plain"] > 0
    assert stages["training"]["runs"]["fp32"]["steps"] == 4
    if not torch.cuda.is_available():
        assert stages["kernel_tests"]["skipped"].startswith("no CUDA device")
        assert stages["vs_hf_trainer"]["skipped"].startswith("CUDA only here")
        assert stages["training"]["runs"]["bf16"]["skipped"].endswith("on CUDA only")
        variants = {r["variant"]: r for r in stages["soft_ce"]["results"]}
        assert variants["ours-triton"]["skipped"] == "needs a CUDA device"
        assert variants["eager"]["seconds"] > 0 and variants["ours-torch"]["seconds"] > 0
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# GPU check (")
    assert "| stage | status | seconds | note |" in summary
