"""Every GLUE task on its fixture files: layouts, labels, metrics, submission names, errors."""

from pathlib import Path

import pytest

from conftest import GLUE_SAMPLE, write
from kdnlu.errors import DataError
from kdnlu.registry import TASKS
from kdnlu.task import Example
from kdnlu_tasks.glue import AX_HAS_NO_TRAIN, FORMATS, GlueConfig


def build(name: str, root: Path = GLUE_SAMPLE):
    return TASKS.get(name).build(GlueConfig(), data_root=str(root))


MRPC_TRAIN = (
    'Amrozi accused his brother , whom he called " the witness " , of deliberately distorting '
    "his evidence .",
    'Referring to him as only " the witness " , Amrozi accused his brother of deliberately '
    "distorting his evidence .",
)
MRPC_DEV = (
    "He said the foodservice pie business doesn 't fit the company 's long-term growth strategy .",
    '" The foodservice pie business does not fit our long-term growth strategy .',
)
MRPC_TEST = (
    "PCCW 's chief operating officer , Mike Butcher , and Alex Arena , the chief financial "
    "officer , will report directly to Mr So .",
    "Current Chief Operating Officer Mike Butcher and Group Chief Financial Officer Alex Arena "
    "will report to So .",
)
QNLI_DEV = (
    "What came into force after the new constitution was herald?",
    "As of that day, the new constitution heralding the Second Republic came into force.",
)
QNLI_TEST = (
    "What organization is devoted to Jihad against Israel?",
    "For some decades prior to the First Palestine Intifada in 1987, the Muslim Brotherhood in "
    'Palestine took a "quiescent" stance towards Israel, focusing on preaching, education and '
    'social services, and benefiting from Israel\'s "indulgence" to build up a network of '
    "mosques and charitable organizations.",
)
RTE_DEV = (
    "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, "
    "according to the Christopher Reeve Foundation.",
    "Christopher Reeve had an accident.",
)
RTE_TEST = (
    "Mangla was summoned after Madhumita's sister Nidhi Shukla, who was the first witness in the "
    "case.",
    "Shukla is related to Mangla.",
)
WNLI_TEST = (
    "Maude and Dora had seen the trains rushing across the prairie, with long, rolling puffs of "
    "black smoke streaming back from the engine. Their roars and their wild, clear whistles "
    "could be heard from far away. Horses ran away when they came in sight.",
    "Horses ran away when Maude and Dora came in sight.",
)
COLA_TRAIN = "Our friends won't buy this analysis, let alone the next one we propose."
MNLI_TRAIN = ("The cat slept all afternoon on the warm porch.", "An animal was resting.")
MNLI_DEV_M = ("Our train left the station ten minutes late.", "The train left early.")
MNLI_DEV_MM = ("She painted the fence a bright shade of green.", "She enjoys painting at weekends.")
MNLI_TEST_M = ("The bakery sells fresh bread every morning.", "Bread is sold at the bakery.")
MNLI_TEST_MM = ("He forgot his umbrella and got soaked in the rain.", "He stayed dry.")
QQP_TRAIN = ("How do I learn to cook rice?", "What is the best way to cook rice?")
QQP_DEV = ("How can I sleep better at night?", "What helps you fall asleep faster?")
QQP_TEST = ("How do I train for a marathon?", "What is a good marathon training plan?")
STSB_DEV = ("A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.")
WNLI_TRAIN = (
    "I stuck a pin through a carrot. When I pulled the pin out, it had a hole.",
    "The carrot had a hole.",
)
WNLI_DEV = ("The drain is clogged with hair. It has to be cleaned.", "The hair has to be cleaned.")
# (task, split): (rows, first example) for every fixture file
FIXTURES = {
    ("cola", "train"): (40, Example("1", COLA_TRAIN, None, 1)),
    ("cola", "dev"): (40, Example("1", "The sailors rode the breeze clear of the rocks.", None, 1)),
    ("cola", "test"): (40, Example("0", "Bill whistled past the house.", None, None)),
    ("sst2", "train"): (40, Example("2", "hide new secretions from the parental units ", None, 0)),
    ("sst2", "dev"): (40, Example("2", "it 's a charming and often affecting journey . ", None, 1)),
    ("sst2", "test"): (40, Example("0", "uneasy mishmash of styles and genres .", None, None)),
    ("mrpc", "train"): (300, Example("2", *MRPC_TRAIN, 1)),
    ("mrpc", "dev"): (100, Example("2", *MRPC_DEV, 1)),
    ("mrpc", "test"): (100, Example("0", *MRPC_TEST, None)),
    ("stsb", "train"): (
        40,
        Example("0", "A plane is taking off.", "An air plane is taking off.", 5.0),
    ),
    ("stsb", "dev"): (40, Example("0", *STSB_DEV, 5.0)),
    ("stsb", "test"): (
        40,
        Example("0", "A girl is styling her hair.", "A girl is brushing her hair.", None),
    ),
    ("qqp", "train"): (6, Example("101", *QQP_TRAIN, 1)),
    ("qqp", "dev"): (4, Example("201", *QQP_DEV, 1)),
    ("qqp", "test"): (3, Example("0", *QQP_TEST, None)),
    ("mnli", "train"): (6, Example("0", *MNLI_TRAIN, 1)),  # entailment
    ("mnli", "dev_matched"): (3, Example("0", *MNLI_DEV_M, 0)),  # contradiction
    ("mnli", "dev_mismatched"): (3, Example("0", *MNLI_DEV_MM, 2)),  # neutral
    ("mnli", "test_matched"): (3, Example("0", *MNLI_TEST_M, None)),
    ("mnli", "test_mismatched"): (3, Example("0", *MNLI_TEST_MM, None)),
    ("qnli", "dev"): (40, Example("0", *QNLI_DEV, 0)),  # entailment
    ("qnli", "test"): (40, Example("0", *QNLI_TEST, None)),
    ("rte", "train"): (
        300,
        Example(
            "0",
            "No Weapons of Mass Destruction Found in Iraq Yet.",
            "Weapons of Mass Destruction Found in Iraq.",
            1,  # not_entailment
        ),
    ),
    ("rte", "dev"): (100, Example("0", *RTE_DEV, 1)),
    ("rte", "test"): (100, Example("0", *RTE_TEST, None)),
    ("wnli", "train"): (40, Example("0", *WNLI_TRAIN, 1)),
    ("wnli", "dev"): (40, Example("0", *WNLI_DEV, 0)),
    ("wnli", "test"): (40, Example("0", *WNLI_TEST, None)),
    ("ax", "test"): (
        4,
        Example("0", "The dog chased the ball.", "The ball was chased by the dog.", None),
    ),
}


