"""Batched vs one-by-one generation throughput of an hf vision-language backend.

Claim: running conversations through ``generate`` in left-padded batches is faster than one
conversation at a time, with identical greedy replies. The reference (one-by-one, batch_size=1)
is measured in the same run on the same model and inputs.

    PYTHONPATH=src python benchmarks/bench_batched_generation.py            # tiny:qwen2-vl on CPU
    PYTHONPATH=src python benchmarks/bench_batched_generation.py --spec hf:Qwen/Qwen2-VL-2B-Instruct --n 32
    PYTHONPATH=src python benchmarks/bench_batched_generation.py --spec smollm2 --images 0   # text-only chat model
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


def _run(model, convs, settings, batch_size: int) -> tuple[float, float, list]:
    """Wall seconds, process CPU seconds (fairer on a shared machine) and the replies."""
    model.batch_size = batch_size
    wall, cpu = time.perf_counter(), time.process_time()
    out = model.generate(convs, settings)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="tiny:qwen2-vl")
    parser.add_argument("--n", type=int, default=16, help="conversations")
    parser.add_argument("--images", type=int, default=2, help="images per conversation (0: a text-only chat model)")
    parser.add_argument("--side", type=int, default=112, help="image height in pixels")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per mode (best kept)")
    args = parser.parse_args()

    model = load_model(args.spec, kind="vlm" if args.images else "chat")
    convs = _conversations(args.n, args.images, args.side)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    model.generate(convs[:2], settings)  # warm-up: first-call allocations and lazy inits

    # interleaved repeats, best of each: a load burst from elsewhere hits both modes alike
    single_wall = single_cpu = batched_wall = batched_cpu = float("inf")
    single = batched = []
    for _ in range(args.repeats):
        wall, cpu, single = _run(model, convs, settings, 1)
        single_wall, single_cpu = min(single_wall, wall), min(single_cpu, cpu)
        wall, cpu, batched = _run(model, convs, settings, args.batch_size)
        batched_wall, batched_cpu = min(batched_wall, wall), min(batched_cpu, cpu)
    tokens = sum(g.completion_tokens for g in batched)
    same = sum(a.text == b.text for a, b in zip(single, batched))

    print(f"model {args.spec} on {model.device} ({str(model.dtype).replace('torch.', '')}); "
          f"{args.n} conversations x {args.images} images, max_new_tokens={args.max_new_tokens}, "
          f"{tokens} tokens generated; best of {args.repeats} interleaved runs")
    for name, wall, cpu in (("one-by-one (batch_size=1)", single_wall, single_cpu),
                            (f"batched (batch_size={args.batch_size})", batched_wall, batched_cpu)):
        print(f"{name:28s} wall {wall:7.3f} s  {args.n / wall:7.2f} conv/s  {tokens / wall:8.1f} tok/s"
              f"   cpu {cpu:7.3f} s")
    print(f"speed-up batched / one-by-one: wall {single_wall / batched_wall:.2f}x, "
          f"cpu {single_cpu / batched_cpu:.2f}x; identical greedy replies: {same}/{args.n}")

if __name__ == "__main__":
    main()
