"""SmolLM2 tokens/s with torch's intra-op threads at N vs 1, optionally beside busy processes.

Question: should torch's thread count follow the cores that are actually free? When other
processes hold the cores, N threads may contend (each waits for the slowest) and lose to 1.
The reference (1 thread) is measured in the same run, interleaved, on the same model and prompts.

    PYTHONPATH=src python benchmarks/bench_torch_threads.py                 # idle: threads 2 vs 1
    PYTHONPATH=src python benchmarks/bench_torch_threads.py --busy 1        # one CPU-bound process beside it
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time


def _spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="smollm2")
    parser.add_argument("--threads", type=int, default=2, help="compared against 1 thread")
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound processes running beside the model")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per setting (best kept)")
    args = parser.parse_args()

    import torch

    from videoespresso import load_model
    from videoespresso.models.protocols import user
    from videoespresso.schema import GenerationSettings

    model = load_model(args.spec, kind="chat")
    conv = [user("Describe a red ball rolling across a table, in two sentences.")]
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    model.generate([conv], settings)  # warm-up
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    best = {1: float("inf"), args.threads: float("inf")}
    replies: dict[int, str] = {}
    tokens = 0
    try:
        for _ in range(args.repeats):
            for n in best:
                torch.set_num_threads(n)
                start = time.perf_counter()
                out = model.generate([conv], settings)
                best[n] = min(best[n], time.perf_counter() - start)
                tokens = out[0].completion_tokens or 0
                replies[n] = out[0].text
    finally:
        for p in spinners:
            p.terminate()
    load = os.getloadavg()[0]
    print(f"model {args.spec}; {tokens} tokens a reply; {args.busy} busy process(es) beside it; "
          f"{len(os.sched_getaffinity(0))} cores; load average {load:.1f}; best of {args.repeats}")
    for n, wall in best.items():
        print(f"torch threads {n}: {tokens / wall:6.1f} tok/s ({wall:.2f} s)")
    print(f"ratio {args.threads} threads / 1 thread: {best[1] / best[args.threads]:.2f}x; "
          f"identical greedy replies: {replies[1] == replies[args.threads]}")


if __name__ == "__main__":
    main()
