"""The step cost of intermediate-layer distillation: hidden-state targets read from a store
([CLS] or every token) and from online teachers, against logit-only distillation.

    python benchmarks/intermediate_kd_step.py [--steps 30] [--rounds 2] [--teachers 3]
        [--encoder minilm|tiny]

Sets up, in a temporary folder, ``--teachers`` MiniLM-L6 teachers (one training step each on
RTE: their speed, not their quality, matters here), their logit store and hidden stores at
layers 2, 4 and 6, then trains a 3-layer student (MiniLM's layers 0, 2, 4) with batch 32 on the
same batches in four ways, alternated in each round:

- ``logit``: the ``distill:`` shorthand (alpha 0.5) from the logit store;
- ``+hidden store cls``: plus a ``hidden_mse`` term, layers {1: 2, 2: 4, 3: 6}, from the [CLS]
  hidden store;
- ``+hidden store all``: the same from the every-token hidden store;
- ``+hidden online cls``: logits and [CLS] states from the teachers run inside each step.

Steps are timed by a callback (evaluation and checkpoints are not counted); step i of every
variant trains the same batch, so the per-step ratios against ``logit`` are paired, and their
median is printed. The first step of each run (warm-up) is left out. RTE comes from the bundled
sample (tests/fixtures/glue) unless ``--data-root`` names a GLUE folder.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from bench_cli import script_parser

from kdnlu.callbacks import Callback
from kdnlu.recipe import load_recipe
from kdnlu.teach import TeachOptions, teach
from kdnlu.trainer import train

REPO = Path(__file__).resolve().parents[1]
LAYERS = "{1: 2, 2: 4, 3: 6}"
# teacher and student encoders: MiniLM-L6 and its layers 0, 2, 4; or tiny random BERTs of the
# same depths (a quick check that the script runs)
ENCODERS = {
    "minilm": ("{name: hf, path: minilm}", "{name: hf, path: minilm, layers: [0, 2, 4]}"),
    "tiny": (
        "{name: tiny, layers: 6, hidden_size: 32, heads: 2, intermediate_size: 64}",
        "{name: tiny, layers: 3, hidden_size: 32, heads: 2, intermediate_size: 64}",
    ),
}


class StepClock(Callback):
    def on_train_start(self, state, model) -> None:
        self.times = [time.perf_counter()]

    def on_step_end(self, state, task, loss) -> None:
        self.times.append(time.perf_counter())


def recipe_text(name: str, data_root: str, tmp: Path, encoder: str, train: str, extra: str) -> str:
    """A one-task recipe on RTE; ``extra`` goes under the task (an objective)."""
    return (
        f"name: {name}\ndata_root: {data_root}\nencoder: {encoder}\noutput_dir: {tmp}/runs\n"
        f"cache_dir: {tmp}/cache\ntasks:\n  rte:\n    eval_rows: 16\n{extra}train: {train}\n"
    )


HIDDEN_OBJECTIVE = (
    "    objective:\n"
    "      - {loss: cross_entropy, weight: 0.5}\n"
    "      - {loss: soft_cross_entropy, weight: 0.5}\n"
    f"      - {{loss: hidden_mse, weight: 1.0, layers: {LAYERS}}}\n"
)


def variants(
    data_root: str, tmp: Path, teachers: list[Path], steps: int, student: str
) -> dict[str, str]:
    """The student recipe of each variant."""
    train_cfg = (
        f"{{batch_size: 32, epochs: 100, max_steps: {steps}, device: cpu, "
        "eval_each_epoch: false, eval_every: 100000}"
    )
    online = ", ".join(str(t) for t in teachers)
    setups = {
        "logit": ("", f"{{store: {tmp}/store_cls, alpha: 0.5}}"),
        "+hidden store cls": (HIDDEN_OBJECTIVE, f"{{store: {tmp}/store_cls}}"),
        "+hidden store all": (HIDDEN_OBJECTIVE, f"{{store: {tmp}/store_all}}"),
        "+hidden online cls": (HIDDEN_OBJECTIVE, f"{{online: [{online}]}}"),
    }
    return {
        name: recipe_text("student", data_root, tmp, student, train_cfg, extra)
        + f"distill: {distill}\n"
        for name, (extra, distill) in setups.items()
    }


def build_teachers(data_root: str, tmp: Path, count: int, encoder: str) -> list[Path]:
    runs = []
    for seed in range(count):
        text = recipe_text(
            f"teacher_{seed}", data_root, tmp, encoder,
            f"{{batch_size: 32, epochs: 1, max_steps: 1, device: cpu, seed: {seed}}}", "",
        )  # fmt: skip
        path = tmp / f"teacher_{seed}.yaml"
        path.write_text(text)
        runs.append(train(load_recipe(path), progress=False).run_dir)
    for tokens in ("cls", "all"):
        options = TeachOptions(splits=("train",), hidden_layers=(2, 4, 6), hidden_tokens=tokens)
        teach(runs, tmp / f"store_{tokens}", options=options, progress=False)
    return runs


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--data-root", default=str(REPO / "tests" / "fixtures" / "glue"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--teachers", type=int, default=3)
    parser.add_argument("--encoder", default="minilm", choices=list(ENCODERS))
    args = parser.parse_args()
    teacher, student = ENCODERS[args.encoder]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        teachers = build_teachers(args.data_root, tmp, args.teachers, teacher)
        texts = variants(args.data_root, tmp, teachers, args.steps, student)
        times: dict[str, list[np.ndarray]] = {v: [] for v in texts}
        for _ in range(args.rounds):
            for variant, text in texts.items():
                path = tmp / "student.yaml"
                path.write_text(text)
                clock = StepClock()
                train(load_recipe(path), progress=False, callbacks=[clock])
                times[variant].append(np.diff(clock.times)[1:])
    base = np.concatenate(times["logit"])
    print(
        f"encoder {args.encoder}: 3-layer student, {args.teachers} 6-layer teachers, batch 32, "
        f"RTE rows, {args.steps} steps x {args.rounds} rounds"
    )
    print("| variant | median step (s) | per-step ratio to logit KD (median, quartiles) |")
    print("| --- | --- | --- |")
    for variant, runs in times.items():
        steps = np.concatenate(runs)
        q1, median, q3 = np.percentile(steps / base, [25, 50, 75])
        print(
            f"| {variant} | {np.median(steps):.3f} | {median:.3f} ({q1:.3f}-{q3:.3f}), "
            f"{100 * (median - 1):+.1f}% |"
        )


if __name__ == "__main__":
    main()
