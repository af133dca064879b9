"""The GLUE benchmark's tasks, read from its official layout ``<data_root>/<TASK>/<split>.tsv``.

Column names, label strings and submission file names are those of the files distributed by
GLUE (gluebenchmark.com) and of its evaluation server. MNLI has two dev and two test files
(matched and mismatched genres); the AX diagnostic set has only a test file, predicted with the
MNLI head as ``AX.tsv``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from kdnlu.config import path_field
from kdnlu.errors import DataError
from kdnlu.metrics import task_average
from kdnlu.registry import TASKS
from kdnlu.task import BadRows, Example, Task
from kdnlu.tsv import TsvLayout, read_tsv_examples

BINARY = ("0", "1")
ENTAILMENT = ("entailment", "not_entailment")
NLI = ("contradiction", "entailment", "neutral")
COLA_COLUMNS = ("source", "label", "mark", "sentence")
STSB_SCORES = (0.0, 5.0)  # the one regression task's similarity scale


@dataclass(frozen=True)
class GlueFormat:
    """One GLUE task: its folder, which header columns hold texts and label, its label space
    (None for regression), metrics (main one first) and test split -> submission file name.

    ``headerless_columns`` names the columns of the train and dev files when they have no header
    line (CoLA); test files always have one.
    """

    folder: str
    text_a: str
    text_b: str | None
    label: str
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    description: str
    submission: dict[str, str]
    eval_splits: tuple[str, ...] = ("dev",)
    has_train: bool = True
    uid: str = "index"
    headerless_columns: tuple[str, ...] | None = None
    extra_predictions: dict[str, str] = field(default_factory=dict)

    @property
    def test_splits(self) -> tuple[str, ...]:
        """The splits predicted for submission, in the order of ``submission``."""
        return tuple(self.submission)

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split the task has a file for: train (unless test-only), eval, test."""
        train = ("train",) if self.has_train else ()
        return (*train, *self.eval_splits, *self.test_splits)


