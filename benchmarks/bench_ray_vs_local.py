"""Ray vs local: wall time of the same offline build of N generated clips under both executors.

Each executor builds into a fresh folder (no store, no response cache, models loaded from the
tiny checkpoints by the run itself), one after the other in this process, in alternating order
over ``--repeats`` rounds. Printed: each wall time, Ray's start-up (``ray.init`` of a local Ray
with one CPU per core, on 127.0.0.1) separately, model set-up time (the Ray actors' summed), the
ratio local / ray with and without the start-up, and whether the exports are byte-identical.

    PYTHONPATH=src python benchmarks/bench_ray_vs_local.py [--videos 10] [--repeats 1] [--workers 2]

``--workers`` sets ``curate.resources.<stage>.workers`` of every model stage (the Ray actor pool
size; the local executor always runs one copy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

from _curate_common import make_videos, workdir

EXPORTS = ("dataset.jsonl", "train_video.json", "train_images.json", "test.json")
MODEL_STAGES = ("caption", "dedup", "qa", "filter", "cot", "spatial", "temporal", "options")


def config(tmp: Path, workers: int):
    import yaml

    from videoespresso.config import load_config

    path = tmp / "bench-ray.yaml"
    path.write_text(yaml.safe_dump({
        "sampling": {"max_side": 112},
        "generation": {"max_new_tokens": 16},
        # batch size 1: model calls independent of batch composition, so both executors must agree
        "curate": {"batch_size": 1, "group_size": 4, "qa_per_group": 2, "max_text_chars": 24, "max_new_tokens": 160,
                   "resources": {name: {"workers": workers} for name in MODEL_STAGES}},
    }))
    return load_config("offline", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    tmp = workdir()
    try:
        from videoespresso.curate import run_build

        videos = make_videos(tmp / "videos", args.videos, args.seconds)
        cfg = config(tmp, args.workers)
        walls: dict[str, list[float]] = {"local": [], "ray": []}
        startups: list[float] = []
        setups: dict[str, list[float]] = {}
        identical = True
        for r in range(args.repeats):
            order = ("local", "ray") if r % 2 == 0 else ("ray", "local")
            outs = {}
            for name in order:
                out = tmp / f"{name}-{r}"
                start = time.perf_counter()
                result = run_build(videos, out, cfg, progress=False, executor=name)
                walls[name].append(time.perf_counter() - start)
                outs[name] = out
                if name == "ray":
                    startups.append(result.startup_seconds)
                setup = sum(st.timings.get("setup", 0.0) for st in result.run.stages)
                setups.setdefault(name, []).append(setup)
                print(f"round {r + 1} {name:<5}: {walls[name][-1]:7.1f} s wall, model set-up {setup:.1f} s"
                      + (" (summed over actors)" if name == "ray" else "")
                      + (f" (Ray start-up {result.startup_seconds:.1f} s)" if name == "ray" else "")
                      + f", {result.exported.items} QA items", flush=True)
            same = all((outs["local"] / f).read_bytes() == (outs["ray"] / f).read_bytes() for f in EXPORTS)
            identical &= same
        local, ray_wall, startup = (statistics.median(walls["local"]), statistics.median(walls["ray"]),
                                    statistics.median(startups))
        print(f"videos {args.videos}, cpus {os.cpu_count()}, model-stage workers {args.workers}")
        print(f"local {local:.1f} s, ray {ray_wall:.1f} s (of which Ray start-up {startup:.1f} s)")
        print(f"speed-up local/ray: {local / ray_wall:.2f}x with start-up, "
              f"{local / max(ray_wall - startup, 1e-9):.2f}x without")
        print(f"model set-up (median): local {statistics.median(setups['local']):.1f} s, "
              f"ray {statistics.median(setups['ray']):.1f} s summed over actors")
        print(f"exports byte-identical: {identical}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
