"""The GLUE reader on the complete distributed files (found by the data-location rule), row for
row, against the row counts kdnlu data glue verifies."""

import pytest

from conftest import FULL_GLUE
from kdnlu.glue_data.manifest import GLUE
from kdnlu.registry import TASKS

pytestmark = pytest.mark.full_data


@pytest.mark.parametrize("folder", ["CoLA", "SST-2", "MRPC", "STS-B", "RTE", "WNLI"])
def test_every_row_of_every_split_is_read(folder: str) -> None:
    expected = GLUE[folder]
    task = TASKS.get(expected.key).build(data_root=str(FULL_GLUE.path))
    for file, check in expected.files.items():
        split = file.removesuffix(".tsv")
        examples = task.read(split)
        assert len(examples) == check.rows, split
        labelled = [ex.label is not None for ex in examples]
        assert all(labelled) if split != "test" else not any(labelled)


def test_qnli_dev_and_test_are_read_row_for_row() -> None:
    qnli = GLUE["QNLI"]
    if not (FULL_GLUE.path / "QNLI" / "dev.tsv").is_file():
        pytest.skip(f"no QNLI folder in {FULL_GLUE.path}")
    task = TASKS.get("qnli").build(data_root=str(FULL_GLUE.path))
    assert len(task.read("dev")) == qnli.files["dev.tsv"].rows
    assert len(task.read("test")) == qnli.files["test.tsv"].rows