FORMATS: dict[str, GlueFormat] = {
    "cola": GlueFormat(
        "CoLA",
        "sentence",
        None,
        "label",
        BINARY,
        ("mcc",),
        "Corpus of Linguistic Acceptability: is the sentence grammatical (1) or not (0)",
        {"test": "CoLA.tsv"},
        headerless_columns=COLA_COLUMNS,
    ),
    "sst2": GlueFormat(
        "SST-2",
        "sentence",
        None,
        "label",
        BINARY,
        ("accuracy",),
        "Stanford Sentiment Treebank: is the movie-review sentence positive (1) or negative (0)",
        {"test": "SST-2.tsv"},
    ),
    "mrpc": GlueFormat(
        "MRPC",
        "#1 String",
        "#2 String",
        "Quality",
        BINARY,
        ("f1", "accuracy"),
        "Microsoft Research Paraphrase Corpus: are the two sentences paraphrases",
        {"test": "MRPC.tsv"},
    ),
    "stsb": GlueFormat(
        "STS-B",
        "sentence1",
        "sentence2",
        "score",
        None,
        ("pearson", "spearman"),
        "Semantic Textual Similarity Benchmark: similarity of two sentences from 0 to 5",
        {"test": "STS-B.tsv"},
    ),
    "qqp": GlueFormat(
        "QQP",
        "question1",
        "question2",
        "is_duplicate",
        BINARY,
        ("f1", "accuracy"),
        "Quora Question Pairs: do the two questions ask the same thing",
        {"test": "QQP.tsv"},
        uid="id",
    ),
    "mnli": GlueFormat(
        "MNLI",
        "sentence1",
        "sentence2",
        "gold_label",
        NLI,
        ("accuracy",),
        "Multi-Genre NLI: does the premise entail, contradict or say nothing of the hypothesis",
        {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"},
        eval_splits=("dev_matched", "dev_mismatched"),
        extra_predictions={"AX.tsv": "AX/test.tsv"},
    ),
    "qnli": GlueFormat(
        "QNLI",
        "question",
        "sentence",
        "label",
        ENTAILMENT,
        ("accuracy",),
        "Question NLI (from SQuAD): does the sentence answer the question",
        {"test": "QNLI.tsv"},
    ),
    "rte": GlueFormat(
        "RTE",
        "sentence1",
        "sentence2",
        "label",
        ENTAILMENT,
        ("accuracy",),
        "Recognizing Textual Entailment: does sentence1 entail sentence2",
        {"test": "RTE.tsv"},
    ),
    "wnli": GlueFormat(
        "WNLI",
        "sentence1",
        "sentence2",
        "label",
        BINARY,
        ("accuracy",),
        "Winograd NLI: does the sentence with the pronoun replaced follow (1) or not (0)",
        {"test": "WNLI.tsv"},
    ),
    "ax": GlueFormat(
        "AX",
        "sentence1",
        "sentence2",
        "label",
        NLI,
        ("mcc",),
        "GLUE diagnostic set (test only, not trainable): predicted by the mnli task as AX.tsv",
        {"test": "AX.tsv"},
        eval_splits=(),
        has_train=False,
    ),
}

AX_HAS_NO_TRAIN = (
    "AX is GLUE's diagnostic test set, with no training or dev data. Train the mnli task "
    "instead: `kdnlu predict` writes AX.tsv with the MNLI head (from <data_root>/AX/test.tsv)"
)


@dataclass(frozen=True)
class GlueConfig:
    """The task's folder."""

    data: str | None = path_field(
        None,
        help="the task's folder, overriding `<data_root>/<GLUE name>` (e.g. `<data_root>/RTE`)",
    )


def read_glue_file(
    fmt: GlueFormat, task: str, path: Path, split: str, bad_rows: BadRows | None = None
) -> list[Example]:
    """Read one GLUE TSV. Train and dev files must have the label column; other files (the
    test files) have none, so their labels are None.
    """
    labelled = split == "train" or split in fmt.eval_splits
    headerless = labelled and fmt.headerless_columns is not None
    layout = TsvLayout(
        text_a=fmt.text_a,
        text_b=fmt.text_b,
        label=fmt.label,
        uid=fmt.uid,
        header=not headerless,
        columns=fmt.headerless_columns if headerless else None,
        uid_optional=True,
    )
    scores = STSB_SCORES if fmt.label_names is None else None
    return read_tsv_examples(path, layout, fmt.label_names, task, labelled, bad_rows, scores)


GLUE_SCORE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")


def glue_score(results: Mapping[str, Mapping[str, float]]) -> float:
    """The GLUE benchmark score of ``{task: {metric: value}}``: the unweighted mean of task scores.

    This follows the official leaderboard's "Score" column (gluebenchmark.com): each of the
    nine tasks CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE and WNLI counts once; a task with
    two metrics (MRPC and QQP: F1 and accuracy; STS-B: Pearson and Spearman) counts as their
    mean; MNLI counts once, as the mean of its matched and mismatched accuracies; the AX
    diagnostic set has its own column and is not part of the score. Sources: Wang et al., "GLUE:
    A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding" (ICLR 2019,
    arXiv:1804.07461), which defines the benchmark score as the unweighted average over tasks
    with a multi-metric task's metrics averaged first; and the leaderboard rows (BERT-Large's
    row reproduces its Score of 80.5 only this way, not with MNLI-m and MNLI-mm counted as two
    tasks or with AX included).

    Keys are the registered task names (``cola``, ``sst2``, ...). A task scored on several
    splits may appear once per split as ``task/split`` (as evaluation names do, e.g.
    ``mnli/dev_matched`` and ``mnli/dev_mismatched``); its score is the mean over those splits.
    Tasks not present in ``results`` are skipped: the score is the mean over the GLUE tasks
    that are there, so it equals the leaderboard's only when all nine are. Other keys (``ax``,
    tasks outside GLUE) are ignored. Raises ``ValueError`` when no GLUE task is present.
    """
    glue = {k: v for k, v in results.items() if k.split("/", 1)[0] in GLUE_SCORE_TASKS}
    if not glue:
        raise ValueError(
            f"glue_score: none of the GLUE tasks ({', '.join(GLUE_SCORE_TASKS)}) is in the "
            f"results (got {', '.join(results) or 'nothing'})"
        )
    return task_average(glue)


def build_glue_task(name: str, config: GlueConfig, data_root: str | None) -> Task:
    """The ``Task`` of GLUE task ``name`` (a key of ``FORMATS``)."""
    fmt = FORMATS[name]
    if config.data is not None:
        folder = Path(config.data)
    elif data_root is not None:
        folder = Path(data_root) / fmt.folder
    else:
        first = fmt.splits[0]
        raise DataError(
            f"task '{name}' needs data_root (a folder holding {fmt.folder}/{first}.tsv) or its "
            "own 'data' folder"
        )
    root = Path(data_root) if data_root is not None else folder.parent
    regression = fmt.label_names is None
    return Task(
        name=name,
        files={split: folder / f"{split}.tsv" for split in fmt.splits},
        reader=partial(read_glue_file, fmt, name),
        label_names=fmt.label_names,
        metrics=fmt.metrics,
        default_head="regression" if regression else "classification",
        default_loss="mse" if regression else "cross_entropy",
        eval_splits=fmt.eval_splits,
        test_splits=fmt.test_splits,
        submission=dict(fmt.submission),
        extra_predictions={file: root / rel for file, rel in fmt.extra_predictions.items()},
        output_range=STSB_SCORES if regression else None,
        absent_splits={} if fmt.has_train else dict.fromkeys(("train", "dev"), AX_HAS_NO_TRAIN),
        description=fmt.description,
    )


def _register(name: str) -> None:
    def builder(config: GlueConfig, data_root: str | None = None) -> Task:
        return build_glue_task(name, config, data_root)

    builder.__qualname__ = f"glue_{name}"
    TASKS.register(name, config=GlueConfig, description=FORMATS[name].description)(builder)


for _name in FORMATS:
    _register(_name)
