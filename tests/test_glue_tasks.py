from pathlib import Path

import pytest

from conftest import GLUE_SAMPLE, write
from kdnlu.errors import DataError
from kdnlu.registry import TASKS
from kdnlu_tasks.glue import GlueConfig


def build(name: str, root: Path = GLUE_SAMPLE):
    return TASKS.get(name).build(GlueConfig(), data_root=str(root))


@pytest.mark.parametrize("name", ["rte", "mrpc"])
def test_sample_sizes_and_labels(name: str) -> None:
    task = build(name)
    train, dev, test = task.read("train"), task.read("dev"), task.read("test")
    assert (len(train), len(dev), len(test)) == (300, 100, 100)
    assert {ex.label for ex in train} == {0, 1}
    assert all(ex.label is None for ex in test)
    assert all(ex.text_b for ex in train)


def test_rte_first_row_is_read_exactly() -> None:
    first = build("rte").read("train")[0]
    assert first.uid == "0"
    assert first.text_a.startswith("No Weapons of Mass Destruction Found in Iraq Yet.")
    assert first.text_b == "Weapons of Mass Destruction Found in Iraq."
    assert first.label == 1  # not_entailment


def test_mrpc_header_with_byte_order_mark() -> None:
    train = build("mrpc").read("train")
    assert train[0].label == 1
    assert train[0].text_b.startswith("Referring to him as only")


def test_limit_takes_first_rows() -> None:
    task = build("rte")
    assert task.read("train", limit=5) == task.read("train")[:5]


def test_wrong_column_count_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "RTE" / "train.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tentailment\n",
    )
    with pytest.raises(DataError) as err:
        build("rte", tmp_path).read("train")
    assert str(err.value) == (
        f"{path}:3: expected 4 tab-separated columns, found 3. Fix or remove this row."
    )


def test_unknown_label_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "RTE" / "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n"
    )
    with pytest.raises(DataError) as err:
        build("rte", tmp_path).read("train")
    assert str(err.value) == (
        f"{path}:2: unknown label 'maybe' for task rte; expected one of entailment, not_entailment"
    )


def test_empty_split_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n")
    with pytest.raises(DataError) as err:
        build("rte", tmp_path).read("dev")
    assert str(err.value) == f"task 'rte': {path} has no rows (dev split is empty)"


def test_missing_label_column_outside_test(tmp_path: Path) -> None:
    path = write(tmp_path / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\n0\ta\tb\n")
    with pytest.raises(DataError) as err:
        build("rte", tmp_path).read("dev")
    assert str(err.value) == f"{path}:1: column 'label' (the label) is missing from the header"
