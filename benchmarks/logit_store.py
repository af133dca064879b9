"""Teacher soft targets: our memory-mapped logit store vs JSON lines (one object per example
with a list of floats, read into memory at start, as the MT-DNN code base keeps them).

    python benchmarks/logit_store.py [--rows 2000000] [--classes 3] [--batches 20000]

Each format is measured in its own child process (so peak RSS is its own): time to open or
load, time per random batch of 32 rows, and the child's peak RSS. The store is the real format
(3 teachers' fp16 logits); the JSON file holds the already averaged probabilities, the JSON
side's best case. Two store fetches are timed: the stored rows alone ([32, 3, classes] float32,
what the student moves to the device), and the ensemble probabilities computed from them in
numpy ([32, classes]); the JSON fetch gives [32, classes] float32 either way.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_cli import script_parser

TEACHERS = 3


def make_data(folder: Path, rows: int, classes: int) -> None:
    from kdnlu.store import StoreSpec, StoreWriter

    rng = np.random.default_rng(0)
    spec = StoreSpec(
        task="bench",
        split="train",
        rows=rows,
        classes=classes,
        teachers=tuple(f"teacher-{i}" for i in range(TEACHERS)),
        fingerprint="0" * 64,
        shard_rows=65536,
    )
    writer = StoreWriter(folder / "store", spec)
    with open(folder / "soft.jsonl", "w") as fh:
        for shard in writer.pending:
            r = spec.shard_range(shard)
            logits = rng.normal(size=(len(r), TEACHERS, classes)).astype(np.float32)
            labels = rng.integers(0, classes, len(r)).astype(np.float32)
            writer.write_shard(shard, {"logits": logits, "labels": labels})
            z = np.exp(logits - logits.max(-1, keepdims=True))
            probs = (z / z.sum(-1, keepdims=True)).mean(1)
            for i, p in zip(r, probs, strict=True):
                fh.write(json.dumps({"uid": i, "label": [round(float(x), 6) for x in p]}) + "\n")
    writer.finish()


def measure(kind: str, folder: Path, rows: int, batches: int) -> dict[str, float]:
    """Runs in the child: open/load, then fetch random batches of 32 (``store-rows``: the
    stored teacher rows only, without computing the ensemble's probabilities)."""
    rows_only = kind == "store-rows"
    from kdnlu.store import LogitStore  # both sides import the same modules first

    rng = np.random.default_rng(1)
    batches_idx = rng.integers(0, rows, size=(batches, 32))
    before_mb = current_rss_mb()  # after the imports: what the soft targets add comes on top
    before_anon_mb = rss_part_mb("RssAnon")
    start = time.perf_counter()
    if kind.startswith("store"):
        store = LogitStore.open(folder / "store", verify=False)

        def fetch(idx: np.ndarray) -> np.ndarray:
            return store.logits(idx) if rows_only else store.ensemble_probs(idx)
    else:
        with open(folder / "soft.jsonl") as fh:
            soft = [json.loads(line)["label"] for line in fh]

        def fetch(idx: np.ndarray) -> np.ndarray:
            return np.asarray([soft[i] for i in idx], dtype=np.float32)

    opened = time.perf_counter() - start
    fetch(batches_idx[0])
    start = time.perf_counter()
    for idx in batches_idx:
        fetch(idx)
    per_batch = (time.perf_counter() - start) / batches
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "open_s": opened,
        "batch_us": per_batch * 1e6,
        "peak_rss_mb": rss_mb,
        "added_rss_mb": rss_mb - before_mb,
        "added_anon_mb": rss_part_mb("RssAnon") - before_anon_mb,
        "file_mb": rss_part_mb("RssFile"),
    }


def rss_part_mb(field: str) -> float:
    """A part of the resident set now (Linux): RssAnon (private memory) or RssFile (file pages
    mapped in, such as a memmap's, which the kernel can drop and read again)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def current_rss_mb() -> float:
    """Resident set size now (Linux), in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, folder = args.child
        print(json.dumps(measure(kind, Path(folder), args.rows, args.batches)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        make_data(folder, args.rows, args.classes)
        made = time.perf_counter() - start
        sizes = {
            "store": sum(p.stat().st_size for p in (folder / "store").iterdir()),
            "json": (folder / "soft.jsonl").stat().st_size,
        }
        results = {}
        for kind in ("json", "store", "store-rows"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--rows",
                    str(args.rows),
                    "--batches",
                    str(args.batches),
                    "--child",
                    kind,
                    str(folder),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results[kind] = json.loads(out.stdout)
    j, s = results["json"], results["store"]
    print(
        f"{args.rows} rows x {args.classes} classes ({TEACHERS} teachers in the store); "
        f"data written in {made:.1f}s"
    )
    print("| | JSON lines (in RAM) | logit store (memmap) | JSON / store |")
    print("| --- | --- | --- | --- |")
    print(
        f"| file size | {sizes['json'] / 1e6:.1f} MB | {sizes['store'] / 1e6:.1f} MB | "
        f"{sizes['json'] / sizes['store']:.1f}x |"
    )
    print(
        f"| open / load | {j['open_s']:.2f} s | {s['open_s'] * 1e3:.2f} ms | "
        f"{j['open_s'] / s['open_s']:.0f}x |"
    )
    r = results["store-rows"]
    print(
        f"| random batch of 32: the stored rows | {j['batch_us']:.1f} us | "
        f"{r['batch_us']:.1f} us | {j['batch_us'] / r['batch_us']:.2f}x |"
    )
    print(
        f"| random batch of 32: ensemble probabilities | {j['batch_us']:.1f} us | "
        f"{s['batch_us']:.1f} us | {j['batch_us'] / s['batch_us']:.2f}x |"
    )
    first = {k: v["open_s"] + v["batch_us"] * 1e-6 for k, v in results.items()}
    print(
        f"| open + first batch | {first['json']:.2f} s | {first['store'] * 1e3:.2f} ms | "
        f"{first['json'] / first['store']:.0f}x |"
    )
    print(
        f"| peak RSS of the process | {j['peak_rss_mb']:.0f} MB | {s['peak_rss_mb']:.0f} MB | "
        f"{j['peak_rss_mb'] / s['peak_rss_mb']:.1f}x |"
    )
    print(
        f"| peak RSS added by the soft targets (after imports) | {j['added_rss_mb']:.0f} MB | "
        f"{s['added_rss_mb']:.1f} MB | {j['added_rss_mb'] / max(s['added_rss_mb'], 0.1):.0f}x |"
    )
    print(
        f"| of which private memory (RssAnon), after the batches | {j['added_anon_mb']:.0f} MB | "
        f"{s['added_anon_mb']:.1f} MB | {j['added_anon_mb'] / max(s['added_anon_mb'], 0.1):.0f}x |"
    )
    print(
        f"| mapped file pages (RssFile), after the batches | {j['file_mb']:.0f} MB | "
        f"{s['file_mb']:.0f} MB | |"
    )


if __name__ == "__main__":
    main()
