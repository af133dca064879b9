"""kdnlu-bench: grid expansion and its errors, resume and skip, failure isolation, reports from
fixture results, and a tiny end-to-end bench (tiny random BERT, 2 points x 2 seeds)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from conftest import GLUE_SAMPLE, RECIPES, REPO, TINY_RECIPE, write
from kdnlu.bench.cli import main as bench_main
from kdnlu.bench.grid import load_bench
from kdnlu.bench.report import build_reports, markdown_report, results_csv
from kdnlu.bench.runner import RESULTS, pending_runs, read_results, run_bench
from kdnlu.bench.stats import paired_t_test, sample_std, t_two_sided_p
from kdnlu.errors import KdnluError, RecipeError

FAST = "set: {train.max_steps: 2}\n"

# a loss plugin whose runs fail (an exception) or crash (the process dies) on purpose
FAILING_LOSSES = """
import os
from dataclasses import dataclass

from kdnlu.registry import LOSSES


@dataclass(frozen=True)
class FailConfig:
    crash: bool = False


@LOSSES.register("fails_on_purpose", target="class", config=FailConfig)
def build(config=FailConfig()):
    def loss(logits, labels):
        if config.crash:
            os._exit(3)
        raise RuntimeError("this loss fails on purpose")

    loss.target = "class"
    return loss
