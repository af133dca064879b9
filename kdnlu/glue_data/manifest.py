"""What a complete GLUE copy holds: each task's files with row counts and SHA-256 digests, and
where the official files are published.

Row counts exclude the header line (CoLA's train and dev files have none). Digests are those
of the files as distributed; where no digest is recorded (MNLI, QQP, QNLI's training file, AX),
the row count alone is checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdnlu.errors import DataError

GLUE_URL = "https://dl.fbaipublicfiles.com/glue/data/"
SENTEVAL_URL = "https://dl.fbaipublicfiles.com/senteval/senteval_data/"


@dataclass(frozen=True)
class FileCheck:
    """One file of a task folder: rows (without the header), digest and size where known."""

    rows: int
    sha256: str | None = None
    size: int | None = None
    header: bool = True


@dataclass(frozen=True)
class Source:
    """One way to obtain a task's files: the names to fetch and how to turn them into the
    task folder (``zip``: an archive holding the folder; ``tsv``: the one file itself;
    ``mrpc``: the SentEval paraphrase files plus GLUE's list of dev pairs)."""

    names: tuple[str, ...]
    kind: str


@dataclass(frozen=True)
class TaskFiles:
    """A GLUE task folder: its name in the layout, kdnlu's task key and its files."""

    folder: str
    key: str
    files: dict[str, FileCheck]
    sources: tuple[Source, ...]

    def __post_init__(self) -> None:
        for source in self.sources:
            if source.kind not in ("zip", "tsv", "mrpc"):
                raise ValueError(f"unknown source kind {source.kind!r}")


def zipped(name: str) -> tuple[Source, ...]:
    return (Source((name,), "zip"),)


# where each published name is found when no --from is given
OFFICIAL_URLS = {
    "CoLA.zip": GLUE_URL + "CoLA.zip",
    "SST-2.zip": GLUE_URL + "SST-2.zip",
    "STS-B.zip": GLUE_URL + "STS-B.zip",
    "QQP-clean.zip": GLUE_URL + "QQP-clean.zip",
    "MNLI.zip": GLUE_URL + "MNLI.zip",
    "QNLIv2.zip": GLUE_URL + "QNLIv2.zip",
    "RTE.zip": GLUE_URL + "RTE.zip",
    "WNLI.zip": GLUE_URL + "WNLI.zip",
    "AX.tsv": GLUE_URL + "AX.tsv",
    "mrpc_dev_ids.tsv": GLUE_URL + "mrpc_dev_ids.tsv",
    "msr_paraphrase_train.txt": SENTEVAL_URL + "msr_paraphrase_train.txt",
    "msr_paraphrase_test.txt": SENTEVAL_URL + "msr_paraphrase_test.txt",
}

MRPC_SOURCES = (
    Source(("MRPC.zip",), "zip"),  # a mirror's or a colleague's archive of the folder
    Source(("msr_paraphrase_train.txt", "msr_paraphrase_test.txt", "mrpc_dev_ids.tsv"), "mrpc"),
)

GLUE: dict[str, TaskFiles] = {
    task.folder: task
    for task in (
        TaskFiles(
            "CoLA",
            "cola",
            {
                "train.tsv": FileCheck(
                    8551,
                    "cb368ebeb9f27d7ad03720d27ddc95687a311bdb100781a2fe59a5f5b1bc0624",
                    428590,
                    header=False,
                ),
                "dev.tsv": FileCheck(
                    1043,
                    "8c013e21dc39957cac37378d87bebe225b694a0d5fe13eded66c2856628833fd",
                    53717,
                    header=False,
                ),
                "test.tsv": FileCheck(
                    1063, "3b4df85f7a9a0633574b38d181e18090ac961a24b18fb6bcd74999ddea8ad0b8", 48788
                ),
            },
            zipped("CoLA.zip"),
        ),
        TaskFiles(
            "SST-2",
            "sst2",
            {
                "train.tsv": FileCheck(
                    67349,
                    "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
                    3806081,
                ),
                "dev.tsv": FileCheck(
                    872, "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0", 94931
                ),
                "test.tsv": FileCheck(
                    1821, "69a938605609b3e6663b4487918fe1565eb293734e6e520d0366d1d412fd2a13", 197335
                ),
            },
            zipped("SST-2.zip"),
        ),
        TaskFiles(
            "MRPC",
            "mrpc",
            {
                "train.tsv": FileCheck(
                    3668, "69abcedee3cf738c6ce58d772e43e1b7cdf5b4edee4aceda459c0d9f4e5599f3", 941471
                ),
                "dev.tsv": FileCheck(
                    408, "9e8f284788040f7c9ecde2e1b3c07237c756f926bd9ef8548ef5d34b56f69f17", 105616
                ),
                "test.tsv": FileCheck(
                    1725, "aee460ceda833926b8ab2ad952d399f5cf8bc9335cff19afcac03dc449558622", 445335
                ),
            },
            MRPC_SOURCES,
        ),
        TaskFiles(
            "STS-B",
            "stsb",
            {
                "train.tsv": FileCheck(
                    5749, "41c4d978b6162abdcada7e49a982211954cca5459c228db478af333124b257a2", 984099
                ),
                "dev.tsv": FileCheck(
                    1500, "fe7dc0632a5033562f3cadff991f6e8d9b9b6311861660e78c3c82eb7db67f59", 276928
                ),
                "test.tsv": FileCheck(
                    1379, "16b4223d7d44a644fbc10f1b449472cfe81e1715fb07cf44023b0aa88ce856eb", 292587
                ),
            },
            zipped("STS-B.zip"),
        ),
        TaskFiles(
            "QQP",
            "qqp",
            {
                "train.tsv": FileCheck(363846),
                "dev.tsv": FileCheck(40430),
                "test.tsv": FileCheck(390965),
            },
            zipped("QQP-clean.zip"),
        ),
        TaskFiles(
            "MNLI",
            "mnli",
            {
                "train.tsv": FileCheck(392702),
                "dev_matched.tsv": FileCheck(9815),
                "dev_mismatched.tsv": FileCheck(9832),
                "test_matched.tsv": FileCheck(9796),
                "test_mismatched.tsv": FileCheck(9847),
            },
            zipped("MNLI.zip"),
        ),
        TaskFiles(
            "QNLI",
            "qnli",
            {
                "train.tsv": FileCheck(104743),
                "dev.tsv": FileCheck(
                    5463,
                    "ac19409dcb04631eaaa094bdebdcf621086bc352503dfb6a1a648b614986f4fd",
                    1367342,
                ),
                "test.tsv": FileCheck(
                    5463,
                    "6d856264e292fa7a7bc7b8e182efa1454ffd9532733c12ad813017dd5b377a5a",
                    1300988,
                ),
            },
            zipped("QNLIv2.zip"),
        ),
        TaskFiles(
            "RTE",
            "rte",
            {
                "train.tsv": FileCheck(
                    2490, "41e3a9b063433392343fad9e962cf2f58b681c78d8f71592f4186f0837246c5c", 846226
                ),
                "dev.tsv": FileCheck(
                    277, "80230dfa1347282e7b532b06a1004a76a710087541189bf874223ddf0e3819fb", 90343
                ),
                "test.tsv": FileCheck(
                    3000, "6e33f09b5c2bfd5fd5fde217070f3dd49e484e33b9752b5864cf36fc421a213f", 933969
                ),
            },
            zipped("RTE.zip"),
        ),
        TaskFiles(
            "WNLI",
            "wnli",
            {
                "train.tsv": FileCheck(
                    635, "9a88e9d54b6861cc796a088e9acf4f5f65064a9ef65ae6fa7a688b28391e5c9a", 99411
                ),
                "dev.tsv": FileCheck(
                    71, "cba00490596dd14be8cf53b4f53bb744abe3a7b89f81ab210528d80225338ed5", 11261
                ),
                "test.tsv": FileCheck(
                    146, "ff0296817e235bf6f7a230c5f6781bd6ee228a45445f6510831fdef6f2a04766", 35761
                ),
            },
            zipped("WNLI.zip"),
        ),
        TaskFiles("AX", "ax", {"test.tsv": FileCheck(1104)}, (Source(("AX.tsv",), "tsv"),)),
    )
}


def select_tasks(names: list[str] | None, manifest: dict[str, TaskFiles]) -> list[TaskFiles]:
    """Tasks by kdnlu key (``sst2``) or folder name (``SST-2``), any case; all when ``None``."""
    if not names:
        return list(manifest.values())
    lookup = {}
    for task in manifest.values():
        lookup[task.key.lower()] = task
        lookup[task.folder.lower()] = task
    chosen: list[TaskFiles] = []
    for name in names:
        task = lookup.get(name.lower())
        if task is None:
            known = ", ".join(t.key for t in manifest.values())
            raise DataError(f"unknown GLUE task '{name}'; the tasks are: {known}")
        if task not in chosen:
            chosen.append(task)
    return chosen
