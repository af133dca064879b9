"""One bench run in its own process: ``python -m kdnlu.bench.worker REQUEST.json``.

Trains the run the request describes and writes its result (metrics, or the error) as JSON to
the path the request names. The bench reads that file when the process ends.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from kdnlu.bench.grid import RunSpec, run_key
from kdnlu.errors import KdnluError
from kdnlu.recipe import Override, load_recipe
from kdnlu.rundir import atomic_write_text
from kdnlu.yaml_source import Location


def best_evaluation(run_dir: Path, best_step: int | None) -> dict[str, Any] | None:
    """The dev metrics of the evaluation at ``best_step`` (the one checkpoints/best holds)."""
    if best_step is None:
        return None
    found = None
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["step"] == best_step:
            found = record["dev"]
    return found


def curve(run_dir: Path) -> list[list[float]]:
    """``[step, score]`` of every evaluation of the run, for learning-curve plots."""
    points = []
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("score") is not None:
            points.append([record["step"], record["score"]])
    return points


def execute(request: dict[str, Any]) -> dict[str, Any]:
    """Train the requested run; its result record (status ok or failed)."""
    import torch

    from kdnlu.cli import setup_logging
    from kdnlu.trainer import train

    setup_logging(quiet=False)
    torch.set_num_threads(int(request["threads"]))
    run = RunSpec.from_json(request["run"])
    folder = Path(request["output_dir"]) / run.folder
    here = Location("kdnlu-bench")
    overrides = [
        *run.overrides,
        Override(("name",), folder.name, here),
        Override(("output_dir",), str(folder.parent), here),
    ]
    started = time.time()
    try:
        if run_key(run.recipe, run.overrides) != run.key:
            raise KdnluError(
                f"the recipe {run.recipe} (or a file it uses) changed since the bench was "
                "expanded; run kdnlu-bench on its bench file again"
            )
        result = train(load_recipe(run.recipe, overrides), progress=False)
    except KdnluError as exc:
        return {"status": "failed", "error": str(exc), "seconds": round(time.time() - started, 2)}
    except Exception as exc:  # a bug or a crash of this run must not stop the bench
        traceback.print_exc()
        return {
            "status": "failed",
            "error": f"{type(exc).__name__}: {exc}",
            "seconds": round(time.time() - started, 2),
        }
    return {
        "status": "ok",
        "run_dir": str(result.run_dir),
        "steps": result.steps,
        "seconds": round(result.seconds, 2),
        "last": result.metrics,
        "best": best_evaluation(result.run_dir, result.best_step) or result.metrics,
        "best_step": result.best_step,
        "curve": curve(result.run_dir),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    request = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    record = execute(request)
    atomic_write_text(Path(request["result"]), json.dumps(record) + "\n")
    if record["status"] != "ok":
        print(f"error: {record['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
