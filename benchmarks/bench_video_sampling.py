"""Frame sampling cost against one plain decode of the same file.

Claim measured (issue 3, "Measure"): adaptive sampling of a 60-second 1280x720 H.264 clip --
deciding static vs dynamic *and* extracting the frames -- costs no more than one plain decode
(`ffmpeg -threads 1 -i clip -f null -`), ratio <= 1.0; stretch < 0.6 (``fast`` mode, which skips
non-reference frames, at the timestamp error reported). Also: `uniform:16` vs a full decode.

Every candidate and the reference run interleaved, several repeats, medians reported, in the
same process run; wall time and CPU time (all threads) are both given, because our decoder uses
the machine's cores (PyAV ``thread_type="AUTO"``) while the reference is pinned to one thread.

    python benchmarks/bench_video_sampling.py            # generates the clip (~30 s), 5 repeats
    python benchmarks/bench_video_sampling.py --repeats 7 --clip /tmp/clip720.mp4 --gop 250
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from videoespresso.video import AdaptiveSampler, FpsSampler, UniformSampler, VideoReader, probe  # noqa: E402
from videoespresso.video.synth import HardCut, MovingShapes, StaticShot, make_video  # noqa: E402


def make_clip(path: Path, gop_s: float, fps: float, grain: int) -> None:
    # Alternating 10-second still and moving segments plus a hard cut: 30 of 60 s are dynamic.
    segments = [
        StaticShot(10.0, seed=1),
        MovingShapes(10.0, seed=2),
        StaticShot(10.0, seed=3),
        HardCut(10.0, seed=4),
        MovingShapes(10.0, seed=5, shapes=5),
        MovingShapes(10.0, seed=6, speed=0.3),
    ]
    make_video(path, segments, fps=fps, size=(1280, 720), gop=int(round(gop_s * fps)), crf=23, preset="veryfast", grain=grain)


def ffmpeg_decode(path: Path) -> Callable[[], None]:
    exe = shutil.which("ffmpeg")
    if exe is None:
        sys.exit("ffmpeg is not installed (apt-get install -y ffmpeg; scripts/install.sh does it)")

    def run() -> None:
        subprocess.run([exe, "-v", "error", "-threads", "1", "-i", str(path), "-f", "null", "-"], check=True)

    return run


def pyav_full_decode(path: Path, threads: bool) -> Callable[[], None]:
    def run() -> None:
        with VideoReader(path, threads=threads) as r:
            for _ in r.iter_decoded():
                pass

    return run


def sampler_run(path: Path, sampler, threads: bool, size: int | None) -> Callable[[], dict]:
    def run() -> dict:
        with VideoReader(path, threads=threads) as r:
            record, frames = sampler.sample_with_frames(r, size=size)
        return {"frames": len(frames), **{k: record.params.get(k) for k in ("target_error_max_s", "target_error_mean_s", "dynamic_seconds")}}

    return run


def timed(fn: Callable[[], object], child: bool) -> tuple[float, float, object]:
    who = resource.RUSAGE_CHILDREN if child else resource.RUSAGE_SELF
    r0 = resource.getrusage(who)
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(who)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, help="reuse (or create) the clip at this path")
    ap.add_argument("--gop", type=float, default=2.0, help="keyframe interval of the generated clip, seconds")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--grain", type=int, default=3, help="noise amplitude of the generated clip (camera-like bitrate)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=448, help="longest side of extracted frames (config default 448)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ve-bench-"))
    try:
        clip = args.clip or tmp / "clip720.mp4"
        if not clip.exists():
            t0 = time.perf_counter()
            make_clip(clip, args.gop, args.fps, args.grain)
            print(f"generated {clip} in {time.perf_counter() - t0:.1f} s")
        info = probe(clip, count_frames=True)
        print(f"clip: {info.width}x{info.height} {info.codec}, {info.duration_s:.1f} s, {info.num_frames} frames, "
              f"{info.avg_fps:.2f} fps, {clip.stat().st_size / 1e6:.1f} MB")

        reference = ("ffmpeg -threads 1 -f null (full decode)", ffmpeg_decode(clip), True)
        candidates = [
            ("PyAV full decode, threads auto", pyav_full_decode(clip, True), False),
            ("PyAV full decode, 1 thread", pyav_full_decode(clip, False), False),
            ("adaptive:1:3 (exact)", sampler_run(clip, AdaptiveSampler(1, 3), True, args.size), False),
            ("adaptive:1:3:fast", sampler_run(clip, AdaptiveSampler(1, 3, fast=True), True, args.size), False),
            ("adaptive:1:3 (exact), 1 thread", sampler_run(clip, AdaptiveSampler(1, 3), False, args.size), False),
            ("adaptive:1:3:fast, 1 thread", sampler_run(clip, AdaptiveSampler(1, 3, fast=True), False, args.size), False),
            ("uniform:16", sampler_run(clip, UniformSampler(16), True, args.size), False),
            ("uniform:16, 1 thread", sampler_run(clip, UniformSampler(16), False, args.size), False),
            ("fps:1", sampler_run(clip, FpsSampler(1), True, args.size), False),
        ]
        everything = [reference] + candidates
        for _, fn, _ in everything:  # warm-up: imports, page cache
            fn()
        walls: dict[str, list[float]] = {name: [] for name, _, _ in everything}
        cpus: dict[str, list[float]] = {name: [] for name, _, _ in everything}
        extras: dict[str, object] = {}
        for rep in range(args.repeats):
            for name, fn, child in everything:
                wall, cpu, out = timed(fn, child)
                walls[name].append(wall)
                cpus[name].append(cpu)
                if isinstance(out, dict):
                    extras[name] = out
            print(f"repeat {rep + 1}/{args.repeats} done")

        ref_wall = statistics.median(walls[reference[0]])
        ref_cpu = statistics.median(cpus[reference[0]])
        print()
        print(f"{'run':42s} {'wall s':>7s} {'ratio':>6s} {'cpu s':>7s} {'ratio':>6s}  notes")
        for name, _, _ in everything:
            w = statistics.median(walls[name])
            c = statistics.median(cpus[name])
            note = ""
            if name in extras:
                e = extras[name]
                note = f"{e['frames']} frames"
                if e.get("target_error_max_s") is not None:
                    note += f", target error max {e['target_error_max_s'] * 1000:.1f} ms mean {e['target_error_mean_s'] * 1000:.1f} ms"
                if e.get("dynamic_seconds") is not None:
                    note += f", {len(e['dynamic_seconds'])} dynamic s"
            print(f"{name:42s} {w:7.2f} {w / ref_wall:6.2f} {c:7.2f} {c / ref_cpu:6.2f}  {note}")
        print()
        print(f"(medians of {args.repeats}; ratio = candidate / reference, same run; reference = ffmpeg -threads 1)")
        for threads, full in (("threads auto", "PyAV full decode, threads auto"), ("1 thread", "PyAV full decode, 1 thread")):
            uni = "uniform:16" if threads == "threads auto" else "uniform:16, 1 thread"
            w = statistics.median(walls[uni]) / statistics.median(walls[full])
            c = statistics.median(cpus[uni]) / statistics.median(cpus[full])
            print(f"uniform:16 vs a full PyAV decode ({threads}): wall ratio {w:.2f}, cpu ratio {c:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
