"""Store bytes per QA item, and the temporal stage's time and embedder calls, for one long video.

Builds stages 1-9 (sample .. temporal) of one generated video (``--minutes`` long, sampled at
3 fps, small frames) with the tiny profile, then reports:

* the store's bytes per QA item: the stored outputs of every stage from ``group`` on, divided
  by the QA items that reach ``temporal``, and the whole SQLite file divided the same way;
* the ``temporal`` stage's wall time, its embedder calls and the texts it embedded (per video).

Run it with the code to measure first on the path (``PYTHONPATH=<src>``); ``--cache`` shares a
response cache between two runs so a second build (other code, same models) skips the
generation calls and measures the stages themselves. The figures are not a test: the machine's
load changes the time, never the byte and call counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class CountingEmbedder:
    """The real embedder, counting its calls and the texts it was given."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.calls = 0
        self.texts = 0

    def embed(self, texts):
        self.calls += 1
        self.texts += len(texts)
        return self.inner.embed(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="build folder; its videos go next to it (a rerun resumes)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--cache", type=Path, help="response cache file shared between runs")
    args = parser.parse_args()

    import yaml

    from videoespresso import load_model
    from videoespresso.config import load_config
    from videoespresso.curate import run_build
    from videoespresso.video.synth import MovingShapes, StaticShot, make_video

    videos = args.out.parent / "videos"
    video = videos / "long.mp4"
    if not video.exists():
        # still, moving, still, moving (a quarter each) at 3 frames a second: every frame is sampled
        half = args.minutes * 30.0
        segments = [StaticShot(half / 2), MovingShapes(half / 2), StaticShot(half / 2, seed=5), MovingShapes(half / 2)]
        make_video(video, segments, fps=3.0, size=(64, 48))
    config = args.out.parent / "temporal-bench.yaml"
    settings = {
        "sampling": {"static_fps": 3.0, "dynamic_fps": 3.0, "max_side": 64},
        "generation": {"max_new_tokens": 8},
        "curate": {"batch_size": 8, "max_text_chars": 24, "max_new_tokens": 96},
    }
    if args.cache:
        settings["cache"] = str(args.cache)
    config.write_text(yaml.safe_dump(settings))
    cfg = load_config("tiny", config)
    embedder = CountingEmbedder(load_model("minilm"))
    models = {"minilm": embedder}
    start = time.perf_counter()
    run_build(videos, args.out, cfg, stages="1-8", preloaded=models, progress=False)
    upstream = time.perf_counter() - start
    embedder.calls = embedder.texts = 0
    result = run_build(videos, args.out, cfg, stages="1-9", preloaded=models, progress=False)
    temporal = result.run.stage("temporal")
    report = {"upstream_build_seconds": round(upstream, 1), **_sizes(result.store, temporal.outputs)}
    report.update(temporal_seconds=round(temporal.seconds, 3), temporal_computed=temporal.computed,
                  embedder_calls_in_temporal=embedder.calls, texts_embedded_in_temporal=embedder.texts)
    # A rerun of temporal alone (its rows deleted), with whatever the first run left on disk.
    with sqlite3.connect(result.store) as conn:
        conn.execute("DELETE FROM results WHERE stage = 'temporal'")
    embedder.calls = embedder.texts = 0
    again = run_build(videos, args.out, cfg, stages="1-9", preloaded=models, progress=False).run.stage("temporal")
    report.update(rerun_temporal_seconds=round(again.seconds, 3), rerun_embedder_calls=embedder.calls,
                  rerun_texts_embedded=embedder.texts)
    report["stages"] = {s.name: [s.inputs, s.outputs, s.computed, round(s.seconds, 2)] for s in result.run.stages}
    print(json.dumps(report, indent=1))


def _sizes(store: Path, qa_items: int) -> dict:
    with sqlite3.connect(store) as conn:
        by_stage = dict(conn.execute(
            "SELECT stage, SUM(LENGTH(CAST(outputs AS BLOB))) FROM results WHERE status = 'ok' GROUP BY stage"
        ).fetchall())
        row = conn.execute("SELECT outputs FROM results WHERE stage = 'sample' AND status = 'ok'").fetchone()
    later = ("group", "qa", "filter", "cot", "spatial", "temporal")
    pools = store.parent / "pools"
    sidecars = sum(p.stat().st_size for p in pools.rglob("*") if p.is_file()) if pools.is_dir() else 0
    return {
        "frames": len(json.loads(row[0])[0]["frames"]) if row else 0,
        "qa_items": qa_items,
        "store_file_bytes": store.stat().st_size,
        "stored_output_bytes_by_stage": {s: by_stage.get(s, 0) for s in later},
        "stored_output_bytes_per_qa_item_group_on": round(sum(by_stage.get(s, 0) for s in later) / max(qa_items, 1)),
        "pool_files_bytes": sidecars,
    }


if __name__ == "__main__":
    main()
