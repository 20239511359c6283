"""End to end: `videoespresso eval` on generated videos with the tiny VLM, killed with SIGKILL
halfway, rerun, and compared with an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import videoespresso
from videoespresso.bench.run import EvalOptions, run_eval, sampler_source, write_official
from videoespresso.config import load_config
from videoespresso.formats.bench import read_bench, write_bench
from videoespresso.schema import TASKS, BenchItem, GenerationSettings

N_ITEMS = 10
# The subprocess must run the same code as this test process.
SRC = str(Path(videoespresso.__file__).resolve().parents[1])


def _make_benchmark(root: Path) -> tuple[Path, Path]:
    from videoespresso.video.synth import make_test_video

    videos = root / "videos"
    (videos / "all_video" / "synth").mkdir(parents=True)
    kinds = ["static", "moving", "cut"]
    for i, kind in enumerate(kinds):
        make_test_video(videos / "all_video" / "synth" / f"clip{i}.mp4", kind, seconds=1.0)
    items = [
        BenchItem(
            id=str(i),
            video_path=f"all_video/synth/clip{i % len(kinds)}.mp4",
            question=f"What happens to the shape in clip {i}",
            options=["It moves left", "It stays still", "It changes colour", "It disappears"],
            raw_options=["(A): It moves left", "(B): It stays still", "(C): It changes colour", "(D): It disappears"],
            correct_answer="ABCD"[i % 4],
            answer="It stays still.",
            evidence="The <obj_start>square<obj_end><box_start>[[50, 50, 20, 20]]<box_end> does not move.",
            task=TASKS[i % len(TASKS)].paper_name,
        )
        for i in range(N_ITEMS)
    ]
    bench = root / "bench_hard.json"
    write_bench(items, bench)
    return bench, videos


def _cmd(bench: Path, videos: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "videoespresso", "eval", "--profile", "tiny",
        "--bench", str(bench), "--video-root", str(videos), "--model", "tiny:qwen2-vl",
        "--out", str(out), "--frames", "2", "--batch-size", "1", "--max-new-tokens", "6", *extra,
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _uninterrupted(bench: Path, videos: Path, out: Path, model) -> None:
    """The same run in this process (same checkpoint, settings, frames and batch size)."""
    cfg = load_config("tiny")
    opts = EvalOptions(settings=cfg.generation.model_copy(update={"max_new_tokens": 6}), batch_size=1, frames_label="uniform:2")
    items = read_bench(bench)
    summary = run_eval(items, model, out, sampler_source("uniform:2", cfg.sampling.max_side), videos, opts)
    assert (summary.answered, summary.failed) == (N_ITEMS, 0)
    write_official(items, out, out.with_suffix(".official.json"))


def test_eval_killed_halfway_resumes_to_the_same_predictions(tmp_path: Path, tiny_vlm) -> None:
    bench, videos = _make_benchmark(tmp_path)
    full = tmp_path / "full.jsonl"
    _uninterrupted(bench, videos, full, tiny_vlm)
    reference = {p["id"]: p for p in _lines(full)}

    killed = tmp_path / "killed.jsonl"
    proc = subprocess.Popen(_cmd(bench, videos, killed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if killed.exists() and killed.read_bytes().count(b"\n") >= N_ITEMS // 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    written = killed.read_bytes().count(b"\n")
    assert N_ITEMS // 2 <= written < N_ITEMS
    # The kill may land between two lines or inside one; make the second case certain.
    with killed.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "' + str(written) + '", "task": "Causal Inf')

    official = tmp_path / "killed.official.json"
    resumed = subprocess.run(_cmd(bench, videos, killed, "--official", str(official)),
                             env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "half-written" in resumed.stderr
    assert f"{written} reused, {N_ITEMS - written} answered" in " ".join(resumed.stdout.split())

    final = _lines(killed)
    ids = [p["id"] for p in final]
    assert ids == [str(i) for i in range(N_ITEMS)]  # all items, no duplicates, benchmark order
    for p in final:
        ref = reference[p["id"]]
        assert (p["output"], p.get("letter"), p["rule"]) == (ref["output"], ref.get("letter"), ref["rule"])
        assert p["frames"] == ref["frames"] and p["settings"] == ref["settings"]
        assert p["prompt_template"] == ref["prompt_template"] and p["prompt_template"].startswith("official@")
        assert p["with_evidence"] is False and p["settings"]["temperature"] == 0.0
    official_ref = json.loads(full.with_suffix(".official.json").read_text())
    assert json.loads(official.read_text()) == official_ref and len(official_ref) == N_ITEMS
    assert all("model_output" in row and row["correct_answer"].startswith("(") for row in official_ref)

    # A finished run rerun answers nothing and changes nothing.
    again = run_eval(read_bench(bench), tiny_vlm, killed, sampler_source("uniform:2", 224), videos, EvalOptions())
    assert (again.already_done, again.answered, again.failed) == (N_ITEMS, 0, 0)
    assert _lines(killed) == final


@pytest.mark.parametrize("mode", ["generate", "logprob"])
def test_eval_in_process_records_failures_and_goes_on(tmp_path: Path, tiny_vlm, mode: str) -> None:

    bench, videos = _make_benchmark(tmp_path)
    items = read_bench(bench)[:4]
    items[1] = items[1].model_copy(update={"video_path": "all_video/synth/missing.mp4"})
    out = tmp_path / "p.jsonl"
    opts = EvalOptions(mode=mode, settings=GenerationSettings(max_new_tokens=4), batch_size=2, frames_label="uniform:2")
    summary = run_eval(items, tiny_vlm, out, sampler_source("uniform:2", 64), videos, opts)
    assert (summary.answered, summary.failed) == (3, 1)
    assert list(summary.failure_reasons) == ["frames"]
    preds = _lines(out)
    assert [p["id"] for p in preds] == ["0", "1", "2", "3"]
    assert preds[1]["rule"] == "none:error" and "missing.mp4" in preds[1]["error"]
    for p in (preds[0], preds[2], preds[3]):
        assert len(p["frames"]) == 2 and p["frames"][0]["index"] < p["frames"][1]["index"]
        if mode == "logprob":
            assert p["rule"] == "logprob" and p["letter"] == p["output"] and set(p["extra"]["logprobs"]) == set("ABCD")
        else:
            assert isinstance(p["output"], str) and p["rule"]


def test_eval_takes_precomputed_frame_lists_and_selectors(tmp_path: Path, tiny_vlm) -> None:
    from videoespresso.bench.run import selections_source, selector_source
    from videoespresso.schema import FrameRef, Selection
    from videoespresso.select import save_selections

    bench, videos = _make_benchmark(tmp_path)
    items = read_bench(bench)[:3]
    chosen = {"0": [1, 7], "1": [3], "2": [0, 5, 9]}
    selections = {
        item_id: Selection(video=items[int(item_id)].video_path, question_id=item_id, selector="my-method",
                           frames=[FrameRef(index=i, seconds=i / 25) for i in idx])
        for item_id, idx in chosen.items()
    }
    sel_file = tmp_path / "selections.json"
    save_selections(sel_file, selections)
    opts = EvalOptions(settings=GenerationSettings(max_new_tokens=4), batch_size=3, frames_label="frames-file:selections.json")
    out = tmp_path / "pre.jsonl"
    summary = run_eval(items, tiny_vlm, out, selections_source(sel_file, 64), videos, opts)
    assert (summary.answered, summary.failed) == (3, 0)
    for p in _lines(out):
        assert [f["index"] for f in p["frames"]] == chosen[p["id"]]
        assert p["extra"]["frames_source"] == "frames-file:selections.json"

    # An item the file does not cover fails alone, with the reason.
    out2 = tmp_path / "pre2.jsonl"
    more = read_bench(bench)[:4]
    summary = run_eval(more, tiny_vlm, out2, selections_source(sel_file, 64), videos, opts)
    assert (summary.answered, summary.failed) == (3, 1)
    assert "no frame list" in _lines(out2)[3]["error"]

    cfg = load_config("tiny")
    cfg.eval.frames = 3
    out3 = tmp_path / "sel.jsonl"
    summary = run_eval(items, tiny_vlm, out3, selector_source("uniform", cfg, 64, items), videos, opts)
    assert summary.answered == 3
    assert all(len(p["frames"]) == 3 for p in _lines(out3))
