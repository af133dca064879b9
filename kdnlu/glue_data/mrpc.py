"""MRPC's GLUE folder made from the SentEval copy of the corpus, as GLUE's own download does:
the training pairs listed in GLUE's ``mrpc_dev_ids.tsv`` become ``dev.tsv``, the others
``train.tsv`` (both keep the source's header line), and the test pairs get an index column."""

from __future__ import annotations

from pathlib import Path

from kdnlu.errors import DataError

TEST_HEADER = "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n"


def _rows(path: Path) -> tuple[str, list[list[str]]]:
    """The header line and the tab-separated rows (5 fields each) of a SentEval MRPC file."""
    with open(path, encoding="utf-8", newline="") as fh:
        lines = fh.read().split("\n")
    header, rows = lines[0].rstrip("\r"), []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.strip().split("\t")
        if len(fields) != 5:
            raise DataError(
                f"{path.name}:{number}: expected 5 tab-separated fields (label, two ids, two "
                f"sentences), got {len(fields)}"
            )
        rows.append(fields)
    return header, rows


def build_mrpc(train_txt: Path, test_txt: Path, dev_ids: Path, out: Path) -> None:
    """Write ``out/{train,dev,test}.tsv`` from the SentEval files and the dev pair ids."""
    dev_pairs = set()
    for line in dev_ids.read_text(encoding="utf-8").splitlines():
        if line.strip():
            dev_pairs.add(tuple(line.strip().split("\t")))
    header, rows = _rows(train_txt)
    with (
        open(out / "train.tsv", "w", encoding="utf-8", newline="\n") as train,
        open(out / "dev.tsv", "w", encoding="utf-8", newline="\n") as dev,
    ):
        train.write(header + "\n")
        dev.write(header + "\n")
        for fields in rows:
            (dev if (fields[1], fields[2]) in dev_pairs else train).write("\t".join(fields) + "\n")
    _, test_rows = _rows(test_txt)
    with open(out / "test.tsv", "w", encoding="utf-8", newline="\n") as test:
        test.write(TEST_HEADER)
        for index, fields in enumerate(test_rows):
            test.write("\t".join([str(index), *fields[1:]]) + "\n")
