"""Claim: the curate framework (store, executor, records, export) costs under 10% of a build's
wall time; the rest is model calls and video decoding.

Builds a dataset from 10 generated videos with the offline profile's tiny models and prints the
share of the build's wall time spent outside model calls and decoding, measured in the same run
(each stage accounts its model calls and decoding with ``Stage.timed``). Model loading (stage
set-up) is reported separately: it is a fixed cost, not framework overhead per item.

    PYTHONPATH=src python benchmarks/curate_overhead.py [--videos 10]
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
        result = run_build(videos, tmp / "out", cfg, progress=False)
        wall = time.perf_counter() - start
        model = sum(s.timings.get("model", 0.0) for s in result.run.stages)
        decode = sum(s.timings.get("decode", 0.0) for s in result.run.stages)
        setup = sum(s.timings.get("setup", 0.0) for s in result.run.stages)
        work = wall - setup
        overhead = work - model - decode
        print(f"videos: {args.videos}, QA items exported: {result.exported.items if result.exported else 0}")
        print(f"{'stage':<10} {'in':>5} {'out':>5} {'s':>8} {'model s':>8} {'decode s':>9} {'setup s':>8}")
        for s in result.run.stages:
            print(f"{s.name:<10} {s.inputs:>5} {s.outputs:>5} {s.seconds:>8.2f} {s.timings.get('model', 0):>8.2f} "
                  f"{s.timings.get('decode', 0):>9.2f} {s.timings.get('setup', 0):>8.2f}")
        print(f"wall {wall:.2f} s = model load {setup:.2f} s + model calls {model:.2f} s + decoding {decode:.2f} s "
              f"+ framework {overhead:.2f} s")
        print(f"framework overhead share (excluding model load): {overhead / work:.2%}  (goal < 10%)")
        print(f"framework overhead share (model load counted as overhead): {(overhead + setup) / wall:.2%}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
