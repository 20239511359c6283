"""How well the adaptive sampler tells dynamic seconds from still ones, on generated clips.

Claim measured (issue 9): the motion measure (share of 16x12 cells whose mean Y/U/V changed
beyond the picture-wide change, :mod:`videoespresso.video.motion`) finds the seconds where a
small object moves on a still background, a large object moves or the camera pans, and does
not call still shots, sensor grain, a slow fade or the still seconds after a hard cut dynamic.

Truth per second comes from the generator: a second is dynamic when it lies inside a moving
segment (moving shapes, a moving block, a pan); still, fade and cut segments are not dynamic
(a cut is one instant: the sampler's per-second median deliberately ignores it). Reported: the
per-second precision and recall of "dynamic" for today's sampler (``AdaptiveSampler``, default
threshold) and, as the reference measured in the same run, the measure it replaced (share of
96-px luma-thumbnail pixels changed by more than 12 levels, median per second, threshold 0.02),
computed here on the same 8 Hz probe lattice.

    python benchmarks/bench_adaptive_quality.py            # 25 clips of 320x240, about a minute
    python benchmarks/bench_adaptive_quality.py --threshold 0.03 --keep /tmp/clips
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from videoespresso.video import AdaptiveSampler, VideoReader  # noqa: E402
from videoespresso.video import motion  # noqa: E402
from videoespresso.video.synth import Fade, HardCut, MovingBlock, MovingShapes, Pan, StaticShot, make_video  # noqa: E402

S, B = StaticShot, MovingBlock
#: name -> (segments, grain)
CLIPS: dict[str, tuple[list, int]] = {
    "still": ([S(6.0, seed=10)], 0),
    "still-2": ([S(6.0, color=(180, 170, 150), seed=11)], 0),
    "still-grain": ([S(6.0, seed=12)], 20),
    "still-grain-2": ([S(6.0, color=(90, 90, 90), seed=13)], 12),
    "block-60x80-50px": ([S(3.0), B(3.0)], 0),
    "block-60x80-50px-grain": ([S(3.0), B(3.0)], 20),
    "block-grey-60x80": ([S(3.0), B(3.0, block_color=(200, 200, 200))], 0),
    "block-40x40-30px": ([S(3.0), B(3.0, block=(40, 40), speed=30.0)], 0),
    "block-24x24-50px": ([S(3.0), B(3.0, block=(24, 24), speed=50.0)], 0),
    "block-60x80-20px": ([S(3.0), B(3.0, speed=20.0)], 0),
    "block-between-stills": ([S(2.0), B(2.0, block_color=(40, 200, 60)), S(2.0, seed=7)], 0),
    "large-block": ([S(3.0), B(3.0, block=(160, 120), speed=60.0)], 0),
    "shapes": ([S(3.0), MovingShapes(3.0)], 0),
    "shapes-grain": ([MovingShapes(3.0), S(3.0)], 16),
    "pan-60px": ([S(3.0), Pan(3.0, speed=60.0)], 0),
    "pan-30px": ([Pan(3.0, speed=30.0), S(3.0)], 0),
    "pan-15px": ([S(3.0), Pan(3.0, speed=15.0)], 0),
    "cut": ([S(3.0), HardCut(3.0)], 0),
    "cuts": ([S(2.0), HardCut(2.0), S(2.0, seed=9)], 0),
    "fade-out": ([Fade(6.0, delta=-120.0)], 0),
    "fade-slow": ([Fade(6.0, delta=-40.0)], 0),
    "fade-fast": ([S(2.0), Fade(2.0, delta=-200.0), S(2.0, seed=8)], 0),
    "fade-in-grain": ([Fade(6.0, delta=90.0, color=(60, 60, 70))], 12),
    "mixed": ([S(2.0), B(2.0), Fade(2.0), Pan(2.0, speed=50.0), HardCut(2.0)], 0),
    "mixed-grain": ([B(2.0, block=(40, 60)), S(2.0), Pan(2.0), S(2.0)], 16),
}
_MOVING = {"moving"}


def truth(segments: list[tuple[str, float, float]], n_seconds: int) -> np.ndarray:
    out = np.zeros(n_seconds, dtype=bool)
    for kind, start, end in segments:
        if kind in _MOVING:
            out[int(math.floor(start + 1e-9)) : int(math.ceil(end - 1e-9))] = True
    return out


def legacy_scores(path: Path, n_seconds: int, probe_hz: float = motion.PROBE_HZ) -> np.ndarray:
    """The replaced measure: changed-pixel share (> 12 levels) of luma thumbnails, median per second."""
    with VideoReader(path) as reader:
        times = np.asarray(reader.frame_times)
        lattice = np.arange(0.0, reader.duration_s, 1.0 / probe_hz)
        wanted = {int(np.argmin(np.abs(times - t))): t for t in reversed(lattice)}
        thumbs: dict[int, np.ndarray] = {}
        for index, frame in reader.iter_decoded():
            if index in wanted:
                thumbs[index] = motion.thumbnail(frame)
    probes = sorted((t, thumbs[i]) for i, t in wanted.items() if i in thumbs)
    buckets: list[list[float]] = [[] for _ in range(n_seconds)]
    for (t0, a), (t1, b) in zip(probes, probes[1:]):
        buckets[min(n_seconds - 1, int((t0 + t1) / 2))].append(float(np.mean(np.abs(a - b) > 12)))
    return np.array([float(np.median(x)) if x else 0.0 for x in buckets])


def prf(pred: np.ndarray, gold: np.ndarray) -> tuple[float, float, int, int, int]:
    tp = int(np.sum(pred & gold))
    fp = int(np.sum(pred & ~gold))
    fn = int(np.sum(~pred & gold))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=None, help="cell share for 'dynamic' (default: the sampler's)")
    parser.add_argument("--legacy-threshold", type=float, default=0.02)
    parser.add_argument("--size", default="320x240", help="clip size WxH (default 320x240)")
    parser.add_argument("--keep", type=Path, default=None, help="write the clips here and keep them")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    sampler = AdaptiveSampler(1, 3, args.threshold)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="ve-adaptive-quality-"))
    folder.mkdir(parents=True, exist_ok=True)
    gold_all, new_all, old_all = [], [], []
    new_time = old_time = 0.0
    print(f"{len(CLIPS)} clips, {w}x{h}, 25 fps; threshold new {sampler.effective_threshold:g} "
          f"(cells, {motion.GRID[0]}x{motion.GRID[1]}, delta {motion.BLOCK_DELTA:g}), legacy {args.legacy_threshold:g} (pixels)")
    print(f"{'clip':24s} {'truth':8s} {'new':8s} {'legacy':8s}  new scores / legacy scores")
    for name, (segments, grain) in CLIPS.items():
        clip = make_video(folder / f"{name}.mp4", segments, size=(w, h), grain=grain)
        n = max(1, math.ceil(clip.duration_s - 1e-9))
        gold = truth(clip.segments, n)
        t0 = time.perf_counter()
        record = sampler.sample(clip.path)
        new_time += time.perf_counter() - t0
        new_scores = np.asarray(record.params["motion_scores"])
        new = np.zeros(n, dtype=bool)
        new[record.params["dynamic_seconds"]] = True
        t0 = time.perf_counter()
        old_scores = legacy_scores(clip.path, n)
        old_time += time.perf_counter() - t0
        old = old_scores > args.legacy_threshold
        bits = lambda a: "".join("D" if x else "." for x in a)  # noqa: E731
        print(f"{name:24s} {bits(gold):8s} {bits(new):8s} {bits(old):8s}  "
              f"{' '.join(f'{x:.3f}' for x in new_scores)} / {' '.join(f'{x:.3f}' for x in old_scores)}")
        gold_all.append(gold)
        new_all.append(new)
        old_all.append(old)
    gold, new, old = (np.concatenate(x) for x in (gold_all, new_all, old_all))
    print(f"\n{len(gold)} seconds, {int(gold.sum())} dynamic")
    for label, pred in (("legacy (changed-pixel share)", old), ("new (changed-cell share)", new)):
        p, r, tp, fp, fn = prf(pred, gold)
        print(f"{label:30s} precision {p:.3f}  recall {r:.3f}  (tp {tp}, fp {fp}, fn {fn})")
    print(f"scoring time: sampler {new_time:.2f} s (decides and picks frames), legacy scores {old_time:.2f} s")
    if args.keep is None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
