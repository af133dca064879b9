"""docs/distillation.md: every command in it names files and options that exist."""

import shlex

import pytest

from conftest import GLUE_SAMPLE, REPO
from kdnlu.cli import main_parser, teach_parser
from kdnlu.recipe import load_recipe

DOC = REPO / "docs" / "distillation.md"


def commands() -> list[list[str]]:
    text = DOC.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```bash\n")[1:]]
    return [shlex.split(line) for block in blocks for line in block.splitlines() if line.strip()]


def test_the_pipeline_is_complete() -> None:
    programs = [c[0] if c[0] != "python" else c[1] for c in commands()]
    assert programs.count("kdnlu-train") == 5 and "kdnlu-teach" in programs
    assert "benchmarks/compare_runs.py" in programs


@pytest.mark.parametrize("command", commands(), ids=lambda c: " ".join(c[:3]))
def test_command_parses(command: list[str], tmp_path) -> None:
    program, args = command[0], command[1:]
    if program == "kdnlu-train":
        overrides = ["encoder.path=minilm"] if "teacher" in args[0] else []
        if "student" in args[0]:
            overrides = [f"distill.store={tmp_path}"]
        load_recipe(REPO / args[0], [*overrides, f"data_root={GLUE_SAMPLE}"])
    elif program == "kdnlu-teach":
        parsed = teach_parser().parse_args(args)
        assert parsed.tasks == ["rte", "mrpc", "stsb"]
    elif program == "kdnlu":
        main_parser().parse_args(args)
    else:
        assert program == "python" and (REPO / args[0]).is_file()
