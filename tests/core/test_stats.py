"""`videoespresso stats`: the dataset figure's statistics and PNGs on a real build, exact numbers
on a hand-made official file, drops and failures read from the store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from videoespresso.cli import main as cli_main
from videoespresso.engine import Store
from videoespresso.engine.store import ResultKey, StoredResult
from videoespresso.stats import FIGURES, collect, source_of, write_stats


def _run(argv: list[str]) -> None:
    try:
        cli_main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None)


def test_stats_on_a_build_writes_every_png_and_the_tables(built_dataset, tmp_path):
    out = tmp_path / "stats"
    _run(["stats", str(built_dataset), "--out", str(out), "--dpi", "80"])
    for name, _ in FIGURES:
        with Image.open(out / f"{name}.png") as img:
            img.verify()
        with Image.open(out / f"{name}.png") as img:
            assert img.format == "PNG" and img.size == (7 * 80, int(4.5 * 80))
    summary = json.loads((out / "stats.json").read_text())
    records = [json.loads(line) for line in (built_dataset / "dataset.jsonl").read_text().splitlines()]
    assert summary["items"] == len(records)
    assert sum(summary["per_task"].values()) == len(records)
    assert summary["core_frames_per_item"]["n"] == len(records)
    assert summary["core_frames_per_item"]["mean"] == round(
        sum(len(r["cot"]["core_frames"]) for r in records) / len(records), 3
    )
    assert summary["per_split"] == {s: sum(r["split"] == s for r in records) for s in {r["split"] for r in records}}
    text = (out / "stats.md").read_text()
    assert "| core frames per item |" in text and f"![Items per task (n = {len(records)} items)](tasks.png)" in text


def test_exact_numbers_on_an_official_file(tmp_path):
    tag = "<obj_start>{}<obj_end><box_start>{}<box_end>"
    items = [
        {
            "video_path": "all_video/XD-Violence/a.mp4", "question": "q1", "task": "Causal Analysis",
            "options": ["(A): a", "(B): b", "(C): c", "(D): d"], "correct_answer": "(A)", "answer": "a",
            "evidence": "the " + tag.format("man", "[[50, 50, 10, 10], [20, 20, 5, 5]]") + " holds a " + tag.format("cup", "[]"),
            "core_frames_paths": ["1.jpg", "2.jpg", "3.jpg"], "core_frames_captions": ["", "", ""],
            "keyframes_seconds": [1.0, 3.5, 2.0],
        },
        {
            "video_path": "CUVA/b.mp4", "question": "q2", "task": "Traffic Analysis",
            "options": ["(A): a", "(B): b", "(C): c", "(D): d"], "correct_answer": "(B)", "answer": "b",
            "evidence": "broken <obj_start>car<obj_end><box_start>[[1, 2]]<box_end>",
            "core_frames_paths": ["9.jpg"], "core_frames_captions": [""],
        },
    ]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(items))
    summary = collect(path).summary()
    assert summary["kind"] == "bench"
    assert summary["per_task"] == {"Causal Inference": 1, "Traffic Analysis": 1}
    assert summary["per_source"] == {"XD-Violence": 1, "CUVA": 1}
    assert summary["core_frames_per_item"] == {"n": 2, "mean": 2.0, "median": 2.0, "min": 1, "max": 3}
    assert summary["core_frame_gaps_s"] == {"n": 2, "mean": 1.25, "median": 1.25, "min": 1.0, "max": 1.5}
    # the malformed box list counts no objects (and its words as raw text), the run goes on
    assert summary["key_objects_per_item"]["max"] == 2 and summary["key_objects_per_item"]["min"] == 0
    assert summary["boxes_per_object"] == {"n": 2, "mean": 1.0, "median": 1.0, "min": 0, "max": 2}
    assert summary["evidence_words"]["n"] == 2
    # each figure's n says what it counts: 2 gaps, 2 key objects, not "2 items" for all
    text = write_stats(collect(path), tmp_path / "out")["markdown"].read_text()
    assert "![Gap between consecutive core frames (s) (n = 2 gaps)](gaps.png)" in text
    assert "![Boxes per key object (n = 2 key objects)](boxes.png)" in text
    assert "![Core frames per item (n = 2 items)](core_frames.png)" in text


def test_drops_and_failures_by_stage_come_from_the_latest_result(built_dataset, tmp_path):
    build = tmp_path / "build"
    shutil.copytree(built_dataset, build)
    with Store(build / "store.sqlite") as store:
        def key(stage: str, n: int) -> ResultKey:
            return ResultKey(stage, "t", "p", "q", f"input-{n}")

        store.put_many([
            (key("filter", 1), StoredResult(key("filter", 1).key, "filter", "x#1", "dropped", [], reason="judge rejected")),
            (key("filter", 2), StoredResult(key("filter", 2).key, "filter", "x#2", "dropped", [], reason="judge rejected")),
            (key("qa", 3), StoredResult(key("qa", 3).key, "qa", "x#3", "failed", [], reason="invalid JSON")),
        ])
    stats = collect(build)
    assert stats.outcomes["filter"]["dropped"]["judge rejected"] == 2
    assert stats.outcomes["qa"]["failed"]["invalid JSON"] == 1
    files = write_stats(stats, tmp_path / "out")
    assert "| filter | dropped | judge rejected | 2 |" in files["markdown"].read_text()
    dropped = sum(n for st in stats.outcomes.values() for reasons in st.values() for n in reasons.values())
    assert f"(n = {dropped} dropped or failed items)](drops.png)" in files["markdown"].read_text()
    assert Image.open(files["drops"]).size[0] > 0


def test_source_of():
    assert source_of("all_video/MovieChat/x.mp4") == "MovieChat"
    assert source_of("x.mp4") == "(root)"
    assert source_of("/data/videos/vatex/x.mp4") == "vatex"
