"""docs/distillation.md: every command in it names files and options that exist."""

import shlex
from pathlib import Path

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


def set_values(command: list[str]) -> list[str]:
    """The ``--set`` values of a command line."""
    return [command[i + 1] for i, word in enumerate(command) if word == "--set"]


def check_common_command(command: list[str], store: Path) -> bool:
    """Check a kdnlu-train, kdnlu or python command line of a doc or script: its recipe loads
    with its ``--set`` values (on the GLUE sample; teachers on the bundled MiniLM, students
    with ``store`` as their teachers' store), its arguments parse, its script exists. False
    for any other program, which the caller checks."""
    program, args = command[0], command[1:]
    if program == "kdnlu-train":
        overrides = [s for s in set_values(command) if not s.startswith("distill.store=")]
        if "teacher" in args[0]:
            overrides.append("encoder.path=minilm")
        if "student" in args[0]:
            overrides.append(f"distill.store={store}")
        load_recipe(REPO / args[0], [*overrides, f"data_root={GLUE_SAMPLE}"])
    elif program == "kdnlu":
        main_parser().parse_args(args)
    elif program == "python":
        assert (REPO / args[0]).is_file()
    else:
        return False
    return True


@pytest.mark.parametrize("command", commands(), ids=lambda c: " ".join(c[:3]))
def test_command_parses(command: list[str], tmp_path: Path) -> None:
    if check_common_command(command, tmp_path):
        return
    assert command[0] == "kdnlu-teach"
    parsed = teach_parser().parse_args(command[1:])
    assert parsed.tasks == ["rte", "mrpc", "stsb"]
