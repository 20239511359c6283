"""Batched vs one-by-one generation throughput of an hf vision-language backend.

Claim: running conversations through ``generate`` in left-padded batches is faster than one
conversation at a time, with identical greedy replies. The reference (one-by-one, batch_size=1)
is measured in the same run on the same model and inputs.

    PYTHONPATH=src python benchmarks/bench_batched_generation.py            # tiny:qwen2-vl on CPU
    PYTHONPATH=src python benchmarks/bench_batched_generation.py --spec hf:Qwen/Qwen2-VL-2B-Instruct --n 32
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from videoespresso import load_model
from videoespresso.models.protocols import user
from videoespresso.schema import GenerationSettings


def _conversations(n: int, images_per_prompt: int, side: int) -> list:
    rng = np.random.default_rng(0)
    convs = []
    for i in range(n):
        imgs = [Image.fromarray(rng.integers(0, 255, (side, side + 16 * k, 3), dtype=np.uint8))
                for k in range(images_per_prompt)]
        convs.append([user(f"Question {i}: what changes between these frames?", imgs)])
    return convs


def _timed(model, convs, settings, batch_size: int, repeats: int) -> tuple[float, list]:
    model.batch_size = batch_size
    best, out = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        out = model.generate(convs, settings)
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="tiny:qwen2-vl")
    parser.add_argument("--n", type=int, default=16, help="conversations")
    parser.add_argument("--images", type=int, default=2, help="images per conversation")
    parser.add_argument("--side", type=int, default=112, help="image height in pixels")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()

    model = load_model(args.spec, kind="vlm")
    convs = _conversations(args.n, args.images, args.side)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    model.generate(convs[:2], settings)  # warm-up: first-call allocations and lazy inits

    single_s, single = _timed(model, convs, settings, 1, args.repeats)
    batched_s, batched = _timed(model, convs, settings, args.batch_size, args.repeats)
    tokens = sum(g.completion_tokens for g in batched)
    same = sum(a.text == b.text for a, b in zip(single, batched))

    print(f"model {args.spec} on {model.device} ({str(model.dtype).replace('torch.', '')}); "
          f"{args.n} conversations x {args.images} images, max_new_tokens={args.max_new_tokens}, "
          f"{tokens} tokens generated")
    print(f"one-by-one (batch_size=1): {single_s:.3f} s  {args.n / single_s:7.2f} conv/s  "
          f"{sum(g.completion_tokens for g in single) / single_s:8.1f} tok/s")
    print(f"batched (batch_size={args.batch_size}):    {batched_s:.3f} s  {args.n / batched_s:7.2f} conv/s  "
          f"{tokens / batched_s:8.1f} tok/s")
    print(f"speed-up batched / one-by-one: {single_s / batched_s:.2f}x; identical greedy replies: {same}/{args.n}")


if __name__ == "__main__":
    main()
