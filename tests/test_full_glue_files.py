"""The GLUE reader on the complete distributed files (found via data_root), row for row."""

import json

import pytest

from conftest import SHARED_GLUE
from kdnlu.registry import TASKS

pytestmark = pytest.mark.skipif(
    not (SHARED_GLUE / "CHECK.json").is_file(), reason="full GLUE copy not beside the repository"
)


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("cola", "CoLA"),
        ("sst2", "SST-2"),
        ("mrpc", "MRPC"),
        ("stsb", "STS-B"),
        ("qnli", "QNLI"),
        ("rte", "RTE"),
        ("wnli", "WNLI"),
    ],
)
def test_every_row_of_every_split_is_read(name: str, folder: str) -> None:
    expected = json.loads((SHARED_GLUE / "CHECK.json").read_text())[folder]
    task = TASKS.get(name).build(data_root=str(SHARED_GLUE))
    for split in expected:
        examples = task.read(split)
        assert len(examples) == expected[split]["rows"], split
        labelled = [ex.label is not None for ex in examples]
        assert all(labelled) if split != "test" else not any(labelled)
