"""Dynamic padding with length bucketing vs padding every row to 128, on real GLUE rows.

    python benchmarks/bucketing.py [--encoder minilm|tiny] [--batches 12]

Trains the same model on the same rows both ways (forward, backward, AdamW step), alternating
the two in one run, and prints examples per second and the ratio.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch
from bench_cli import add_glue_root, script_parser

from kdnlu.data import EncodedSplit, batch_indices, collate, encode_examples
from kdnlu.model import MultiTaskModel
from kdnlu.registry import ENCODERS, HEADS
from kdnlu_plugins.encoders import TinyConfig

REPO = Path(__file__).resolve().parents[1]


def pad_to(split: EncodedSplit, indices: list[int], width: int):
    batch = collate(split, indices, torch.long)
    extra = width - batch.input_ids.shape[1]
    pad = torch.nn.functional.pad
    return type(batch)(
        batch.task,
        batch.indices,
        pad(batch.input_ids, (0, extra)),
        pad(batch.attention_mask, (0, extra)),
        pad(batch.token_type_ids, (0, extra)),
        batch.labels,
    )


def main() -> None:
    parser = script_parser(__doc__)
    add_glue_root(parser)
    parser.add_argument("--task", default="mrpc")
    parser.add_argument("--encoder", default="minilm", choices=["minilm", "tiny"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=12)
    args = parser.parse_args()
    torch.manual_seed(0)

    from kdnlu.registry import TASKS

    encoder = (
        ENCODERS.get("hf").build()
        if args.encoder == "minilm"
        else ENCODERS.get("tiny").build(TinyConfig(layers=2, hidden_size=64))
    )
    task = TASKS.get(args.task).build(data_root=args.data_root)
    split = encode_examples(args.task, encoder.tokenizer, task.read("train"), 128)
    head = HEADS.get("classification").build(hidden_size=encoder.hidden_size, num_outputs=2)
    model = MultiTaskModel(encoder, {args.task: head}).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    bucketed = batch_indices(split.lengths, args.batch_size, True, random.Random(0), bucket=True)
    plain = batch_indices(split.lengths, args.batch_size, True, random.Random(0), bucket=False)

    def step(batch) -> None:
        loss = torch.nn.functional.cross_entropy(model(batch), batch.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    timings = {"bucketed, dynamic padding": [], "padded to 128": []}
    tokens = {name: 0 for name in timings}
    step(collate(split, plain[0], torch.long))  # warm-up
    for i in range(args.batches):
        for name in timings:
            if name == "padded to 128":
                batch = pad_to(split, plain[i], 128)
            else:
                batch = collate(split, bucketed[i], torch.long)
            start = time.perf_counter()
            step(batch)
            timings[name].append(time.perf_counter() - start)
            tokens[name] += batch.input_ids.numel()
    rates = {}
    for name, seconds in timings.items():
        rates[name] = args.batches * args.batch_size / sum(seconds)
        print(
            f"{name:>26}: {rates[name]:7.1f} examples/s  ({tokens[name]} token slots, "
            f"{np.mean(seconds):.3f} s/step)"
        )
    ratio = rates["bucketed, dynamic padding"] / rates["padded to 128"]
    print(
        f"ratio {ratio:.2f}x on {args.batches} batches of {args.batch_size} real {args.task} "
        f"training rows, encoder {args.encoder}"
    )


if __name__ == "__main__":
    main()
