"""A task plugin's own mistakes reach `kdnlu check` as one paragraph naming the plugin file and
line and the recipe's task key, found before any training."""

from pathlib import Path

import pytest

from conftest import write
from kdnlu.cli import main
from kdnlu.registry import METRICS, TASKS

PLUGIN = '''\
"""A small task plugin that each test breaks in one way."""

from dataclasses import dataclass
from pathlib import Path

from kdnlu.registry import TASKS
from kdnlu.task import Example, Task, parse_label

LABELS = ("no", "yes")


@dataclass(frozen=True)
class MineConfig:
    """No options."""


def read_rows(path, split, bad_rows=None):
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        columns = line.split("\\t")
        label = parse_label(columns[1], LABELS, "mine") if len(columns) > 1 else None
        rows.append(Example(str(number), columns[0], None, label))
    return rows


@TASKS.register("mine", config=MineConfig)
def mine(config, data_root=None):
    """A two-class task."""
    folder = Path(__file__).parent / "data"
    return Task(
        name="mine",
        files={split: folder / f"{split}.tsv" for split in ("train", "dev")},
        reader=read_rows,
        label_names=LABELS,
        metrics=("accuracy",),
    )
'''

RECIPE = """\
name: mistakes
imports: [mine_task.py]
encoder: {name: tiny, layers: 1, hidden_size: 32, heads: 2, intermediate_size: 64}
tasks:
  reviews: {name: mine, max_length: 32}
train: {device: cpu}
"""

# (what the plugin gets wrong, the text replaced, its replacement, a text on the line the error
# must name, and parts of the message)
MISTAKES = [
    (
        "syntax error",
        'LABELS = ("no", "yes")',
        'LABELS = ("no", "yes"',
        'LABELS = ("no", "yes"',
        ["imports[0]: importing", "failed in plugin code at", "SyntaxError"],
    ),
    (
        "exception at import",
        'LABELS = ("no", "yes")',
        'LABELS = (NO, "yes")',
        'LABELS = (NO, "yes")',
        ["imports[0]: importing", "NameError: name 'NO' is not defined. Fix the plugin"],
    ),
    (
        "config not frozen",
        "@dataclass(frozen=True)",
        "@dataclass",
        '@TASKS.register("mine"',
        ["RegistryError: task 'mine': config must be a frozen dataclass"],
    ),
    (
        "metric registered without its direction",
        "LABELS = (",
        'METRICS.register("hits")(len)\nLABELS = (',
        'METRICS.register("hits")',
        ["RegistryError: metric 'hits': register it with greater_is_better=..."],
    ),
    (
        "exception in a config check",
        '''    """No options."""''',
        '''    """One option."""

    size: int = 1

    def __post_init__(self) -> None:
        if self.sise < 1:
            raise ValueError("size")''',
        "if self.sise < 1:",
        [
            "tasks.reviews: checking the config MineConfig (",
            "AttributeError: 'MineConfig' object has no attribute 'sise'",
        ],
    ),
    (
        "typo in a Task keyword",
        'metrics=("accuracy",)',
        'metric=("accuracy",)',
        "return Task(",
        [
            "tasks.reviews: building task 'mine' (mine in ",
            "TypeError: Task.__init__() got an unexpected keyword argument 'metric' (did you "
            "mean 'metrics'?). Fix the plugin (--debug shows the traceback).",
        ],
    ),
    (
        "misspelled metric",
        'metrics=("accuracy",)',
        'metrics=("acuracy",)',
        '@TASKS.register("mine"',
        [
            "tasks.reviews: task 'mine' (",
            "names unknown metric 'acuracy'; did you mean 'accuracy'",
        ],
    ),
    (
        "metric of the wrong kind",
        'metrics=("accuracy",)',
        'metrics=("pearson",)',
        '@TASKS.register("mine"',
        ["metric 'pearson' scores score labels, but the task has class labels"],
    ),
    (
        "label string instead of class index",
        'parse_label(columns[1], LABELS, "mine")',
        "columns[1]",
        "def read_rows(",
        [
            "tasks.reviews: task 'mine': its reader (read_rows at ",
            "row 1 of ",
            "(uid '1') has the label 'yes' (str), but a classification task's labels are class "
            "indices 0..1; turn label strings into indices with kdnlu.task.parse_label",
        ],
    ),
    (
        "exception while reading",
        "label = parse_label(columns[1]",
        "label = parse_label(columns[2]",
        "label = parse_label(columns[2]",
        [
            "tasks.reviews: task 'mine': reading ",
            "train.tsv (read_rows at ",
            "IndexError: list index out of range. Fix the plugin",
        ],
    ),
]


@pytest.fixture
def plugin_folder(tmp_path: Path):
    write(tmp_path / "data" / "train.tsv", "good\tyes\nbad\tno\n")
    write(tmp_path / "data" / "dev.tsv", "fine\tyes\nawful\tno\n")
    yield tmp_path
    for name in ("mine",):
        TASKS.unregister(name)
    METRICS.unregister("hits")


def test_the_plugin_checks_when_nothing_is_wrong(
    plugin_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(plugin_folder / "mine_task.py", PLUGIN)
    assert main(["check", str(write(plugin_folder / "r.yaml", RECIPE))]) == 0
    assert "  reviews: 2 train / 2 dev rows, head classification" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("old", "new", "line_text", "parts"),
    [m[1:] for m in MISTAKES],
    ids=[m[0] for m in MISTAKES],
)
def test_a_plugin_mistake_is_one_paragraph_naming_file_line_and_task(
    plugin_folder: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    line_text: str,
    parts: list[str],
) -> None:
    assert old in PLUGIN
    code = PLUGIN.replace(old, new, 1)
    if "METRICS" in new:
        code = code.replace(
            "from kdnlu.registry import TASKS", "from kdnlu.registry import METRICS, TASKS"
        )
    plugin = write(plugin_folder / "mine_task.py", code)
    line = next(i for i, text in enumerate(code.splitlines(), 1) if line_text in text)
    recipe = write(plugin_folder / "r.yaml", RECIPE)
    assert main(["check", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {recipe}:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert f"{plugin}:{line}" in err, err
    for part in parts:
        assert part in err, err
