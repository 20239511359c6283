"""Two runs on one output: the second is refused with a message naming the holder; once the
first is gone (even killed with SIGKILL) the output is usable again, never corrupt or doubled."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from _faults import assert_one_line_error, build_config, env, run_cli, wait_for

HOLD = """
import sys, time
from pathlib import Path
from videoespresso.locking import OutputLock
with OutputLock(Path(sys.argv[1]), "held"):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(lock: Path) -> subprocess.Popen:
    """Another process holding the lock, as a running `eval` / `build` does."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True, env=env())
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def bench(tmp_path):
    from videoespresso.formats.bench import write_bench
    from videoespresso.schema import TASKS, BenchItem
    from videoespresso.video.synth import make_test_video

    make_test_video(tmp_path / "videos" / "clip.mp4", "static", seconds=0.4)
    items = [BenchItem(id=str(i), video_path="clip.mp4", question=f"q{i}", options=["a", "b", "c", "d"],
                       raw_options=[], correct_answer="A", answer="", evidence="", task=TASKS[0].paper_name)
             for i in range(3)]
    write_bench(items, tmp_path / "bench.json")
    return tmp_path / "bench.json", tmp_path / "videos"


def _eval_argv(bench, videos, out):
    return ["eval", "--bench", str(bench), "--video-root", str(videos), "--model", "tiny:qwen2-vl", "--out", str(out),
            "--frames", "1", "--max-new-tokens", "2", "--profile", "tiny", "--no-cache"]


@pytest.mark.parametrize("holder_dies", ["exits", "sigkill"])
def test_two_evals_on_one_predictions_file(capsys, tmp_path, bench, holder_dies):
    out = tmp_path / "pred.jsonl"
    proc = _holder(out.with_name(out.name + ".lock"))
    try:
        refused = run_cli(capsys, _eval_argv(*bench, out))
        assert_one_line_error(refused, "is in use by another run", f"pid {proc.pid}")
        assert not out.exists()
    finally:
        if holder_dies == "sigkill":
            proc.send_signal(signal.SIGKILL)
        else:
            proc.terminate()
        proc.wait(timeout=30)
    first = run_cli(capsys, _eval_argv(*bench, out))
    assert first.code == 0, first.err
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == ["0", "1", "2"]


def test_two_builds_on_one_folder(capsys, tmp_path):
    from videoespresso.video.synth import make_test_video

    make_test_video(tmp_path / "videos" / "clip.mp4", "static", seconds=0.4)
    out = tmp_path / "build"
    out.mkdir()
    proc = _holder(out / "build.lock")
    try:
        refused = run_cli(capsys, ["build", str(tmp_path / "videos"), "--out", str(out), "--profile", "tiny",
                                   "--config", str(build_config(tmp_path)), "--stages", "1", "--no-progress"])
        assert_one_line_error(refused, "build folder", "is in use by another run", f"pid {proc.pid}")
        assert not (out / "store.sqlite").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_two_real_evals_race(tmp_path, bench):
    """Two real `eval` processes started together: one finishes, the other is refused; one line per id."""
    out = tmp_path / "pred.jsonl"
    argv = [sys.executable, "-m", "videoespresso", *_eval_argv(*bench, out)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        if p.stdout:
            p.stdout.close()
        if p.stderr:
            p.stderr.close()
    codes = sorted(code for code, _ in results)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == ["0", "1", "2"]  # never a doubled line
    # either they overlapped (one refused, naming the other) or ran one after the other
    assert codes in ([0, 0], [0, 2]), results
    for code, err in results:
        assert "Traceback" not in err
        if code == 2:
            assert "is in use by another run" in " ".join(err.split())


def _select_argv(bench, videos, out):
    return ["select", "--bench", str(bench), "--video-root", str(videos), "--out", str(out), "--selector", "uniform",
            "--frames", "1", "--profile", "tiny"]


def _judge_argv(tmp_path, out):
    item = {"video_path": "clip.mp4", "question": "q?", "options": ["(A): a", "(B): b", "(C): c", "(D): d"],
            "correct_answer": "(A)", "answer": "ref", "evidence": "ev", "task": "Traffic Analysis", "model_output": "out"}
    preds = tmp_path / "open.json"
    preds.write_text(json.dumps([item, {**item, "question": "other?"}]), encoding="utf-8")
    return ["judge", str(preds), "--out", str(out), "--judge", "tiny:qwen2", "--profile", "tiny",
            "--max-new-tokens", "4", "--no-constrained"]


@pytest.mark.parametrize("command", ["eval", "select", "judge"])
def test_overwrite_never_touches_a_running_runs_output(capsys, tmp_path, bench, command):
    """`--overwrite` on an output another run holds is refused before anything there is removed
    or rewritten: the holder's file and manifest keep their bytes."""
    from videoespresso.formats.manifest import manifest_path

    out = tmp_path / {"eval": "pred.jsonl", "select": "sel.json", "judge": "open.judge.jsonl"}[command]
    argv = {"eval": lambda: _eval_argv(*bench, out), "select": lambda: _select_argv(*bench, out),
            "judge": lambda: _judge_argv(tmp_path, out)}[command]()
    first = run_cli(capsys, argv)
    assert first.code in (0, 3), first.err
    before = {p: p.read_bytes() for p in (out, manifest_path(out))}
    proc = _holder(out.with_name(out.name + ".lock"))
    try:
        refused = run_cli(capsys, [*argv, "--overwrite"])
        assert_one_line_error(refused, "is in use by another run", f"pid {proc.pid}")
        assert {p: p.read_bytes() for p in before} == before
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    again = run_cli(capsys, [*argv, "--overwrite"])
    assert again.code in (0, 3), again.err
