"""Claim: rerunning a finished build costs under 2% of building it.

Builds 10 generated videos with the offline profile's tiny models, then runs the same build
again on the same folder (a fresh model pool: every stage is answered by the store, so no model
is even loaded) and prints the ratio of the two wall times, both measured in this run.

    PYTHONPATH=src python benchmarks/curate_cached_rerun.py [--videos 10]
"""

from __future__ import annotations

import shutil
import time

from _curate_common import make_videos, offline_config, parse_args, workdir


def main() -> None:
    args = parse_args(__doc__)
    tmp = workdir()
    try:
        from videoespresso.curate import run_build

        videos = make_videos(tmp / "videos", args.videos, args.seconds)
        cfg = offline_config(tmp)
        start = time.perf_counter()
        first = run_build(videos, tmp / "out", cfg, progress=False)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        again = run_build(videos, tmp / "out", cfg, progress=False)
        again_s = time.perf_counter() - start
        computed = sum(s.computed for s in again.run.stages)
        setup = sum(s.timings.get("setup", 0.0) for s in first.run.stages)
        print(f"videos: {args.videos}, QA items: {first.exported.items if first.exported else 0}")
        print(f"first build: {first_s:.2f} s (of which model loading {setup:.2f} s); "
              f"fully cached rerun: {again_s:.3f} s ({computed} items recomputed)")
        print(f"rerun / first = {again_s / first_s:.2%}  (goal < 2%)")
        print(f"rerun / first without model loading = {again_s / (first_s - setup):.2%}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
