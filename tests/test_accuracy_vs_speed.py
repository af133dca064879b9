"""benchmarks/accuracy_vs_speed.py: the table and plot of the smaller students (docs/results.md)."""

import subprocess
import sys
from pathlib import Path

from test_compare_runs import fake_run

from conftest import GLUE_SAMPLE, REPO, tiny_bert_checkpoint

SCRIPT = REPO / "benchmarks" / "accuracy_vs_speed.py"


def run_script(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True
    )


def test_table_and_plot_from_runs_and_records(tmp_path: Path) -> None:
    encoder = tiny_bert_checkpoint(tmp_path / "ckpt", layers=2)
    full = [
        fake_run(tmp_path, f"full_s{s}", {"rte": {"accuracy": a}, "stsb": {"pearson": p}})
        for s, a, p in [(1, 60.0, 80.0), (2, 62.0, 84.0)]
    ]
    cut = [
        fake_run(tmp_path, f"cut_s{s}", {"rte": {"accuracy": a}}) for s, a in [(1, 50.0), (2, 54.0)]
    ]
    records = tmp_path / "records.jsonl"
    saved = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "compare_runs.py"), "--save-records",
         str(records), cut[1]], capture_output=True, text=True,
    )  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    out = tmp_path / "out"
    done = run_script(
        ["--records", str(records), "--model", "full", "all", *full,
         "--model", "cut", "0", cut[0], "cut_s2", "--out", str(out), "--encoder", str(encoder),
         "--data-root", str(GLUE_SAMPLE.relative_to(REPO)), "--rounds", "1",
         "--leave-out", "stsb"],
        REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = (out / "accuracy_vs_speed.md").read_text().splitlines()
    assert lines[0] == (
        "| model | encoder layers | parameters | dev examples/s | speed | average dev score | "
        "average without stsb | kept of full | seeds |"
    )
    assert lines[1] == "| --- " * 9 + "|"
    # full: seeds average (60+80)/2 = 70 and (62+84)/2 = 73, 60 and 62 without stsb; cut: 50, 54
    full_row, cut_row = (line.split(" | ") for line in lines[2:4])
    assert full_row[0] == "| full" and full_row[1] == "2" and full_row[4] == "1.00x"
    assert full_row[5:] == ["71.50 ± 2.12", "61.00 ± 1.41", "100.0%", "2 |"]
    assert cut_row[0] == "| cut" and cut_row[1] == "1"
    assert cut_row[5:] == ["52.00 ± 2.83", "52.00 ± 2.83", "72.7%", "2 |"]
    assert float(cut_row[3]) > 0 and cut_row[4].endswith("x")
    assert (out / "accuracy_vs_speed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("*.tmp*"))


def test_bad_layers_and_missing_runs_are_refused(tmp_path: Path) -> None:
    run = fake_run(tmp_path, "a", {"rte": {"accuracy": 1.0}})
    done = run_script(["--model", "x", "first-three", run, "--out", str(tmp_path)], tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "--model x: LAYERS is 'all' or a list such as 0,2,4, not 'first-three'"
    )
    done = run_script(["--model", "x", "all", "--out", str(tmp_path)], tmp_path)
    assert done.stderr.strip().splitlines()[-1] == (
        "--model x all: give NAME LAYERS RUN... (at least one run)"
    )


def test_leave_out_names_a_task_of_the_runs(tmp_path: Path) -> None:
    both = fake_run(tmp_path, "both", {"rte": {"accuracy": 1.0}, "wnli": {"accuracy": 2.0}})
    only = fake_run(tmp_path, "only", {"wnli": {"accuracy": 2.0}})
    done = run_script(
        ["--model", "x", "all", both, "--out", str(tmp_path), "--leave-out", "cola"], tmp_path
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "--leave-out cola: not a task of these runs (rte, wnli)"
    )
    done = run_script(
        ["--model", "x", "all", both, "--model", "y", "all", only, "--out", str(tmp_path),
         "--leave-out", "wnli"], tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "--leave-out leaves a run of y with no task to average"
    )


def test_models_that_share_a_speed_are_spread_around_it() -> None:
    from accuracy_vs_speed import Model, plot_x
    from inference_speed import Speed

    speeds = {None: Speed("full", 6, 22.6, 50.0), "0,2,4": Speed("0,2,4", 3, 17.2, 150.0)}
    models = [
        Model("full", None, []),
        Model("a", "0,2,4", []),
        Model("b", "0,2,4", []),
        Model("c", "0,2,4", []),
    ]
    # one model alone sits on its speed; three sharing one are 1.5% of the range (100) apart
    assert plot_x(models, speeds) == [50.0, 148.5, 150.0, 151.5]
    assert plot_x(models[:3], speeds) == [50.0, 149.25, 150.75]
