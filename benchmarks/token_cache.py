"""Start-up with the token cache vs tokenising again, on real GLUE training files.

    python benchmarks/token_cache.py [--data-root PATH/TO/glue] [--tasks sst2 cola]

Prints the seconds to get every split ready both ways, side by side in one run, and the ratio.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench_cli import add_glue_root, script_parser

from kdnlu.data import encode_examples
from kdnlu.registry import ENCODERS, TASKS
from kdnlu.token_cache import TokenCache

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = script_parser(__doc__)
    add_glue_root(parser)
    parser.add_argument("--tasks", nargs="+", default=["sst2", "cola", "mrpc", "rte"])
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    tokenizer = ENCODERS.get("hf").build().tokenizer
    tasks = {name: TASKS.get(name).build(data_root=args.data_root) for name in args.tasks}
    rows = 0

    def tokenize_all() -> None:
        nonlocal rows
        rows = 0
        for name, task in tasks.items():
            rows += len(encode_examples(name, tokenizer, task.read("train"), args.max_length))

    def from_cache(cache: TokenCache) -> None:
        for name, task in tasks.items():
            path = task.path("train")
            cache.get_or_build(
                name,
                tokenizer,
                path,
                args.max_length,
                {},
                lambda t=task, n=name: encode_examples(
                    n, tokenizer, t.read("train"), args.max_length
                ),
            )

    with tempfile.TemporaryDirectory() as tmp:
        from_cache(TokenCache(Path(tmp)))  # fill the cache once
        tokenize_s, cached_s = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            tokenize_all()
            tokenize_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            from_cache(TokenCache(Path(tmp)))  # a new process would build a new TokenCache
            cached_s.append(time.perf_counter() - start)
    best_tok, best_cache = min(tokenize_s), min(cached_s)
    print(f"tasks {', '.join(args.tasks)}: {rows} training rows, max_length {args.max_length}")
    print(
        f"read + tokenise: {best_tok:.3f} s   token cache (hash files + memmap): "
        f"{best_cache:.3f} s   ratio {best_tok / best_cache:.1f}x (best of {args.repeats})"
    )


if __name__ == "__main__":
    main()
