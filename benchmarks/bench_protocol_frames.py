"""Frames and visual tokens per item under each protocol, and the video path's eval throughput.

Two claims, each a ratio against a reference measured in the same run:

1. frames and visual tokens per item: ``--protocol official`` (the per-video count
   ``min(128, int(24 * seconds) + 1)``, one video input, native size) against ``ours`` (the
   reference: 16 uniform frames, separate images, longer side 448). Visual tokens are counted
   with transformers' Qwen2-VL image and video processors at their default pixel limits (the
   ``<|image_pad|>`` / ``<|video_pad|>`` tokens the language model reads), on generated clips
   at 640x360. The benchmark's clip lengths are not published; the clips here follow an
   assumed mix (``DURATIONS``: short event segments plus a few long ones), printed with the
   result. Frame counts depend on duration only; tokens also on resolution.
2. eval throughput on the tiny Qwen2-VL: the same frames (uniform:16, longer side 224) sent as
   one video against the reference, sent as 16 images (questions/s). The tiny model has random
   weights: this measures the pipeline and the visual-token count, not a real model's speed.

    PYTHONPATH=src python benchmarks/bench_protocol_frames.py [--items 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: Assumed clip lengths in seconds (the test set's are not published): mostly short event
#: segments, some long shots, two very short clips (under 0.5 s the script takes 24 frames).
DURATIONS = [0.3, 0.4, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]


def make_clips(root: Path) -> list[Path]:
    from videoespresso.video.synth import MovingShapes, make_video

    paths = []
    for i, seconds in enumerate(DURATIONS):
        # Few frames per second for the long clips keeps generation quick; the official count
        # depends on the duration only.
        fps = 30.0 if seconds <= 10 else 4.0
        paths.append(make_video(root / f"clip{i:02d}.mp4", [MovingShapes(seconds)], fps=fps, size=(640, 360)).path)
    return paths


def visual_tokens(frames: list, as_video: bool) -> int:
    """Tokens the language model reads for these frames (Qwen2-VL, default processor settings)."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    merge = 2 * 2
    if as_video:
        grid = Qwen2VLVideoProcessor()(videos=[frames], do_sample_frames=False, return_tensors="pt")["video_grid_thw"]
    else:
        grid = Qwen2VLImageProcessor()(images=frames, return_tensors="pt")["image_grid_thw"]
    return int(sum(int(t * h * w) // merge for t, h, w in grid.tolist()))


def protocol_figures(clips: list[Path]) -> None:
    from videoespresso.video import sample_frames

    rows = []
    for clip, seconds in zip(clips, DURATIONS):
        _, official = sample_frames(clip, "official", size=None)
        _, ours = sample_frames(clip, "uniform:16", size=448)
        rows.append((seconds, len(official), visual_tokens(official, True), len(ours), visual_tokens(ours, False)))
    print(f"{'seconds':>8} {'official fr.':>12} {'official tok.':>13} {'ours fr.':>9} {'ours tok.':>10}")
    for seconds, of, ot, uf, ut in rows:
        print(f"{seconds:8.1f} {of:12d} {ot:13d} {uf:9d} {ut:10d}")
    of_mean = statistics.mean(r[1] for r in rows)
    ot_mean = statistics.mean(r[2] for r in rows)
    uf_mean = statistics.mean(r[3] for r in rows)
    ut_mean = statistics.mean(r[4] for r in rows)
    print(f"per item, mean over {len(rows)} clips (640x360; durations {DURATIONS}):")
    print(f"  ours (reference):  {uf_mean:6.1f} frames  {ut_mean:8.0f} visual tokens (16 images, longer side 448)")
    print(f"  official:          {of_mean:6.1f} frames  {ot_mean:8.0f} visual tokens (one video, native size)"
          f"   {of_mean / uf_mean:.2f}x frames, {ot_mean / ut_mean:.2f}x tokens")


def throughput(root: Path, n_items: int, repeats: int) -> None:
    from videoespresso.bench.run import EvalOptions, run_eval, sampler_source
    from videoespresso.models.registry import load_model
    from videoespresso.schema import TASKS, BenchItem, GenerationSettings
    from videoespresso.video.synth import make_test_video

    videos = root / "videos"
    videos.mkdir()
    for i, kind in enumerate(["static", "moving", "cut", "mixed"]):
        make_test_video(videos / f"c{i}.mp4", kind, seconds=1.0)
    items = [
        BenchItem(id=str(i), video_path=f"c{i % 4}.mp4", question=f"What happens in clip {i}",
                  options=["left", "still", "colour", "gone"], correct_answer="ABCD"[i % 4], task=TASKS[i % 14].paper_name)
        for i in range(n_items)
    ]
    model = load_model("tiny:qwen2-vl", kind="vlm")
    source = sampler_source("uniform:16", 224)

    def run(form: str, tag: str) -> float:
        opts = EvalOptions(settings=GenerationSettings(max_new_tokens=16), batch_size=4, frames_label="uniform:16", input_form=form)
        start = time.perf_counter()
        summary = run_eval(items, model, root / f"{tag}.jsonl", source, videos, opts)
        took = time.perf_counter() - start
        assert summary.failed == 0, summary.failure_reasons
        return took

    run("images", "warm-i")
    run("video", "warm-v")
    t_img = min(run("images", f"i{r}") for r in range(repeats))
    t_vid = min(run("video", f"v{r}") for r in range(repeats))
    print(f"eval, tiny Qwen2-VL, {n_items} items, uniform:16 at 224, batch 4 (best of {repeats}):")
    print(f"  images (reference): {t_img:6.2f} s  {n_items / t_img:6.2f} questions/s")
    print(f"  video:              {t_vid:6.2f} s  {n_items / t_vid:6.2f} questions/s   {t_img / t_vid:.2f}x the image path")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        protocol_figures(make_clips(root))
        throughput(root, args.items, args.repeats)


if __name__ == "__main__":
    main()
