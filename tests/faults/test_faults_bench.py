"""Benchmark files x `eval`: a malformed file is refused on one line naming the item; a bad
item inside a valid file (text no tokenizer takes, a question past the context, a video path
outside --video-root, a missing video) fails alone with its reason, the others are answered, and
a rerun neither crashes at that item nor writes any id twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _faults import assert_one_line_error, run_cli

from videoespresso.formats.manifest import manifest_path


def _row(i: int, **change) -> dict:
    row = {
        "id": str(i), "video_path": "clip.mp4", "question": f"What happens in scene {i}?",
        "options": ["(A): a", "(B): b", "(C): c", "(D): d"], "correct_answer": "(B)",
        "answer": "b", "evidence": "", "task": "Causal Inference",
    }
    row.update(change)
    return row


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    from videoespresso.video.synth import make_test_video

    folder = tmp_path_factory.mktemp("bench-videos") / "videos"
    make_test_video(folder / "clip.mp4", "static", seconds=0.4)
    return folder


def _eval(capsys, root: Path, videos: Path, rows, out: Path | None = None):
    bench = root / "bench.json"
    bench.write_text(rows if isinstance(rows, str) else json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    out = out or root / "pred.jsonl"
    result = run_cli(capsys, ["eval", "--bench", str(bench), "--video-root", str(videos), "--model", "tiny:qwen2-vl",
                              "--out", str(out), "--frames", "1", "--max-new-tokens", "2", "--batch-size", "4",
                              "--profile", "tiny", "--no-cache"])
    return result, out


MALFORMED = {
    # cell: (file content, fragments of the one error line)
    "not_json": ("{not json", ["bench.json"]),
    "object_not_list": (json.dumps({"items": [_row(0)]}), ["bench.json is malformed"]),
    "missing_fields": (json.dumps([{"id": "0", "question": "q"}]), ["item 0", "video_path"]),
    "three_options": (json.dumps([_row(0, options=["(A): a", "(B): b", "(C): c"])]), ["expected 4 options, got 3"]),
    "five_options": (json.dumps([_row(0, options=["(A): a", "(B): b", "(C): c", "(D): d", "(E): e"])]),
                     ["expected 4 options, got 5"]),
    "answer_E": (json.dumps([_row(0, correct_answer="(E)")]), ["bad correct_answer '(E)'"]),
    "duplicate_ids": (json.dumps([_row(0), _row(0)]), ["duplicate id '0'"]),
    # Before: read as the ids "None" and "[1, 2]"; every bad item is listed.
    "null_and_list_ids": (json.dumps([_row(0, id=None), _row(1), _row(2, id=[1, 2])]),
                          ["item 0", "bad id None", "item 2", "bad id [1, 2]"]),
    "bool_float_empty_ids": (json.dumps([_row(0, id=True), _row(1, id=1.5), _row(2, id="")]),
                             ["bad id True", "bad id 1.5", "bad id ''"]),
    # Before: "-> pred.jsonl" printed, exit 0, no file written (but a manifest).
    "no_items": ("[]", ["holds no items"]),
    "unknown_task": (json.dumps([_row(0), _row(1, task="Causal Inferense")]),
                     ["'Causal Inferense' (1 item, the first item 1)", "did you mean 'Causal Inference'?"]),
}


@pytest.mark.parametrize("cell", list(MALFORMED))
def test_malformed_bench_is_refused_on_one_line(capsys, tmp_path, videos, cell):
    content, fragments = MALFORMED[cell]
    result, out = _eval(capsys, tmp_path, videos, content)
    assert_one_line_error(result, *fragments)
    assert not out.exists() and not manifest_path(out).exists()


def test_lowercase_answer_is_read(capsys, tmp_path, videos):
    result, out = _eval(capsys, tmp_path, videos, [_row(0, correct_answer="(b)")])
    assert result.code == 0, result.err
    assert json.loads(out.read_text())["correct_answer"] == "B"


BAD_ITEMS = {
    # cell: (changes to item 1, fragment of its recorded error)
    "lone_surrogate": ({"question": "What \ud800 happens?"}, "lone surrogate U+D800"),
    "past_the_context": ({"question": "很长的问题 " * 6000}, "longer than the 4096-token context"),
    "long_unicode_within_context": ({"question": "🎬 视频里发生了什么？ " * 80}, None),
    "path_with_dotdot": ({"video_path": "../outside/clip.mp4"}, "outside --video-root"),
    "absolute_path_outside": ({"video_path": "/etc/passwd"}, "outside --video-root"),
    "missing_video": ({"video_path": "nope.mp4"}, "no such file"),
}


@pytest.mark.parametrize("cell", list(BAD_ITEMS))
def test_bad_item_fails_alone_and_rerun_is_stable(capsys, tmp_path, videos, cell):
    change, fragment = BAD_ITEMS[cell]
    rows = [_row(0), _row(1, **change), _row(2), _row(3)]
    bench = tmp_path / "bench.json"
    # json.dumps escapes a lone surrogate as \ud800, as a real file carries it
    bench.write_text(json.dumps(rows), encoding="utf-8")
    result, out = _eval(capsys, tmp_path, videos, json.dumps(rows))
    assert "Traceback" not in result.err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["0", "1", "2", "3"]
    errors = {line["id"]: line.get("error") for line in lines}
    if fragment is None:
        assert result.code == 0 and not any(errors.values()), errors
    else:
        assert result.code == 3, result.err  # finished, some items failed
        assert errors["0"] is None and errors["2"] is None and errors["3"] is None
        assert fragment in errors["1"]
        assert "failed (" in result.err  # counted by reason in the summary
    before = out.read_bytes()
    again, _ = _eval(capsys, tmp_path, videos, json.dumps(rows))
    assert "Traceback" not in again.err and out.read_bytes() == before  # nothing redone, nothing doubled
