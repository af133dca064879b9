"""``kdnlu-mlm corpus|head|teach|distil``: the stages of vocabulary-level distillation."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from kdnlu.cli import run_guarded, setup_logging
from kdnlu.datadir import glue_dir


def _device(name: str):  # noqa: ANN202 - torch is imported late
    from kdnlu.run_control import pick_device

    return pick_device(name)


def _corpus(args: argparse.Namespace) -> int:
    setup_logging(args.quiet)
    from kdnlu.hf import load_tokenizer
    from kdnlu.mlm.corpus import Masking, mask_corpus, task_sentences

    masking = Masking(
        max_length=args.max_length,
        rate=args.rate,
        mask_share=args.mask_share,
        random_share=args.random_share,
        seed=args.seed,
    )
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
    from kdnlu.mlm.models import fit_head, load_mlm, save_mlm

    corpus = MaskedCorpus.load(args.corpus)
    mlm = load_mlm(args.checkpoint)
    if mlm.head_trained and not args.refit:
        print(f"{args.checkpoint} already has a trained MLM head; --refit fits a new one anyway")
        return 0
    mlm.model.to(_device(args.device))
    losses = fit_head(
        mlm,
        corpus,
        args.steps,
        args.batch_size,
        args.lr,
        args.seed,
        progress=not args.quiet,
        train_layers=args.train_layers,
        encoder_lr=args.encoder_lr,
        remask=not args.fixed_masks,
    )
    span = max(1, min(20, len(losses) // 5))
    first, last = float(np.mean(losses[:span])), float(np.mean(losses[-span:]))
    save_mlm(
        mlm,
        args.out,
        {
            "head": {
                "from": mlm.source,
                "steps": args.steps,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "train_layers": args.train_layers,
                "encoder_lr": args.encoder_lr,
                "remask": not args.fixed_masks,
                "loss_first": first,
                "loss_last": last,
            }
        },
    )
    print(f"{args.out}: MLM head fitted in {args.steps} steps (loss {first:.3f} -> {last:.3f})")
    return 0


def _teach(args: argparse.Namespace) -> int:
    setup_logging(args.quiet)
    from kdnlu.mlm.corpus import MaskedCorpus
    from kdnlu.mlm.models import ready_teacher
    from kdnlu.mlm.teach import fidelity_markdown, teach_mlm

    corpus = MaskedCorpus.load(args.corpus)
    teacher = ready_teacher(args.teacher)
    teacher.model.to(_device(args.device))
    report = teach_mlm(
        teacher,
        corpus,
        args.out,
        args.top_k,
        args.batch_size,
        args.dtype,
        args.shard_rows,
        progress=not args.quiet,
    )
    print(fidelity_markdown(report))
    return 0


def _distil(args: argparse.Namespace) -> int:
    setup_logging(args.quiet)
    from kdnlu.mlm.corpus import MaskedCorpus
    from kdnlu.mlm.distil import DistilOptions, distil_mlm
    from kdnlu.mlm.models import ready_teacher

    options = DistilOptions(
        layers=tuple(args.layers),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup=args.warmup,
        alpha=args.alpha,
        holdout=args.holdout,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        backend=args.kernel,
    )
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


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="kdnlu-mlm",
        description="Vocabulary-level distillation of masked language models: mask a corpus, "
        "fit a teacher's MLM head, store its top-k distributions, distil a smaller student "
        "(docs/vocab_distillation.md).",
    )
    sub = main.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--debug", action="store_true", help="show tracebacks of errors")

    p = sub.add_parser("corpus", help="mask the sentences of task training files once")
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
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--rate", type=float, default=0.15, help="share of tokens masked")
    p.add_argument("--mask-share", type=float, default=0.8)
    p.add_argument("--random-share", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    common(p)
    p.set_defaults(func=_corpus)

    p = sub.add_parser("head", help="fit an MLM output layer on a checkpoint that has none")
    p.add_argument("checkpoint", help="Hugging Face checkpoint folder, or minilm")
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True, help="new folder: the checkpoint with its head")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--train-layers",
        type=int,
        default=0,
        help="also train the encoder's top N layers (default 0: encoder frozen)",
    )
    p.add_argument("--encoder-lr", type=float, default=1e-4, help="lr of those layers")
    p.add_argument(
        "--fixed-masks",
        action="store_true",
        help="train on the corpus's own masks every pass (default: mask afresh each pass)",
    )
    p.add_argument("--refit", action="store_true", help="replace a head that is already trained")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    common(p)
    p.set_defaults(func=_head)

    p = sub.add_parser("teach", help="write the teacher's top-k stores and the fidelity report")
    p.add_argument("teacher", help="MLM checkpoint with a trained head (see head)")
    p.add_argument("--corpus", required=True)
    p.add_argument("--out", required=True, help="folder: k<K>/ stores, fidelity.json/.md")
    p.add_argument("--top-k", type=_ints, default=[1, 8, 32, 128], help="e.g. 1,8,32,128")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--shard-rows", type=int, default=65536)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    common(p)
    p.set_defaults(func=_teach)

    p = sub.add_parser("distil", help="train a smaller student against a top-k store")
    p.add_argument("teacher", help="the MLM checkpoint the student is cut from")
    p.add_argument("--corpus", required=True)
    p.add_argument("--store", required=True, help="a k<K> store folder written by teach")
    p.add_argument("--out", required=True, help="new folder: the student checkpoint")
    p.add_argument("--layers", type=_ints, default=[0, 2, 4], help="teacher layers to keep")
    p.add_argument("--steps", type=int, default=1000, help="0: cut only, a baseline")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--alpha", type=float, default=0.0, help="weight of the gold-token loss")
    p.add_argument("--holdout", type=int, default=50, help="every Nth sentence is held out")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=250,
        help="save the training state every N steps to OUT.partial.pt (0: never); the same "
        "command resumes from it",
    )
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--kernel", default="auto", choices=["auto", "triton", "apex", "torch"])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    common(p)
    p.set_defaults(func=_distil)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kdnlu-mlm``."""
    args = parser().parse_args(argv)
    return run_guarded(args.func, args)