@pytest.mark.parametrize(("name", "split"), list(FIXTURES), ids=lambda v: str(v))
def test_fixture_split_rows_and_first_example(name: str, split: str) -> None:
    rows, first = FIXTURES[(name, split)]
    task = build(name)
    examples = task.read(split)
    assert len(examples) == rows
    assert examples[0] == first
    if split in task.test_splits:
        assert all(ex.label is None for ex in examples)
    elif task.label_names is None:
        assert all(0.0 <= ex.label <= 5.0 for ex in examples)
    else:
        assert {ex.label for ex in examples} <= set(range(task.num_outputs))


def test_every_task_and_split_has_a_fixture() -> None:
    splits = {(name, split) for name in FORMATS for split in build(name).files}
    assert splits - set(FIXTURES) == {("qnli", "train")}  # no QNLI train file in our copy
    assert set(FORMATS) == {
        "cola",
        "sst2",
        "mrpc",
        "stsb",
        "qqp",
        "mnli",
        "qnli",
        "rte",
        "wnli",
        "ax",
    }


def test_training_splits_hold_both_classes() -> None:
    for name, split in [("cola", "train"), ("sst2", "train"), ("wnli", "train"), ("qqp", "dev")]:
        assert {ex.label for ex in build(name).read(split)} == {0, 1}, name
    assert {ex.label for ex in build("mnli").read("train")} == {0, 1, 2}


