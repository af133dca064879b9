"""Command-line options made from dataclasses (kdnlu.options): one flag per field with the
field's default, type, choices and help; ``--set key=value``; values typed as recipe values
are, and bad ones reported where they were given."""

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest

from kdnlu.cli import main_parser, teach_main, teach_parser
from kdnlu.errors import KdnluError, RecipeError
from kdnlu.mlm.cli import main as mlm_main
from kdnlu.mlm.cli import parser as mlm_parser
from kdnlu.mlm.corpus import Masking
from kdnlu.mlm.distil import DistilOptions
from kdnlu.mlm.models import HeadOptions
from kdnlu.mlm.teach import TeachMlmOptions
from kdnlu.options import OptionError, add_options, build_options, flag_of, option
from kdnlu.run_options import ExportOptions, PredictOptions
from kdnlu.teach import TeachOptions


@dataclass(frozen=True)
class Demo:
    """Every kind of field a flag is made for."""

    size: int = option(3, "how many")
    kind: Literal["a", "b"] = option("a", "which kind")
    names: tuple[str, ...] = option(("x", "y"), "some names")
    layers: tuple[int, ...] = option((0, 2), "some layers", sep=",")
    limit: int | None = option(None, "at most this many")
    fast: bool = option(False, "go fast")
    backend: str = option("auto", "the kernel", flag="--kernel")

    def __post_init__(self) -> None:
        if self.size < 1:
            raise OptionError("size", f"must be at least 1, got {self.size}")


def demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="demo")
    add_options(parser, Demo)
    return parser


def test_flags_come_from_the_fields() -> None:
    parser = demo_parser()
    actions = {a.dest: a for a in parser._actions}
    assert actions["size"].option_strings == ["--size"]
    assert actions["size"].help == "how many (default: 3)"
    assert actions["kind"].choices == ["a", "b"]
    assert actions["names"].nargs == "+" and actions["layers"].nargs is None
    assert actions["layers"].help == "some layers (default: 0,2)"
    assert actions["limit"].help == "at most this many"
    assert isinstance(actions["fast"], argparse._StoreTrueAction)
    assert actions["backend"].option_strings == ["--kernel"]
    assert build_options(Demo, parser.parse_args([])) == Demo()
    given = parser.parse_args(
        ["--size", "5", "--kind", "b", "--names", "p", "q", "--layers", "1,3", "--limit", "7"]
    )
    assert build_options(Demo, parser.parse_args(["--fast", "--kernel", "torch"])) == Demo(
        fast=True, backend="torch"
    )
    assert build_options(Demo, given) == Demo(
        size=5, kind="b", names=("p", "q"), layers=(1, 3), limit=7
    )


def test_set_sets_any_field_and_wins_over_its_flag() -> None:
    args = demo_parser().parse_args(
        ["--size", "5", "--set", "size=6", "--set", "layers=[4, 5]", "--set", "limit=null"]
    )
    assert build_options(Demo, args) == Demo(size=6, layers=(4, 5), limit=None)
    args = demo_parser().parse_args(["--set", "names=[a]", "--set", "fast=true"])
    assert build_options(Demo, args) == Demo(names=("a",), fast=True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "many"], "--size many: size: expected an integer, got 'many' (a string)"),
        (["--size", "0"], "--size 0: size: must be at least 1, got 0"),
        (["--layers", "1,x"], "--layers 1,x: layers[1]: expected an integer, got 'x' (a string)"),
        (["--set", "size=1.5"], "--set size=1.5: size: expected an integer, got 1.5 (a number)"),
        (
            ["--set", "sise=2"],
            "--set sise=2: unknown key 'sise' at sise; did you mean 'size'? Valid keys here: "
            "size, kind, names, layers, limit, fast, backend.",
        ),
        (["--set", "size"], "--set size: expected KEY=VALUE, e.g. --set batch_size=32"),
    ],
)
def test_a_bad_value_is_reported_where_it_was_given(argv: list[str], message: str) -> None:
    with pytest.raises(RecipeError) as err:
        build_options(Demo, demo_parser().parse_args(argv))
    assert str(err.value) == message