"""


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    return write(tmp_path / "tiny.yaml", TINY_RECIPE)


def bench_file(tmp_path: Path, body: str, name: str = "grid") -> Path:
    return write(tmp_path / f"{name}.yaml", f"recipe: tiny.yaml\noutput_dir: out\n{body}")


def test_grid_expands_every_combination_for_every_seed(tmp_path: Path, recipe: Path) -> None:
    path = bench_file(
        tmp_path,
        "seeds: [1, 2]\ngrid:\n  train.lr: [0.001, 0.002]\n  train.optimizer: [adamw, adamax]\n",
    )
    bench = load_bench(path)
    assert bench.folder == tmp_path / "out" / "grid"
    assert [p.name for p in bench.points] == [
        "lr=0.001 optimizer=adamw",
        "lr=0.001 optimizer=adamax",
        "lr=0.002 optimizer=adamw",
        "lr=0.002 optimizer=adamax",
    ]
    runs = bench.runs
    assert len(runs) == 8 and len({r.key for r in runs}) == 8
    assert [(r.seed, r.folder) for r in bench.points[1].runs] == [
        (1, "lr=0.001_optimizer=adamax/s1"),
        (2, "lr=0.001_optimizer=adamax/s2"),
    ]
    assert bench.points[3].values == {"train.lr": 0.002, "train.optimizer": "adamax"}
    # the same recipe and values always give the same keys (what resume relies on)
    assert [r.key for r in load_bench(path).runs] == [r.key for r in runs]


def test_named_points_with_several_recipes(tmp_path: Path, recipe: Path) -> None:
    rte_only = TINY_RECIPE.split("  mrpc:")[0] + "train: {epochs: 1, device: cpu}\n"
    write(tmp_path / "rte.yaml", rte_only)
    write(tmp_path / "mrpc.yaml", rte_only.replace("rte:", "mrpc:"))
    path = bench_file(
        tmp_path,
        "seeds: [5]\n"
        "points:\n"
        "  joint: {}\n"
        "  single: {recipe: [rte.yaml, mrpc.yaml]}\n"
        "grid: {train.lr: [0.001]}\n"
        "compare: [[joint lr=0.001, single lr=0.001]]\n",
    )
    bench = load_bench(path)
    joint, single = bench.points
    assert (joint.name, single.name) == ("joint lr=0.001", "single lr=0.001")
    assert [r.folder for r in single.runs] == ["single_lr=0.001/s5_rte", "single_lr=0.001/s5_mrpc"]
    assert bench.compare == (("joint lr=0.001", "single lr=0.001"),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "grid:\n  train.lrr: [0.001]\n",
            "grid.yaml:4: unknown key 'lrr' at train.lrr; did you mean 'lr'?",
        ),
        ("grid:\n  train.lr: [0.001, -1]\n", "grid.yaml:4: train.lr: must be > 0, got -1.0"),
        ("grid:\n  train.lr: 0.001\n", "grid.yaml:4: grid.train.lr: expected a non-empty list"),
        ("seeds: [1, 1]\n", "grid.yaml:3: seeds: a seed is listed twice: [1, 1]"),
        ("seeds: 1\n", "grid.yaml:3: seeds: expected a list of integer seeds, got 1"),
        ("grids: {}\n", "grid.yaml:3: grids: unknown key; a bench file takes name, output_dir"),
        (
            "points: {a: {recipe: missing.yaml}}\n",
            "grid.yaml:3: points.a.recipe: recipe {tmp}/missing.yaml does not exist",
        ),
        (
            "points: {a: {}, b: {}}\n",
            "grid.yaml:1: (top level): points 'a' and 'b' (seed 13) resolve to the same recipe "
            "and values",
        ),
        (
            "grid: {train.lr: [0.001]}\ncompare: [[lr=0.001, lr=0.01]]\n",
            "grid.yaml:4: compare[0][1]: no point is named 'lr=0.01'; the points are: lr=0.001",
        ),
        ("report: {evaluation: first}\n", "grid.yaml:3: report.evaluation: expected last or best"),
    ],
)
def test_bench_file_errors_name_the_line(
    tmp_path: Path, recipe: Path, body: str, message: str
) -> None:
    path = bench_file(tmp_path, body)
    with pytest.raises(RecipeError) as err:
        load_bench(path)
    assert str(err.value).startswith(message.format(tmp=tmp_path).replace("grid.yaml", str(path)))


def test_grid_errors_stop_before_any_run(
    tmp_path: Path, recipe: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bench_file(tmp_path, "grid:\n  train.lr: [0.001, -1]\n")
    assert bench_main([str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}:4: train.lr: must be > 0, got -1.0\n"
    assert not (tmp_path / "out").exists()


def test_tiny_bench_end_to_end_then_resume(tmp_path: Path, recipe: Path) -> None:
    """2 points x 2 seeds with two jobs; a second call skips them all; a lost result reruns."""
    path = bench_file(
        tmp_path,
        FAST + "seeds: [1, 2]\ngrid:\n  train.lr: [0.001, 0.003]\n"
        "compare: [[lr=0.001, lr=0.003]]\n",
    )
    assert bench_main([str(path), "--jobs", "2", "--quiet", "--set", "train.batch_size=8"]) == 0
    bench = load_bench(path, overrides=["train.batch_size=8"])
    results = read_results(bench.folder)
    assert sorted(r["status"] for r in results.values()) == ["ok"] * 4
    assert not {r.key for r in load_bench(path).runs} & set(results)  # --set makes other runs
    for run in bench.runs:
        record = results[run.key]
        assert record["steps"] == 2 and set(record["last"]) == {"rte", "mrpc"}
        assert Path(record["run_dir"]) == bench.folder / "runs" / run.folder
        assert (Path(record["run_dir"]) / "checkpoints" / "last").is_dir()
        recipe_of_run = (Path(record["run_dir"]) / "recipe.yaml").read_text()
        assert f"seed: {run.seed}" in recipe_of_run and "batch_size: 8" in recipe_of_run
    for name in ("results.csv", "report.md", "plots/scores.png", "plots/curves.png"):
        assert (bench.folder / name).is_file(), name
    assert (bench.folder / "plots/scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    outcome = run_bench(bench, progress=False)
    assert (outcome.total, outcome.skipped, outcome.ran) == (4, 4, 0)

    lines = (bench.folder / RESULTS).read_text().splitlines()
    (bench.folder / RESULTS).write_text("\n".join(lines[1:]) + "\n")  # as if killed during it
    lost = json.loads(lines[0])["key"]
    outcome = run_bench(bench, progress=False)
    assert (outcome.skipped, outcome.ran, outcome.failed) == (3, 1, [])
    rerun = read_results(bench.folder)[lost]
    assert rerun["status"] == "ok" and rerun["run_dir"].endswith("-2")  # the old dir is kept


def test_failed_runs_do_not_stop_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "losses.py", FAILING_LOSSES)
    write(tmp_path / "tiny.yaml", "imports: [losses.py]\n" + TINY_RECIPE)
    path = bench_file(
        tmp_path,
        FAST + "seeds: [1]\npoints:\n"
        "  fine: {}\n"
        "  error: {set: {tasks.rte.loss.name: fails_on_purpose}}\n"
        "  crash: {set: {tasks.rte.loss: {name: fails_on_purpose, crash: true}}}\n",
    )
    assert bench_main([str(path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "2 run(s) failed (their errors are in report.md)" in err
    bench = load_bench(path)
    by_point = {r["point"]: r for r in read_results(bench.folder).values()}
    assert by_point["fine"]["status"] == "ok"
    assert by_point["error"]["error"] == "RuntimeError: this loss fails on purpose"
    assert re.fullmatch(
        r"the run's process ended with exit code 3 and no result; see .*crash__s1\.log",
        by_point["crash"]["error"],
    )
    report = (bench.folder / "report.md").read_text()
    assert "- error seed 1 failed: RuntimeError: this loss fails on purpose" in report
    assert "| fine | 1/1 |" in report and "| error | 0/1 | - | - | - |" in report

    # failures are not retried unless asked
    assert run_bench(bench, progress=False).ran == 0
    retried = {run.point for run in pending_runs(bench, retry_failed=True)}
    assert retried == {"error", "crash"}


def fixture_bench(tmp_path: Path, recipe: Path) -> tuple:
    """A bench whose results.jsonl is written by hand: exact numbers in, exact tables out."""
    path = bench_file(
        tmp_path,
        "seeds: [1, 2, 3]\ngrid: {train.lr: [0.001, 0.002]}\ncompare: [[lr=0.002, lr=0.001]]\n",
    )
    bench = load_bench(path)
    bench.folder.mkdir(parents=True)
    scores = {  # point -> seed -> (rte accuracy, mrpc f1, mrpc accuracy)
        "lr=0.001": {1: (60.0, 80.0, 70.0), 2: (62.0, 82.0, 72.0), 3: (64.0, 78.0, 74.0)},
        "lr=0.002": {1: (63.0, 81.0, 71.0), 2: (64.0, 85.0, 73.0)},  # seed 3 failed
    }
    lines = []
    for point in bench.points:
        for run in point.runs:
            if run.seed not in scores[point.name]:
                record = {"status": "failed", "error": "TrainingError: the rte loss is nan"}
            else:
                rte, f1, acc = scores[point.name][run.seed]
                dev = {"rte": {"accuracy": rte}, "mrpc": {"f1": f1, "accuracy": acc}}
                record = {"status": "ok", "last": dev, "best": dev, "steps": 9, "seconds": 1.5}
                record["curve"] = [[5, 50.0 + run.seed], [9, 60.0 + run.seed]]
            lines.append(
                json.dumps(
                    {
                        "key": run.key,
                        "point": run.point,
                        "seed": run.seed,
                        "recipe": run.recipe,
                        **record,
                    }
                )
            )
    (bench.folder / RESULTS).write_text("\n".join(lines) + "\n")
    return bench, read_results(bench.folder)


def test_report_tables_from_fixture_results(tmp_path: Path, recipe: Path) -> None:
    bench, results = fixture_bench(tmp_path, recipe)
    report = markdown_report(bench, results)
    # lr=0.001: rte 60, 62, 64; mrpc (f1 + acc) / 2 = 75, 77, 76; average 67.5, 69.5, 70
    assert "| lr=0.001 | 3/3 | 62.00 ± 2.00 | 76.00 ± 1.00 | 69.00 ± 1.32 |" in report
    assert "| lr=0.002 | 2/3 | 63.50 ± 0.71 | 77.50 ± 2.12 | 70.50 ± 1.41 |" in report
    assert "| lr=0.001 | 62.00 ± 2.00 | 80.00 ± 2.00 | 72.00 ± 2.00 |" in report  # every metric
    # paired over seeds 1 and 2: rte differences 3 and 2
    assert "| rte | 63.50 ± 0.71 | 61.00 ± 1.41 | +2.50 ± 0.71 | 5.00 | 0.126 | 2 |" in report
    assert "- lr=0.002 seed 3 failed: TrainingError: the rte loss is nan" in report

    rows = list(csv.DictReader(io.StringIO(results_csv(bench, results))))
    assert len(rows) == 6
    assert rows[0] == {
        "point": "lr=0.001",
        "seed": "1",
        "recipe": "tiny.yaml",
        "status": "ok",
        "seconds": "1.5",
        "steps": "9",
        "train.lr": "0.001",
        "rte.accuracy": "60.0000",
        "mrpc.f1": "80.0000",
        "mrpc.accuracy": "70.0000",
        "average": "67.5000",
        "run_dir": "",
        "error": "",
    }
    assert rows[5]["status"] == "failed" and rows[5]["error"].startswith("TrainingError")


def test_report_command_rebuilds_from_the_folder(
    tmp_path: Path, recipe: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench, _ = fixture_bench(tmp_path, recipe)
    build_reports(bench)  # writes bench.json's sibling files; the command needs bench.json
    (bench.folder / "bench.json").write_text(json.dumps(bench.to_json()))
    (bench.folder / "report.md").unlink()
    assert bench_main(["report", str(bench.folder)]) == 0
    out = capsys.readouterr().out
    assert "| lr=0.001 | 3/3 | 62.00 ± 2.00 |" in out
    assert (bench.folder / "report.md").is_file()
    assert (bench.folder / "plots" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert bench_main(["report", str(tmp_path)]) == 2
    assert f"{tmp_path} is not a bench folder: it has no bench.json" in capsys.readouterr().err


def test_results_file_cut_short_or_damaged(tmp_path: Path, recipe: Path) -> None:
    bench, results = fixture_bench(tmp_path, recipe)
    path = bench.folder / RESULTS
    path.write_text(path.read_text() + '{"key": "abc", "sta')
    assert read_results(bench.folder) == results  # a last line cut short is ignored
    path.write_text("not json\n" + path.read_text())
    with pytest.raises(KdnluError, match=re.escape(f"{path}:1: not a result line of kdnlu-bench")):
        read_results(bench.folder)


def test_paired_t_test_against_table_values() -> None:
    # two-sided 5% critical values of Student's t
    for t, df in [(12.706, 1), (4.303, 2), (2.776, 4), (2.228, 10), (1.984, 100)]:
        assert t_two_sided_p(t, df) == pytest.approx(0.05, abs=2e-4)
    assert t_two_sided_p(0.0, 3) == pytest.approx(1.0)
    test = paired_t_test([3.0, 4.0, 8.0], [1.0, 1.0, 2.0])  # differences 2, 3, 6
    assert test.mean_difference == pytest.approx(11 / 3)
    assert test.std_difference == pytest.approx(sample_std([2.0, 3.0, 6.0]))
    assert test.t == pytest.approx((11 / 3) / (sample_std([2, 3, 6]) / 3**0.5))
    assert paired_t_test([1.0], [0.0]).p is None  # one seed: no test


@pytest.mark.parametrize("path", sorted((RECIPES / "bench").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_bench_files_expand(path: Path) -> None:
    # what the student recipes read, made by kdnlu-teach
    stores = [REPO / "runs" / "kd_store", REPO / "runs" / "lowres" / "kd_store"]
    made = [store for store in stores if not store.exists()]
    for store in made:
        store.mkdir(parents=True)
    try:
        bench = load_bench(path, overrides=[f"data_root={GLUE_SAMPLE}"])
    finally:
        for store in made:
            store.rmdir()
    assert bench.folder == REPO / "runs" / "bench" / path.stem
    assert len(bench.runs) >= 4 and bench.compare


def test_points_option_runs_some_points_and_leaves_the_others_for_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "tiny.yaml", TINY_RECIPE)
    write(tmp_path / "kd.yaml", TINY_RECIPE + "distill: {store: no_store_yet, tasks: [rte]}\n")
    path = bench_file(
        tmp_path,
        FAST + "seeds: [1, 2]\npoints:\n  plain: {}\n  kd: {recipe: kd.yaml}\n"
        "compare: [[kd, plain]]\n",
    )
    with pytest.raises(RecipeError, match="distill.store: .*no_store_yet does not exist"):
        load_bench(path)  # every point is checked before any run starts ...
    with pytest.raises(KdnluError, match="--points nope: no such point; the points are plain, kd"):
        load_bench(path, only=["nope"])
    bench = load_bench(path, only=["plain"])  # ... unless only some are asked for
    assert [(r.point, r.seed) for r in pending_runs(bench)] == [("plain", 1), ("plain", 2)]
    assert bench_main([str(path), "--points", "plain", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "bench grid: 2 run(s)" in out and "0 failed" in out
    (tmp_path / "no_store_yet").mkdir()  # the store is written: the whole bench goes on
    full = load_bench(path)
    assert {r["point"] for r in read_results(full.folder).values()} == {"plain"}
    assert [(r.point, r.seed) for r in pending_runs(full)] == [("kd", 1), ("kd", 2)]
    report = (full.folder / "report.md").read_text()
    assert "2 run(s) not run yet (or interrupted): run the bench again." in report


def test_report_keeps_an_error_metric_out_of_the_average(tmp_path: Path, recipe: Path) -> None:
    bench, results = fixture_bench(tmp_path, recipe)
    for record in results.values():
        if record["status"] == "ok":
            record["last"]["price"] = {"mae": 2.0 + record["seed"]}
    report = markdown_report(bench, results)
    assert "| point | seeds | rte | mrpc | price (lower is better) | average |" in report
    # the average is the same as without the error column: rte and mrpc only
    assert "| lr=0.001 | 3/3 | 62.00 ± 2.00 | 76.00 ± 1.00 | 4.00 ± 1.00 | 69.00 ± 1.32 |" in report
    rows = list(csv.DictReader(io.StringIO(results_csv(bench, results))))
    assert (rows[0]["price.mae"], rows[0]["average"]) == ("3.0000", "67.5000")
