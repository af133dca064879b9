"""``kdnlu-mlm corpus|head|teach|distil``: the stages of vocabulary-level distillation."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from kdnlu.cli import run_guarded, setup_logging
from kdnlu.datadir import glue_dir
from kdnlu.options import add_options, build_options


def _device(name: str):  # noqa: ANN202 - torch is imported late
    from kdnlu.run_control import pick_device

    return pick_device(name)


def _corpus(args: argparse.Namespace) -> int:
    setup_logging(args.quiet)
    from kdnlu.hf import load_tokenizer
    from kdnlu.mlm.corpus import Masking, mask_corpus, task_sentences

    masking = build_options(Masking, args)
    data_root = args.data_root or glue_dir().path
    sentences, sources = task_sentences(args.tasks, data_root, args.split, args.limit)
    tokenizer = load_tokenizer(args.tokenizer)
    corpus = mask_corpus(sentences, tokenizer, masking, args.tokenizer, sources)
    corpus.save(args.out)
    print(
        f"{args.out}: {corpus.sentences:,} sentences, {corpus.rows:,} masked positions "
        f"({', '.join(f'{k} {v:,}' for k, v in sources.items())})"
    )
    return 0


def _head(args: argparse.Namespace) -> int:
    setup_logging(args.quiet)
    import numpy as np

    from kdnlu.mlm.corpus import MaskedCorpus
    from kdnlu.mlm.models import HeadOptions, fit_head, load_mlm, save_mlm

    options = build_options(HeadOptions, args)
    corpus = MaskedCorpus.load(args.corpus)
    mlm = load_mlm(args.checkpoint)
    if mlm.head_trained and not args.refit:
        print(f"{args.checkpoint} already has a trained MLM head; --refit fits a new one anyway")
        return 0
    mlm.model.to(_device(args.device))
    fit = {k: v for k, v in asdict(options).items() if k != "fixed_masks"}
    remask = not options.fixed_masks
    losses = fit_head(mlm, corpus, **fit, progress=not args.quiet, remask=remask)
    span = max(1, min(20, len(losses) // 5))
    first, last = float(np.mean(losses[:span])), float(np.mean(losses[-span:]))
    fit.pop("seed")
    about = {"from": mlm.source, **fit, "remask": remask, "loss_first": first, "loss_last": last}
    save_mlm(mlm, args.out, {"head": about})
    print(f"{args.out}: MLM head fitted in {options.steps} steps (loss {first:.3f} -> {last:.3f})")
    return 0


def _teach(args: argparse.Namespace) -> int:
    setup_logging(args.quiet)
    from kdnlu.mlm.corpus import MaskedCorpus
    from kdnlu.mlm.models import ready_teacher
    from kdnlu.mlm.teach import TeachMlmOptions, fidelity_markdown, teach_mlm

    options = build_options(TeachMlmOptions, args)
    corpus = MaskedCorpus.load(args.corpus)
    teacher = ready_teacher(args.teacher)
    teacher.model.to(_device(args.device))
    report = teach_mlm(
        teacher,
        corpus,
        args.out,
        options.top_k,
        options.batch_size,
        options.dtype,
        options.shard_rows,
        progress=not args.quiet,
    )
    print(fidelity_markdown(report))
    return 0


def _distil(args: argparse.Namespace) -> int:
    setup_logging(args.quiet)
    from kdnlu.mlm.corpus import MaskedCorpus
    from kdnlu.mlm.distil import DistilOptions, distil_mlm
    from kdnlu.mlm.models import ready_teacher

    options = build_options(DistilOptions, args)
    corpus = MaskedCorpus.load(args.corpus)
    teacher = ready_teacher(args.teacher)
    teacher.model.to(_device(args.device))
    result = distil_mlm(teacher, corpus, args.store, args.out, options, progress=not args.quiet)
    first, last = result["evaluations"][0], result["evaluations"][-1]
    print(json.dumps({"before": first, "after": last}, indent=2))
    print(
        f"{args.out}: {len(options.layers)}-layer student; fine-tune it with "
        f"--set encoder.path={args.out}"
    )
    return 0


def _command(
    sub: Any, name: str, help: str, func: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """A subcommand with ``--quiet`` and ``--debug``, running ``func``."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    p.set_defaults(func=func)
    return p


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def parser() -> argparse.ArgumentParser:
    from kdnlu.mlm.corpus import Masking
    from kdnlu.mlm.distil import DistilOptions
    from kdnlu.mlm.models import HeadOptions
    from kdnlu.mlm.teach import TeachMlmOptions

    main = argparse.ArgumentParser(
        prog="kdnlu-mlm",
        description="Vocabulary-level distillation of masked language models: mask a corpus, "
        "fit a teacher's MLM head, store its top-k distributions, distil a smaller student "
        "(docs/vocab_distillation.md).",
    )
    sub = main.add_subparsers(dest="command", required=True)

    p = _command(sub, "corpus", "mask the sentences of task training files once", _corpus)
    p.add_argument("--tasks", nargs="+", required=True, help="task names (e.g. rte mrpc cola)")
    p.add_argument(
        "--data-root",
        help="folder of the task data in the GLUE layout (default: the data-location rule, "
        "$KDNLU_DATA/glue else ~/.cache/kdnlu/data/glue)",
    )
    p.add_argument("--out", required=True, help="new corpus folder")
    p.add_argument("--split", default="train")
    p.add_argument("--limit", type=int, help="read at most this many rows per task")
    p.add_argument("--tokenizer", default="minilm", help="checkpoint folder, or minilm")
    add_options(p, Masking)

    p = _command(sub, "head", "fit an MLM output layer on a checkpoint that has none", _head)
    p.add_argument("checkpoint", help="Hugging Face checkpoint folder, or minilm")
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True, help="new folder: the checkpoint with its head")
    add_options(p, HeadOptions)
    p.add_argument("--refit", action="store_true", help="replace a head that is already trained")
    _add_device(p)

    p = _command(sub, "teach", "write the teacher's top-k stores and the fidelity report", _teach)
    p.add_argument("teacher", help="MLM checkpoint with a trained head (see head)")
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True, help="folder: k<K>/ stores, fidelity.json/.md")
    add_options(p, TeachMlmOptions)
    _add_device(p)

    p = _command(sub, "distil", "train a smaller student against a top-k store", _distil)
    p.add_argument("teacher", help="the MLM checkpoint the student is cut from")
    p.add_argument("--corpus", required=True)
    p.add_argument("--store", required=True, help="a k<K> store folder written by teach")
    p.add_argument("--out", required=True, help="new folder: the student checkpoint")
    add_options(p, DistilOptions)
    _add_device(p)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kdnlu-mlm``."""
    args = parser().parse_args(argv)
    return run_guarded(args.func, args)
