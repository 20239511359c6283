"""Response cache: a fully cached rerun of N generation calls vs the first (uncached) run.

The model is the tiny random-weight Qwen2 chat checkpoint (CPU), so the first run's cost is
dominated by generation and the rerun's by SQLite lookups and record decoding. The reference
(the first run) is measured in the same process, on the same conversations.

Run: PYTHONPATH=src python benchmarks/bench_cache.py [--calls 200] [--batch 8] [--tokens 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from videoespresso import load_model
from videoespresso.models import user
from videoespresso.models.cache import CachedModel, ResponseCache
from videoespresso.schema import GenerationSettings


def run(model: CachedModel, conversations: list, settings: GenerationSettings, batch: int) -> tuple[float, int]:
    start = time.perf_counter()
    cached = 0
    for i in range(0, len(conversations), batch):
        cached += sum(g.cached for g in model.generate(conversations[i : i + batch], settings))
    return time.perf_counter() - start, cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()

    backend = load_model("tiny:qwen2")
    settings = GenerationSettings(max_new_tokens=args.tokens)
    conversations = [
        [user(f"Frame {i}: a person walks to the door and opens it. What happens next? ({i})")]
        for i in range(args.calls)
    ]
    backend.generate(conversations[:2], settings)  # warm-up outside the timed runs
    with tempfile.TemporaryDirectory() as tmp:
        model = CachedModel(backend, ResponseCache(Path(tmp) / "bench.sqlite"))
        first_s, first_cached = run(model, conversations, settings, args.batch)
        second_s, second_cached = run(model, conversations, settings, args.batch)
        stats = model.cache.stats()
    assert first_cached == 0 and second_cached == args.calls, (first_cached, second_cached)
    print(f"model tiny:qwen2, {args.calls} calls in batches of {args.batch}, {args.tokens} new tokens")
    print(f"first run (all misses):   {first_s:8.3f} s  ({first_s / args.calls * 1e3:7.2f} ms/call)")
    print(f"cached rerun (all hits):  {second_s:8.3f} s  ({second_s / args.calls * 1e3:7.2f} ms/call)")
    print(f"cache file: {stats['entries']} entries, {stats['size_bytes'] / 1024:.0f} KiB")
    print(f"ratio first/rerun: {first_s / second_s:.1f}x")


if __name__ == "__main__":
    main()
