"""benchmarks/intermediate_kd_step.py runs its four variants end to end (tiny random models,
a few steps) and reports each against logit-only distillation."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_every_variant_trains_and_is_reported() -> None:
    script = REPO / "benchmarks" / "intermediate_kd_step.py"
    args = ["--encoder", "tiny", "--steps", "3", "--rounds", "1", "--teachers", "1"]
    out = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=True
    ).stdout
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    names = [row.split(" | ")[0].strip("| ") for row in rows[1:]]
    assert names == ["logit", "+hidden store cls", "+hidden store all", "+hidden online cls"]
    assert rows[1].endswith("| 1.000 (1.000-1.000), +0.0% |")  # logit KD against itself
