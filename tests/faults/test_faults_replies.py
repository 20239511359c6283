"""Model replies x `build` and `eval`, from a scripted endpoint: prose instead of JSON, truncated
JSON, the wrong schema, an empty reply, another language, an endless repetition cut by the
token limit. Each item fails (or is scored as unreadable) with its reason; the run completes.

Also the secrets cell: the API key reaches the endpoint and no file any run wrote.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from _faults import SECRET, build_config, completion, run_cli, send_json

REPLIES = {
    "prose": completion("Sure! Here is what I see: a red square moving left."),
    "truncated_json": completion('{"question": "What moves", "answer": "the squ', finish="length"),
    "wrong_schema": completion('{"colour": "red", "count": "many"}'),
    "empty": completion(""),
    "other_language": completion("这是一个红色的正方形，它在向左移动。"),
    "endless_repetition": completion("the square " * 400, finish="length", completion_tokens=800),
}

OPTIONS = ["It rains", "It snows", "It is windy", "It is foggy"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    from videoespresso.video.synth import make_test_video

    folder = tmp_path_factory.mktemp("reply-videos") / "videos"
    make_test_video(folder / "clip.mp4", "mixed", seconds=1.0)
    return folder


def _replying(reply: dict, captions: bool = False):
    """Every request gets ``reply``; with ``captions``, requests that ask for no JSON (the
    captioner's) get distinct captions, so the build reaches its JSON stages."""

    def behaviour(handler, body, count):
        if captions and "response_format" not in body:
            send_json(handler, completion(f"frame {count}: a shape number {count} on a plain background"))
        else:
            send_json(handler, reply)

    return behaviour


def _fake_models(spec: str) -> dict:
    return {"captioner": spec, "llm": spec, "judges": [spec], "selector_vlm": spec, "selector_llm": spec,
            "reasoner": spec, "judge": spec, "options": {spec: {"max_retries": 0}}}


@pytest.mark.parametrize("cell", list(REPLIES))
def test_build_with_bad_replies(capsys, tmp_path, videos, fake_endpoint, monkeypatch, cell):
    from videoespresso.engine import Store

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    endpoint = fake_endpoint(_replying(REPLIES[cell], captions=True))
    config = build_config(tmp_path, _fake_models(endpoint.spec()))
    out = tmp_path / "build"
    result = run_cli(capsys, ["build", str(videos), "--out", str(out), "--profile", "tiny", "--config", str(config),
                              "--no-progress"])
    assert "Traceback" not in result.err
    # nothing valid came back, so nothing is exported: a non-zero exit, with the reasons shown
    assert result.code == 1 and "no QA item exported" in " ".join(result.err.split()), result.err
    with Store(out / "store.sqlite") as store:
        failed = list(store.results(status="failed"))
        errors = list(store.results(status="error"))
    assert not errors  # every bad reply is a recorded failure, not an exception
    assert failed and all(r.reason for r in failed)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exported_items"] == 0
    _assert_no_secret(tmp_path)
    assert all(SECRET in header for header in endpoint.auth_headers)  # the key did reach the endpoint


@pytest.mark.parametrize("cell", list(REPLIES))
def test_eval_with_bad_replies(capsys, tmp_path, videos, fake_endpoint, monkeypatch, cell):
    from videoespresso.formats.bench import write_bench
    from videoespresso.schema import TASKS, BenchItem

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    endpoint = fake_endpoint(_replying(REPLIES[cell]))
    items = [BenchItem(id=str(i), video_path="clip.mp4", question=f"q{i}", options=OPTIONS,
                       raw_options=[], correct_answer="A", answer="", evidence="", task=TASKS[0].paper_name)
             for i in range(3)]
    write_bench(items, tmp_path / "bench.json")
    out = tmp_path / "pred.jsonl"
    result = run_cli(capsys, ["eval", "--bench", str(tmp_path / "bench.json"), "--video-root", str(videos), "--model",
                              endpoint.spec(), "--out", str(out), "--frames", "1", "--profile", "tiny"])
    assert result.code == 0 and "Traceback" not in result.err, result.err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["0", "1", "2"]
    for row in rows:
        # read as no answer (scored wrong), never an invented letter
        assert row.get("letter") is None and row["rule"].startswith("none"), row
    score = run_cli(capsys, ["score", str(out), "--bench", str(tmp_path / "bench.json")])
    assert "Traceback" not in score.err and score.code in (0, 3)
    _assert_no_secret(tmp_path)


def _assert_no_secret(root: Path) -> None:
    """Grep every file the run wrote (outputs, caches, SQLite stores, logs) and the home folder."""
    home = Path(os.environ["VIDEOESPRESSO_HOME"])
    needle = SECRET.encode()
    for base in (root, home):
        for path in base.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert needle not in path.read_bytes(), path
