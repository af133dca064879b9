"""Data-parallel training: 2 processes under torchrun (gloo, CPU) end with the parameters of
1 process on the same global batches, see every example once per epoch between them, and
leave one run directory written by rank 0."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from safetensors.torch import load_file
from test_distill import random_store

from conftest import TINY_RECIPE, run_python, write

SCRIPT = """
import json, os, sys
from kdnlu.callbacks import Callback
from kdnlu.recipe import load_recipe
from kdnlu.trainer import train

recipe_path, out, *overrides = sys.argv[1:]


class Record(Callback):
    def __init__(self):
        self.rows = []

    def on_loss(self, state, batch, logits, loss):
        self.rows.append([state.epoch, state.step, batch.task, batch.indices.tolist()])
        return loss


record = Record()
result = train(load_recipe(recipe_path, overrides), progress=False, callbacks=[record])
rank = os.environ.get("RANK", "0")
with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
    json.dump({"rows": record.rows, "run_dir": str(result.run_dir)}, fh)
"""

# no dropout: one process and two draw no random numbers that could differ
OVERRIDES = [
    "encoder.dropout=0.0",
    "tasks.rte.head.dropout=0.0",
    "tasks.mrpc.head.dropout=0.0",
    "train.epochs=2",
    # batches of 15: RTE's 31 rows make 15 + 15 + 1, so the ranks' shares are 8 + 7 (weighted
    # 16/15 and 14/15) and 1 + 0 (rank 1 runs a stand-in row at weight 0)
    "train.batch_size=15",
    "tasks.rte.train_rows=31",
]


def test_two_gloo_ranks_match_one_process(tmp_path: Path) -> None:
    """With RTE distilled from a store, which every rank maps and reads its own rows of."""
    recipe = write(tmp_path / "tiny.yaml", TINY_RECIPE)
    random_store(tmp_path / "store", "rte")
    distill = [
        f"distill.store={tmp_path / 'store'}",
        "distill.tasks=[rte]",
        "distill.temperature=2",
    ]
    script = write(tmp_path / "record.py", SCRIPT)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    single = run_python(
        [str(script), str(recipe), str(tmp_path / "one"), *OVERRIDES, *distill, "name=one"],
        cwd=tmp_path,
    )
    assert single.returncode == 0, single.stderr
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    ddp = run_python(
        [
            *launch,
            str(script),
            str(recipe),
            str(tmp_path / "two"),
            *OVERRIDES,
            *distill,
            "name=two",
        ],
        cwd=tmp_path,
        OMP_NUM_THREADS="1",
    )
    assert ddp.returncode == 0, ddp.stderr

    one = load_file(tmp_path / "runs/one/checkpoints/last/model.safetensors")
    two = load_file(tmp_path / "runs/two/checkpoints/last/model.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5, msg=name)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["one", "two"]
    assert len((tmp_path / "runs/two/metrics.jsonl").read_text().splitlines()) == 2

    ranks = [json.loads((tmp_path / "two" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["run_dir"] == ranks[1]["run_dir"]
    steps = [[(epoch, step, task) for epoch, step, task, _ in r["rows"]] for r in ranks]
    assert steps[0] == steps[1]  # the same task at the same step on both ranks
    for epoch in (1, 2):
        for task, n in (("rte", 31), ("mrpc", 32)):
            seen = Counter(
                i
                for r in ranks
                for e, _, t, rows in r["rows"]
                if (e, t) == (epoch, task)
                for i in rows
            )
            assert sorted(seen) == list(range(n))  # every row, by one rank or the other
            twice = [i for i, count in seen.items() if count > 1]
            assert len(twice) == (1 if task == "rte" else 0)  # the weight-0 stand-in row