SPEC = {  # metrics, label names, submission files
    "cola": (("mcc",), ("0", "1"), {"test": "CoLA.tsv"}),
    "sst2": (("accuracy",), ("0", "1"), {"test": "SST-2.tsv"}),
    "mrpc": (("f1", "accuracy"), ("0", "1"), {"test": "MRPC.tsv"}),
    "stsb": (("pearson", "spearman"), None, {"test": "STS-B.tsv"}),
    "qqp": (("f1", "accuracy"), ("0", "1"), {"test": "QQP.tsv"}),
    "mnli": (
        ("accuracy",),
        ("contradiction", "entailment", "neutral"),
        {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"},
    ),
    "qnli": (("accuracy",), ("entailment", "not_entailment"), {"test": "QNLI.tsv"}),
    "rte": (("accuracy",), ("entailment", "not_entailment"), {"test": "RTE.tsv"}),
    "wnli": (("accuracy",), ("0", "1"), {"test": "WNLI.tsv"}),
    "ax": (("mcc",), ("contradiction", "entailment", "neutral"), {"test": "AX.tsv"}),
}


@pytest.mark.parametrize("name", list(SPEC))
def test_metrics_labels_and_submission_names(name: str) -> None:
    task = build(name)
    metrics, labels, submission = SPEC[name]
    assert (task.metrics, task.label_names, dict(task.submission)) == (metrics, labels, submission)
    assert task.test_splits == tuple(submission)
    regression = name == "stsb"
    assert (task.default_head, task.default_loss) == (
        ("regression", "mse") if regression else ("classification", "cross_entropy")
    )
    assert task.output_range == ((0.0, 5.0) if regression else None)
    assert task.num_outputs == (1 if regression else len(labels))


def test_mnli_splits_and_ax_predicted_with_its_head() -> None:
    task = build("mnli")
    assert task.eval_splits == ("dev_matched", "dev_mismatched")
    assert list(task.files) == [
        "train",
        "dev_matched",
        "dev_mismatched",
        "test_matched",
        "test_mismatched",
    ]
    assert task.files["dev_mismatched"] == GLUE_SAMPLE / "MNLI" / "dev_mismatched.tsv"
    assert dict(task.extra_predictions) == {"AX.tsv": GLUE_SAMPLE / "AX" / "test.tsv"}
    ax = task.reader(task.extra_predictions["AX.tsv"], "test")
    assert ax == build("ax").read("test")


def test_ax_is_not_trainable() -> None:
    task = build("ax")
    assert (dict(task.files), task.eval_splits) == ({"test": GLUE_SAMPLE / "AX" / "test.tsv"}, ())
    with pytest.raises(DataError) as err:
        task.read("train")
    assert str(err.value) == f"task 'ax' has no train split: {AX_HAS_NO_TRAIN}"
    assert AX_HAS_NO_TRAIN == (
        "AX is GLUE's diagnostic test set, with no training or dev data. Train the mnli task "
        "instead: `kdnlu predict` writes AX.tsv with the MNLI head (from <data_root>/AX/test.tsv)"
    )


def test_missing_file_is_a_clear_error() -> None:
    with pytest.raises(DataError) as err:
        build("qnli").read("train")
    path = GLUE_SAMPLE / "QNLI" / "train.tsv"
    assert str(err.value) == f"task 'qnli': data file {path} does not exist"


def test_data_option_overrides_the_folder(tmp_path: Path) -> None:
    task = TASKS.get("wnli").build(GlueConfig(data=str(GLUE_SAMPLE / "WNLI")), data_root=None)
    assert task.files["dev"] == GLUE_SAMPLE / "WNLI" / "dev.tsv"
    with pytest.raises(DataError) as err:
        TASKS.get("mnli").build(GlueConfig(), data_root=None)
    assert str(err.value) == (
        "task 'mnli' needs data_root (a folder holding MNLI/train.tsv) or its own 'data' folder"
    )


def test_cola_dev_without_final_newline(tmp_path: Path) -> None:
    text = (GLUE_SAMPLE / "CoLA" / "dev.tsv").read_text(encoding="utf-8")
    write(tmp_path / "CoLA" / "dev.tsv", text.rstrip("\n"))
    examples = build("cola", tmp_path).read("dev")
    assert len(examples) == 40
    assert examples[-1] == build("cola").read("dev")[-1]


def test_limit_takes_first_rows() -> None:
    task = build("rte")
    assert task.read("train", limit=5) == task.read("train")[:5]


def test_byte_order_mark_on_any_file(tmp_path: Path) -> None:
    text = (GLUE_SAMPLE / "RTE" / "dev.tsv").read_text(encoding="utf-8")
    write(tmp_path / "RTE" / "dev.tsv", "\ufeff" + text)
    assert build("rte", tmp_path).read("dev") == build("rte").read("dev")
    assert (GLUE_SAMPLE / "MRPC" / "train.tsv").read_bytes().startswith(b"\xef\xbb\xbf")


RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"
FIX = "Fix or remove this row (or set on_bad_row: skip for the task to skip such rows)."


def test_wrong_column_count_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "RTE" / "train.tsv", RTE_HEADER + "0\ta\tb\tentailment\n1\ta\tentailment\n"
    )
    with pytest.raises(DataError) as err:
        build("rte", tmp_path).read("train")
    assert str(err.value) == f"{path}:3: expected 4 tab-separated columns, found 3. {FIX}"


def test_unknown_label_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "RTE" / "train.tsv", RTE_HEADER + "0\ta\tb\tmaybe\n")
    with pytest.raises(DataError) as err:
        build("rte", tmp_path).read("train")
    assert str(err.value) == (
        f"{path}:2: unknown label 'maybe' for task rte; expected one of entailment, "
        f"not_entailment. {FIX}"
    )


