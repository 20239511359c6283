"""Option cells: out-of-range numbers and unwritable outputs are refused before any work.

Each row runs the real CLI with one bad option; the answer is a usage error (exit 2) naming the
option, never a traceback, a silently replaced default, or minutes of model calls lost.
"""

from __future__ import annotations

import json
import os

import pytest

from _faults import run_cli


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from videoespresso.video.synth import make_test_video

    root = tmp_path_factory.mktemp("options")
    make_test_video(root / "videos" / "clip.mp4", "static", seconds=0.4)
    row = {"video_path": "clip.mp4", "question": "q?", "options": ["(A): a", "(B): b", "(C): c", "(D): d"],
           "correct_answer": "(A)", "task": "Causal Inference"}
    (root / "bench.json").write_text(json.dumps([row]))
    (root / "pred.jsonl").write_text(json.dumps({"id": "0", "output": "(A)", "task": "Causal Inference",
                                                 "correct_answer": "A"}) + "\n")
    return root


def _argv(root, command: str) -> list[str]:
    return {
        "eval": ["eval", "--bench", str(root / "bench.json"), "--video-root", str(root / "videos"),
                 "--model", "tiny:qwen2-vl", "--out", str(root / "never.jsonl"), "--profile", "tiny"],
        "select": ["select", "--bench", str(root / "bench.json"), "--video-root", str(root / "videos"),
                   "--out", str(root / "never.json"), "--selector", "uniform"],
        "frames": ["frames", str(root / "videos" / "clip.mp4"), "-o", str(root / "never")],
        "score": ["score", str(root / "pred.jsonl")],
    }[command]


BAD_OPTIONS = {
    # cell: (command, extra argv, fragment of the usage error)
    "eval_frames_0": ("eval", ["--frames", "0"], "--frames"),
    "eval_max_new_tokens_0": ("eval", ["--max-new-tokens", "0"], "--max-new-tokens"),
    "eval_temperature_negative": ("eval", ["--temperature", "-1"], "--temperature"),
    "eval_top_p_above_1": ("eval", ["--top-p", "1.5"], "--top-p"),
    "eval_top_p_0": ("eval", ["--top-p", "0"], "--top-p"),
    "eval_seed_negative": ("eval", ["--seed", "-3"], "--seed"),
    "eval_batch_size_0": ("eval", ["--batch-size", "0"], "--batch-size"),
    "eval_limit_0": ("eval", ["--limit", "0"], "--limit"),
    "eval_max_side_8": ("eval", ["--max-side", "8"], "--max-side"),
    "select_frames_0": ("select", ["--frames", "0"], "--frames"),
    "frames_quality_101": ("frames", ["--quality", "101"], "--quality"),
    "score_margin_3": ("score", ["--margin", "3"], "--margin"),
}


@pytest.mark.parametrize("cell", list(BAD_OPTIONS))
def test_out_of_range_option_is_a_usage_error(capsys, inputs, cell):
    command, extra, fragment = BAD_OPTIONS[cell]
    result = run_cli(capsys, _argv(inputs, command) + extra)
    assert result.code == 2, (result.code, result.err[-1500:])
    assert "Traceback" not in result.err and fragment in result.err
    assert not (inputs / "never.jsonl").exists() and not (inputs / "never.json").exists()
    assert not (inputs / "never").exists()


@pytest.mark.parametrize("flag", ["--show", "--json"])
@pytest.mark.parametrize("where", ["a_folder", "read_only_folder"])
def test_ask_refuses_an_unwritable_output_before_running(capsys, inputs, tmp_path, flag, where):
    if where == "a_folder":
        target = tmp_path / "out_folder"
        target.mkdir()
        fragment = "is a folder"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        target = locked / "result.out"
        fragment = "not writable"
    try:
        result = run_cli(capsys, ["ask", str(inputs / "videos" / "clip.mp4"), "What is shown?", "--profile", "tiny",
                                  flag, str(target)])
    finally:
        if where == "read_only_folder":
            (tmp_path / "locked").chmod(0o755)
    assert result.code == 2 and "Traceback" not in result.err
    assert fragment in " ".join(result.err.split()) and flag in result.err
    assert "answer:" not in result.out  # refused before any model ran
