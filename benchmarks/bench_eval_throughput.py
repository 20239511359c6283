"""Eval throughput with the tiny VLM: batched vs unbatched, and what resuming costs.

Claims measured in one run, each as a ratio against a reference from the same run:

1. batching: questions/s with ``--batch-size 8`` against ``--batch-size 1`` (the reference);
2. resume of a finished run: the rerun's time as a fraction of the first run's time (nothing to
   answer; the predictions file is read and every item is found done);
3. rerun from the response cache: the predictions file deleted, the SQLite cache kept (frames
   are decoded again, every model call is a cache hit), as a fraction of the first run's time.

The tiny VLM has random weights: this measures the pipeline (decode, prompt, batch, write), not a
real model's speed, where batching gains more.

    PYTHONPATH=src python benchmarks/bench_eval_throughput.py [--items 24] [--frames 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_benchmark(root: Path, n_items: int) -> tuple[list, Path]:
    from videoespresso.schema import TASKS, BenchItem
    from videoespresso.video.synth import make_test_video

    videos = root / "videos"
    videos.mkdir()
    kinds = ["static", "moving", "cut", "mixed"]
    for i, kind in enumerate(kinds):
        make_test_video(videos / f"clip{i}.mp4", kind, seconds=1.0)
    items = [
        BenchItem(
            id=str(i),
            video_path=f"clip{i % len(kinds)}.mp4",
            question=f"What happens in clip {i}",
            options=["It moves left", "It stays still", "It changes colour", "It disappears"],
            correct_answer="ABCD"[i % 4],
            task=TASKS[i % len(TASKS)].paper_name,
        )
        for i in range(n_items)
    ]
    return items, videos


def timed_run(items, model, out: Path, videos: Path, batch_size: int, frames: int) -> float:
    from videoespresso.bench.run import EvalOptions, run_eval, sampler_source
    from videoespresso.schema import GenerationSettings

    opts = EvalOptions(settings=GenerationSettings(max_new_tokens=16), batch_size=batch_size, frames_label=f"uniform:{frames}")
    start = time.perf_counter()
    summary = run_eval(items, model, out, sampler_source(f"uniform:{frames}", 224), videos, opts)
    took = time.perf_counter() - start
    assert summary.failed == 0, summary.failure_reasons
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()

    from videoespresso.models.registry import load_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items, videos = make_benchmark(root, args.items)
        plain = load_model("tiny:qwen2-vl", kind="vlm")
        timed_run(items[:2], plain, root / "warmup.jsonl", videos, 2, args.frames)

        t1 = timed_run(items, plain, root / "b1.jsonl", videos, 1, args.frames)
        t8 = timed_run(items, plain, root / "b8.jsonl", videos, 8, args.frames)
        n = len(items)
        print(f"unbatched (batch 1): {t1:6.2f} s  {n / t1:6.2f} questions/s   (reference)")
        print(f"batched   (batch 8): {t8:6.2f} s  {n / t8:6.2f} questions/s   speed-up {t1 / t8:.2f}x")

        cached = load_model("tiny:qwen2-vl", kind="vlm", cache=root / "cache.sqlite")
        out = root / "cached.jsonl"
        first = timed_run(items, cached, out, videos, 8, args.frames)
        rerun = timed_run(items, cached, out, videos, 8, args.frames)
        out.unlink()
        from_cache = timed_run(items, cached, out, videos, 8, args.frames)
        print(f"first run with cache (batch 8): {first:6.2f} s   (reference)")
        print(f"rerun of the finished run:       {rerun:6.3f} s   {rerun / first:.4f} of the first run")
        print(f"rerun from cache (file deleted): {from_cache:6.2f} s   {from_cache / first:.3f} of the first run")


if __name__ == "__main__":
    main()