def test_regression_label_must_be_a_number(tmp_path: Path) -> None:
    header = (GLUE_SAMPLE / "STS-B" / "dev.tsv").read_text(encoding="utf-8").split("\n")[0]
    path = write(tmp_path / "STS-B" / "dev.tsv", header + "\n0\tg\tf\ty\t1\ts\ts\ta\tb\thigh\n")
    with pytest.raises(DataError) as err:
        build("stsb", tmp_path).read("dev")
    assert str(err.value) == (
        f"{path}:2: label 'high' is not a number (task stsb is a regression task). {FIX}"
    )


def test_bad_rows_are_skipped_counted_and_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [
        "0\ta\tb\tentailment",
        "1\ta\tentailment",  # line 3: three columns
        "2\ta\tb\tmaybe",  # line 4: unknown label
        "3\ta\tb\tnot_entailment",
        "4\ta\tb\tc\td",  # line 6: five columns
    ]
    path = write(tmp_path / "RTE" / "train.tsv", RTE_HEADER + "\n".join(rows) + "\n")
    with caplog.at_level("WARNING", logger="kdnlu.data"):
        examples = build("rte", tmp_path).read("train", on_bad_row="skip")
    assert examples == [Example("0", "a", "b", 0), Example("3", "a", "b", 1)]
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "kdnlu.data",
            "WARNING",
            f"skipped 3 bad rows in {path} (first at line 3: expected 4 tab-separated columns, "
            "found 3)",
        )
    ]


def test_skip_limit_and_no_warning_for_clean_files(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="kdnlu.data"):
        assert build("rte").read("dev", 3, "skip") == build("rte").read("dev")[:3]
    assert caplog.records == []


def test_split_of_only_bad_rows_is_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "RTE" / "dev.tsv", RTE_HEADER + "0\ta\tb\tmaybe\n")
    with pytest.raises(DataError) as err:
        build("rte", tmp_path).read("dev", on_bad_row="skip")
    assert str(err.value) == (
        f"task 'rte': {path} has no rows (dev split is empty, after skipping 1 bad row)"
    )


def test_empty_split_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "RTE" / "dev.tsv", RTE_HEADER)
    with pytest.raises(DataError) as err:
        build("rte", tmp_path).read("dev")
    assert str(err.value) == f"task 'rte': {path} has no rows (dev split is empty)"
    write(path, "")
    with pytest.raises(DataError) as err:
        build("rte", tmp_path).read("dev")
    assert str(err.value) == f"task 'rte': {path} has no rows (dev split is empty)"


def test_missing_label_column_outside_test(tmp_path: Path) -> None:
    path = write(tmp_path / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\n0\ta\tb\n")
    with pytest.raises(DataError) as err:
        build("rte", tmp_path).read("dev")
    assert str(err.value) == (
        f"{path}:1: column 'label' (the label) not found in the header (index, sentence1, "
        "sentence2)"
    )


def test_missing_text_column(tmp_path: Path) -> None:
    path = write(tmp_path / "MNLI" / "test_matched.tsv", "index\tsentence1\n0\ta\n")
    with pytest.raises(DataError) as err:
        build("mnli", tmp_path).read("test_matched")
    assert str(err.value) == (
        f"{path}:1: column 'sentence2' not found in the header (index, sentence1)"
    )


def test_whitespace_rows_are_not_dropped_silently(tmp_path: Path) -> None:
    path = write(tmp_path / "RTE" / "dev.tsv", RTE_HEADER + "0\ta\tb\tentailment\n\n   \n")
    with pytest.raises(DataError) as err:
        build("rte", tmp_path).read("dev")
    assert str(err.value) == f"{path}:4: expected 4 tab-separated columns, found 1. {FIX}"


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "RTE" / "dev.tsv"
    path.parent.mkdir()
    path.write_bytes(RTE_HEADER.encode() + b"0\ta\xff\tb\tentailment\n")
    with pytest.raises(DataError) as err:
        build("rte", tmp_path).read("dev")
    assert str(err.value) == (
        f"{path}:2: not valid UTF-8 (invalid start byte at byte 35); save the file as UTF-8"
    )


def test_a_reader_without_bad_rows_cannot_skip() -> None:
    from dataclasses import replace

    task = build("rte")
    plain = replace(task, reader=lambda path, split: task.reader(path, split))
    assert plain.read("dev") == task.read("dev")
    with pytest.raises(DataError) as err:
        plain.read("dev", on_bad_row="skip")
    assert str(err.value) == (
        "task 'rte': its reader cannot skip bad rows (it takes no bad_rows argument); use "
        "on_bad_row: error, or update the task plugin"
    )
