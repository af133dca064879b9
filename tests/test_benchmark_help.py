"""Every benchmark script's --help prints its whole docstring: how to run it, not just a title."""

import runpy
import sys
from pathlib import Path

import pytest

from conftest import REPO

SCRIPTS = sorted(
    path
    for path in (REPO / "benchmarks").glob("*.py")
    if 'if __name__ == "__main__":' in path.read_text()  # bench_cli.py is a module, not a script
)


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_help_shows_the_usage_paragraphs(
    script: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(script.parent))  # the scripts import their siblings
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(script), run_name="__main__")
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    doc = runpy.run_path(str(script))["__doc__"]
    paragraphs = [" ".join(p.split()) for p in doc.strip().split("\n\n")]
    assert len(paragraphs) > 1, f"{script.name}: its docstring should say how to run it"
    for paragraph in paragraphs:
        assert paragraph in shown, f"{script.name} --help leaves out: {paragraph[:60]}..."