def test_an_option_error_built_in_code_is_an_error_for_people() -> None:
    with pytest.raises(KdnluError, match="must be at least 1, got 0"):
        Demo(size=0)


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


COMMANDS = [
    (TeachOptions, lambda: teach_parser(), ["t1", "--out", "o"]),
    (PredictOptions, lambda: subparser(main_parser(), "predict"), ["run"]),
    (ExportOptions, lambda: subparser(main_parser(), "export"), ["run", "out"]),
    (Masking, lambda: subparser(mlm_parser(), "corpus"), ["--tasks", "rte", "--out", "c"]),
    (HeadOptions, lambda: subparser(mlm_parser(), "head"), ["m", "--corpus", "c", "--out", "o"]),
    (
        TeachMlmOptions,
        lambda: subparser(mlm_parser(), "teach"),
        ["m", "--corpus", "c", "--out", "o"],
    ),
    (
        DistilOptions,
        lambda: subparser(mlm_parser(), "distil"),
        ["m", "--corpus", "c", "--store", "s", "--out", "o"],
    ),
]


@pytest.mark.parametrize(("cls", "make", "argv"), COMMANDS, ids=[c[0].__name__ for c in COMMANDS])
def test_every_command_has_a_flag_per_option_with_its_default(cls, make, argv) -> None:
    parser = make()
    text = parser.format_help()
    for f in dataclasses.fields(cls):
        assert flag_of(f) in text
        assert f.metadata.get("help"), f"{cls.__name__}.{f.name} needs help"
    assert "--set KEY=VALUE" in text
    assert build_options(cls, parser.parse_args(argv)) == cls()


def test_old_flags_keep_their_names() -> None:
    args = teach_parser().parse_args(
        ["t", "--out", "o", "--splits", "train", "--top-k", "4", "--keep-best", "2"]
    )
    assert build_options(TeachOptions, args) == TeachOptions(
        splits=("train",), top_k=4, keep_best=2
    )
    distil = subparser(mlm_parser(), "distil")
    args = distil.parse_args(
        ["m", "--corpus", "c", "--store", "s", "--out", "o", "--kernel", "torch", "--layers", "0,1"]
    )
    assert build_options(DistilOptions, args) == DistilOptions(backend="torch", layers=(0, 1))
    predict = subparser(main_parser(), "predict")
    args = predict.parse_args(["run", "--tasks", "rte, mrpc", "--split", "dev"])
    assert build_options(PredictOptions, args) == PredictOptions(split="dev", tasks=("rte", "mrpc"))


def test_set_on_kdnlu_teach(capsys: pytest.CaptureFixture[str]) -> None:
    args = teach_parser().parse_args(
        ["t", "--out", "o", "--set", "top_k=8", "--set", "dtype=float32"]
    )
    assert build_options(TeachOptions, args) == TeachOptions(top_k=8, dtype="float32")
    assert teach_main(["t", "--out", "o", "--set", "batch_size=big"]) == 2
    assert capsys.readouterr().err == (
        "error: --set batch_size=big: batch_size: expected an integer, got 'big' (a string)\n"
    )
    assert teach_main(["t", "--out", "o", "--batch-size", "abc"]) == 2
    assert capsys.readouterr().err == (
        "error: --batch-size abc: batch_size: expected an integer, got 'abc' (a string)\n"
    )


def test_set_on_kdnlu_mlm(capsys: pytest.CaptureFixture[str]) -> None:
    corpus = subparser(mlm_parser(), "corpus")
    args = corpus.parse_args(["--tasks", "rte", "--out", "c", "--rate", "0.2", "--set", "seed=4"])
    assert build_options(Masking, args) == Masking(rate=0.2, seed=4)
    distil = ["distil", "m", "--corpus", "c", "--store", "s", "--out", "o"]
    assert mlm_main([*distil, "--set", "alpha=2"]) == 2
    assert capsys.readouterr().err == (
        "error: --set alpha=2: alpha: alpha must be in [0, 1], got 2.0\n"
    )
    assert mlm_main(["corpus", "--tasks", "rte", "--out", "c", "--set", "rate=0"]) == 2
    assert capsys.readouterr().err == (
        "error: --set rate=0: rate: the masking rate must be in (0, 1], got 0.0\n"
    )
