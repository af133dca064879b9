"""benchmarks/cpu_scale_kd.sh: each stage's plan (PLAN=1) runs its steps in order, and every
command in it names recipes, options and points that exist."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from test_distillation_doc import check_common_command, set_values

from conftest import REPO
from kdnlu.bench.cli import bench_parser
from kdnlu.cli import teach_parser
from kdnlu.options import build_options
from kdnlu.teach import TeachOptions

SCRIPT = REPO / "benchmarks" / "cpu_scale_kd.sh"
STAGES = ["teachers", "students", "selection", "small-gold", "small-kd"]


def plan(*stages: str) -> list[list[str]]:
    done = subprocess.run(
        ["bash", str(SCRIPT), *stages],
        env={**os.environ, "PLAN": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return [shlex.split(line) for line in done.stdout.splitlines()]


def test_students_stage_order() -> None:
    steps = [" ".join(c[:2]) if c[0] != "kdnlu-train" else dict(
        s.split("=", 1) for s in set_values(c))["name"] for c in plan("students")]  # fmt: skip
    assert steps == [
        "mtdnn_small_s13",
        "kdnlu export",
        "teacher_a",
        "teacher_b",
        "teacher_c",
        "kdnlu-teach runs/teacher_a",
        "python benchmarks/ensemble_dev.py",
        "kd_student_s13",
        "kd_student_s14",
        "kd_student_s15",
        "python benchmarks/compare_runs.py",
    ]


def test_selection_keeps_the_best_three_of_six_teachers() -> None:
    teach = next(c for c in plan("selection") if c[0] == "kdnlu-teach")
    parsed = teach_parser().parse_args(teach[1:])
    assert parsed.teachers == [f"runs/teacher_{t}" for t in "abcdef"]
    assert parsed.out == "runs/kd_store_best3"
    assert build_options(TeachOptions, parsed).keep_best == 3


def test_unknown_stage_is_refused_with_the_stage_names() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "studnets"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "unknown stage 'studnets': teachers, students, selection, small-gold or small-kd"
    )


@pytest.mark.parametrize("command", plan(*STAGES), ids=lambda c: " ".join(c[:3])[:60])
def test_command_names_what_exists(command: list[str], tmp_path: Path) -> None:
    if check_common_command(command, tmp_path):
        return
    program, args = command[0], command[1:]
    if program == "kdnlu-teach":
        parsed = teach_parser().parse_args(args)
        build_options(TeachOptions, parsed)
        assert all(run.startswith("runs/teacher_") for run in parsed.teachers)
    else:
        assert program == "kdnlu-bench"
        if args[0] == "report":
            return
        parsed = bench_parser().parse_args(args)
        points = yaml.safe_load((REPO / parsed.bench).read_text())["points"]
        chosen = [p for group in parsed.points for p in group.split(",")]
        assert chosen and set(chosen) <= set(points)
